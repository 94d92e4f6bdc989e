"""`devkit bench pipeline` runs the services on the simulated clock (issue #15's second defect): the traffic is
replayed tens of times faster than real time, and on the wall clock whatever the pipeline does every so many
seconds would almost never happen, so the RU it costs would be missing from the figures."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from itertools import pairwise

from devkit.benchmarks.pipeline import _events, _process_all, _trigger_calls
from devkit.office import OfficeDay
from shared.adapters.memory import InMemoryLiveStateStore
from shared.domain.ports import InboundEvent
from shared.domain.presence import BeaconHealth
from shared.services.pipeline import PipelinePolicy

INTERVAL_S = 120.0


async def test_beacon_health_is_rewritten_at_its_interval_of_simulated_time() -> None:
    day = OfficeDay(people=6, minutes=10, seed=5, floors=1)
    calls = _trigger_calls(_events(day, day.window_s))
    simulated = [day.start]

    written: dict[str, list[tuple[datetime, bool]]] = defaultdict(list)

    class Recording(InMemoryLiveStateStore):

        async def save_beacon_health(self, health: BeaconHealth) -> None:
            written[health.beacon_id].append((simulated[0], health.drift is not None and health.drift.flagged))
            await super().save_beacon_health(health)

    def on_call(call: list[InboundEvent]) -> None:
        simulated[0] = max(e.enqueued_time for e in call if e.enqueued_time is not None)

    store = Recording()
    await _process_all(calls, day.site, store, on_call=on_call,
                       policy=PipelinePolicy(beacon_health_interval_s=INTERVAL_S))
    assert written, "no beacon health was written"
    span_s = (simulated[0] - day.start).total_seconds()
    assert span_s > 4 * INTERVAL_S
    periodic: dict[str, int] = {}
    for beacon, writes in written.items():
        # A rewrite with the same drift flag is the periodic one: never sooner than the interval of simulated time
        # (telemetry waits for it too).
        gaps = [(b - a).total_seconds() for (a, flag_a), (b, flag_b) in pairwise(writes) if flag_a == flag_b]
        assert all(gap >= INTERVAL_S for gap in gaps), (beacon, gaps)
        periodic[beacon] = len(gaps)
    # and it does happen: on the wall clock the whole run lasts seconds, and a beacon is written once
    assert max(periodic.values()) >= span_s // INTERVAL_S - 2
