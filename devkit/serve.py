"""`python -m devkit serve`: the emulators, the app on loopback, in-process Event Hubs and the timers, until Ctrl-C."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from devkit.emulators.launcher import LOOPBACK, EmulatorStartError, running_emulators
from devkit.local_settings import blob_port, cosmos_port, devkit_environment, local_settings

if TYPE_CHECKING:
    import uvicorn

logger = logging.getLogger("devkit.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=7071, help="HTTP port of the app on 127.0.0.1 (default 7071)")
    parser.add_argument("--azurite-port", type=int,
                        help="default: the port of ANALYTICS_STORAGE (the environment, else local.settings.json)")
    parser.add_argument("--cosmos-port", type=int,
                        help="default: the port of COSMOS (the environment, else local.settings.json)")
    parser.add_argument("--attach", action="store_true",
                        help="start no emulators: use the COSMOS and ANALYTICS_STORAGE settings of the environment")
    parser.add_argument("--oidc-keys", type=Path,
                        help="the devkit issuer's key file (default: DEVKIT_OIDC_KEYS or .devkit/oidc-keys.json)")
    parser.add_argument("--hub-capacity", type=int, default=50,
                        help="events the in-process hub queues per partition before ingest answers 503 (default 50)")


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The Azure SDKs log every request and response at INFO: far too loud for a console.
    logging.getLogger("azure").setLevel(logging.WARNING)
    started = time.perf_counter()
    # Every setting from the environment wins over local.settings.json (ADMIN_API_KEY above all: a user's own key
    # must not leave the file's public default working); the file fills in the rest.
    values = local_settings()
    if args.attach:
        os.environ.update({**values, "EVENT_PUBLISHER": "inprocess"})
        return _run(args, started)
    try:
        with running_emulators(args.azurite_port or blob_port(values), args.cosmos_port or cosmos_port(values)) as (
            azurite, cosmos,
        ):
            logger.info("azurite ready on %s:%s in %.2f s; cosmos ready on %s:%s in %.2f s", LOOPBACK, azurite.port,
                        azurite.started_in_s, LOOPBACK, cosmos.port, cosmos.started_in_s)
            os.environ.update(devkit_environment(values, azurite.port, cosmos.port))
            return _run(args, started)
    except EmulatorStartError as exc:
        print(f"devkit serve: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, started: float) -> int:
    try:
        asyncio.run(_serve(args.port, args.hub_capacity, started, args.oidc_keys))
    except KeyboardInterrupt:
        pass
    logger.info("stopped")
    return 0


async def _serve(port: int, hub_capacity: int, started: float, oidc_keys: Path | None = None) -> None:
    import uvicorn

    from devkit.identity import ISSUER_PATH, KeyRing, default_keys_path, identity_of_the_app, with_devkit_issuer
    from devkit.timer_runner import run_timers
    from functions.http_api import create_api
    from shared.adapters.inprocess_events import InProcessEventPublisher
    from shared.settings import load_settings
    from shared.wiring import build_context, set_context

    settings = load_settings()
    context = await build_context(settings, bootstrap=True)
    if isinstance(context.publisher, InProcessEventPublisher):
        context.publisher.max_queued_per_partition = hub_capacity
    set_context(context)
    timers = asyncio.create_task(run_timers(context.scheduled, local_timer_schedules()))
    # The local outbox poller (in Azure: the change feed trigger and the event_delivery timer).
    delivery = asyncio.create_task(context.delivery_loop.run())
    keys_path = oidc_keys or default_keys_path()
    KeyRing.load_or_create(keys_path)
    # The devkit's OpenID Connect issuer beside the app (never part of it: the deployed app has no such route).
    # It signs people in to the dashboard with each tenant's configured client id, audience and user id claim.
    app = with_devkit_issuer(create_api(), keys_path, identity_of_the_app)
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", backlog=4096))
    ready = asyncio.create_task(_announce(server, port, started, ISSUER_PATH))
    try:
        await server.serve()
    finally:
        for task in (timers, ready, delivery):
            task.cancel()
        await asyncio.gather(timers, ready, delivery, return_exceptions=True)
        await context.close()
        set_context(None)


def local_timer_schedules() -> dict[str, str]:
    """The timers the devkit runs, on their settings' schedules: all but event delivery, which the devkit's
    poller (DeliveryLoop) does continuously."""
    from functions.timers import TIMER_SCHEDULE_SETTINGS
    from shared.services import ScheduledJobs

    return {job: os.environ[setting] for job, setting in TIMER_SCHEDULE_SETTINGS.items()
            if job != ScheduledJobs.EVENT_DELIVERY}


async def _announce(server: uvicorn.Server, port: int, started: float, issuer_path: str) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    print(f"spaceflow is serving on http://{LOOPBACK}:{port} (ready in {time.perf_counter() - started:.1f} s)\n"
          f"  health:  http://{LOOPBACK}:{port}/api/health\n  docs:    http://{LOOPBACK}:{port}/api/docs\n"
          f"  sign-in: http://{LOOPBACK}:{port}{issuer_path}/<tenantId> (devkit OpenID Connect issuer; "
          "python -m devkit token)\n"
          "Ctrl-C stops the app and the emulators.", flush=True)
