"""Timer triggers. Schedules come from app settings (%NAME%), so Azure, local.settings.json and the devkit timer
runner share one value."""
from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func

from shared.services import ScheduledJobs
from shared.wiring import get_context

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions: Blueprint(*args, **kwargs) is untyped

# job name -> the setting that holds its NCRONTAB schedule; the devkit timer runner reads this table too.
TIMER_SCHEDULE_SETTINGS = {
    ScheduledJobs.PRESENCE_SWEEP: "PRESENCE_SWEEP_SCHEDULE",
    ScheduledJobs.HOURLY_ROLLUP: "ROLLUP_HOURLY_SCHEDULE",
    ScheduledJobs.DAILY_ROLLUP: "ROLLUP_DAILY_SCHEDULE",
    ScheduledJobs.EVENT_DELIVERY: "EVENT_DELIVERY_SCHEDULE",
    ScheduledJobs.NO_SHOWS: "NO_SHOW_SCHEDULE",
    ScheduledJobs.BOOKING_SYNC: "BOOKING_SYNC_SCHEDULE",
    ScheduledJobs.GRAPH_RENEWAL: "GRAPH_RENEWAL_SCHEDULE",
}


async def _run(job: str) -> None:
    context = await get_context()
    await context.scheduled.run(job, datetime.now(UTC))


@bp.function_name("presence_sweep")
@bp.timer_trigger(arg_name="timer", schedule="%PRESENCE_SWEEP_SCHEDULE%", run_on_startup=False, use_monitor=False)
async def presence_sweep(timer: func.TimerRequest) -> None:
    await _run(ScheduledJobs.PRESENCE_SWEEP)


@bp.function_name("hourly_rollup")
@bp.timer_trigger(arg_name="timer", schedule="%ROLLUP_HOURLY_SCHEDULE%", run_on_startup=False, use_monitor=True)
async def hourly_rollup(timer: func.TimerRequest) -> None:
    await _run(ScheduledJobs.HOURLY_ROLLUP)


@bp.function_name("daily_rollup")
@bp.timer_trigger(arg_name="timer", schedule="%ROLLUP_DAILY_SCHEDULE%", run_on_startup=False, use_monitor=True)
async def daily_rollup(timer: func.TimerRequest) -> None:
    await _run(ScheduledJobs.DAILY_ROLLUP)


@bp.function_name("event_delivery")
@bp.timer_trigger(arg_name="timer", schedule="%EVENT_DELIVERY_SCHEDULE%", run_on_startup=False, use_monitor=False)
async def event_delivery(timer: func.TimerRequest) -> None:
    await _run(ScheduledJobs.EVENT_DELIVERY)


@bp.function_name("no_shows")
@bp.timer_trigger(arg_name="timer", schedule="%NO_SHOW_SCHEDULE%", run_on_startup=False, use_monitor=False)
async def no_shows(timer: func.TimerRequest) -> None:
    await _run(ScheduledJobs.NO_SHOWS)


@bp.function_name("booking_sync")
@bp.timer_trigger(arg_name="timer", schedule="%BOOKING_SYNC_SCHEDULE%", run_on_startup=False, use_monitor=False)
async def booking_sync(timer: func.TimerRequest) -> None:
    await _run(ScheduledJobs.BOOKING_SYNC)


@bp.function_name("graph_renewal")
@bp.timer_trigger(arg_name="timer", schedule="%GRAPH_RENEWAL_SCHEDULE%", run_on_startup=False, use_monitor=True)
async def graph_renewal(timer: func.TimerRequest) -> None:
    await _run(ScheduledJobs.GRAPH_RENEWAL)
