"""The processing pipeline: validated SDK batches in, device positions, room occupancy and visits out.

Per device, batches are folded in arrival order through the positioning engine in tracking mode; devices are
worked concurrently. Writes are ordered so that a crash at any point followed by redelivery ends in the same
state: visits and occupancy first (idempotent set operations), the device document last (guarded by its etag).
"""
from __future__ import annotations

import asyncio
import logging
import math
import random
import sys
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from shared.domain.events import CloudEvent, SpaceFacts, space_events
from shared.domain.floor_summary import FloorSummary
from shared.domain.ingest_event import IngestEvent
from shared.domain.ports import FLOOR_BATCH_OPERATIONS, InboundEvent, LiveStateStore, PreconditionFailed
from shared.domain.positioning.estimator import Estimate
from shared.domain.positioning.selfcal import DriftEstimate, SiteCalibration
from shared.domain.positioning.tracking import (
    ReadingColumns,
    TrackingState,
    TrackInput,
    newest_per_beacon,
    track_many,
)
from shared.domain.presence import (
    BeaconDrift,
    BeaconHealth,
    DeviceState,
    OccupancyChange,
    SpaceState,
    Transition,
    Visit,
    apply_occupancy,
    transition,
)
from shared.domain.sightings import BeaconTelemetry as SdkTelemetry
from shared.domain.tenancy import BuildingRef
from shared.services.sites import Building, SiteDirectory
from shared.services.transitions import BeaconAlertWriter, SiteFacts

logger = logging.getLogger(__name__)


PERSIST_SHARE_OF_PRESENCE_TIMEOUT = 0.5


def persist_interval_for(presence_timeout_s: float) -> float:
    """How often a heard device's document is rewritten when nothing anyone reads changed: half the presence
    timeout. The presence sweep takes out a phone whose stored lastSeen is older than the timeout, and a phone
    still heard has its lastSeen stored at most this long after the one stored before, as soon as a batch of it
    is processed. The other half is the margin for the gap between a phone's batches (10-30 s) and the time from
    the batch to its processing (seconds), so the sweep never takes out a phone that is still heard
    (docs/data-model.md, "Request units")."""
    return PERSIST_SHARE_OF_PRESENCE_TIMEOUT * presence_timeout_s


@dataclass(frozen=True)
class PipelinePolicy:
    # A device document is rewritten at least this often while it is heard (persist_interval_for, with the default
    # presence timeout of 300 s); and when it moves, floor or space, or is new.
    persist_interval_s: float = 150.0
    device_concurrency: int = 64
    max_write_retries: int = 20
    # Beacon health is rewritten at most this often per beacon, unless its drift flag changes.
    beacon_health_interval_s: float = 900.0
    # The devices cached for a partition are read again when this instance did not get a call of that partition
    # for this long: the partition may have been worked by another instance meanwhile (Event Hubs moves a
    # partition's ownership when instances come and go; ownership expires after 30 s).
    partition_idle_s: float = 30.0

    @classmethod
    def for_presence_timeout(cls, presence_timeout_s: float) -> PipelinePolicy:
        return cls(persist_interval_s=persist_interval_for(presence_timeout_s))


@dataclass
class PipelineStats:
    batches: int = 0
    sightings: int = 0
    duplicates: int = 0
    unknown_building: int = 0
    transitions: int = 0
    device_writes_skipped: int = 0
    conflicts_retried: int = 0
    late_sightings: int = 0


@dataclass
class _DeviceWork:
    """One device's batches in one building during one invocation, and what folding them produced."""

    building: Building
    events: list[IngestEvent]
    partition: str = "0"  # the Event Hub partition the device's events came on
    cached: _CachedDevice | None = None
    state: DeviceState | None = None  # its `tracking` is left empty while folding: the tracker's is `tracking`
    tracking: TrackingState | None = None
    transitions: list[Transition] = field(default_factory=list)
    changed: bool = False

    @property
    def device_id(self) -> str:
        return self.events[0].batch.device_id

    def reset(self) -> None:
        self.cached, self.state, self.tracking, self.transitions, self.changed = None, None, None, [], False


@dataclass(frozen=True)
class _TrackRequest:
    """One batch on its way through the tracker: its input, when it happened on our clock, the event."""

    input: TrackInput
    event_time: datetime
    decoded: IngestEvent
    batch_id: str


@dataclass
class _CachedDevice:
    """A device between calls: its state (with `tracking` and `recent_batches` left empty) and the tracker's state
    as plain data, so neither is converted from or to JSON per batch (only when the device is read or written).
    The dedupe window is kept as one string (`batches`, its keys joined by spaces): sixteen small strings and
    their tuple would be about 1 KB a device, a third of what the cache holds of it."""

    state: DeviceState
    persisted_last_seen: datetime
    persisted_space: str | None
    persisted_floor: str | None
    partition: str = "0"
    epoch: int = 0  # the partition's epoch when cached (_Partitions): an older one is read again
    tracking: TrackingState | None = None
    batches: str = ""

    @classmethod
    def of(cls, stored: DeviceState, partition: str, epoch: int,
           tracking: TrackingState | None = None) -> _CachedDevice:
        """The cache entry of a device as read or written (`tracking`: the tracker's state, when at hand)."""
        if tracking is None and stored.tracking:
            tracking = TrackingState.from_json(stored.tracking)
        # ids shared by many devices are kept once (the store hands out new strings with every document)
        kept = stored.copy_with(tracking={}, recent_batches=(), tenant_id=sys.intern(stored.tenant_id),
                       building_id=sys.intern(stored.building_id),
                       model=sys.intern(stored.model) if stored.model is not None else None)
        return cls(kept, stored.last_seen, stored.space_id, stored.floor, sys.intern(partition), epoch, tracking,
                   _joined(stored.recent_batches))

    def holding(self, state: DeviceState, tracking: TrackingState | None) -> _CachedDevice:
        """This entry with the device as folded since (not written: nothing anyone reads changed)."""
        return _CachedDevice(state.copy_with(recent_batches=()), self.persisted_last_seen, self.persisted_space,
                             self.persisted_floor, self.partition, self.epoch, tracking, _joined(state.recent_batches))

    @property
    def device(self) -> DeviceState:
        """The device as cached, its dedupe window unpacked."""
        return self.state.copy_with(recent_batches=tuple(self.batches.split())) if self.batches else self.state


def _joined(keys: tuple[str, ...]) -> str:
    if any(not key or " " in key for key in keys):  # batch_key() never makes one: base64url, 11 characters
        raise ValueError("a dedupe window key is empty or holds a space")
    return " ".join(keys)


class OccupancyWriter:
    """Applies occupancy changes to space documents: read, apply the pure rule, write over that etag; retry with
    backoff when another writer got there first. All changes to one space go in one write, with the events they
    make (shared/domain/events.py) in the same atomic batch: a write that loses the race writes no event either,
    so each transition has exactly one event.

    The spaces of one floor are written together with the floor's summary (shared/domain/floor_summary.py) in one
    transactional batch over the etag of the summary's counts as well, so the summary always says what the space
    documents say;
    a floor without a summary (data from before summaries) or with one written for another order of its spaces
    is summarised again from its space documents. The summary last written is kept per floor (a write over a
    stale copy fails on its etag and is redone from the stored one). Without site facts (some tests) a space's
    floor is unknown and no summary is kept; neither is one for a space the site model does not have."""

    SUMMARIES_KEPT = 4096  # floors whose last written summary is kept in memory

    def __init__(self, store: LiveStateStore, max_retries: int = 20, facts: SiteFacts | None = None) -> None:
        self._store = store
        self._max_retries = max_retries
        self._facts = facts
        self._summaries: OrderedDict[tuple[BuildingRef, str], FloorSummary] = OrderedDict()
        self.retries = 0
        self.events = 0
        self.summaries_rebuilt = 0

    async def apply(self, changes: Sequence[OccupancyChange]) -> None:
        """Apply the changes (in their order per space); floors (and spaces of no known floor) are written
        concurrently, each floor in one batch with its summary."""
        per_space: dict[tuple[BuildingRef, str], list[OccupancyChange]] = defaultdict(list)
        for change in changes:
            per_space[(change.building, change.space_id)].append(change)
        per_floor: dict[tuple[BuildingRef, str], tuple[tuple[str, ...], dict[str, list[OccupancyChange]]]] = {}
        alone: list[tuple[tuple[BuildingRef, str], list[OccupancyChange]]] = []
        for key, items in per_space.items():
            place = await self._facts.floor_of(key[0], key[1]) if self._facts else None
            if place is None:
                alone.append((key, items))
                continue
            floor_id, space_ids = place
            per_floor.setdefault((key[0], floor_id), (space_ids, {}))[1][key[1]] = items
        await asyncio.gather(*(self._apply_to_space(key, items) for key, items in alone),
                             *(self._apply_to_floor(building, floor_id, space_ids, spaces)
                               for (building, floor_id), (space_ids, spaces) in per_floor.items()))

    async def apply_transitions(self, transitions: Sequence[Transition]) -> None:
        """Visits first, then occupancy: both idempotent, so a crash after either is repaired by a retry."""
        await asyncio.gather(*(self._store.save_visit(t.visit) for t in transitions if t.visit is not None))
        await self.apply([change for t in transitions for change in t.changes])

    async def _changed(self, building: BuildingRef, space_id: str, current: SpaceState,
                       changes: list[OccupancyChange]) -> tuple[SpaceState, list[CloudEvent]]:
        """The space after the changes and the events they make; `current` itself when nothing changes."""
        facts = await self._facts.space(building, space_id) if self._facts else SpaceFacts.unknown(space_id)
        updated, events = current, []
        for change in changes:
            applied = apply_occupancy(updated, change)
            if applied is not None:
                # change by change, so a room occupied and left within one write still says both
                updated, made = space_events(updated, applied, facts)
                events += made
        return updated, events

    async def _apply_to_space(self, key: tuple[BuildingRef, str], changes: list[OccupancyChange]) -> None:
        building, space_id = key
        for attempt in range(self._max_retries):
            current = await self._store.get_space(building, space_id) or SpaceState.empty(building, space_id)
            updated, events = await self._changed(building, space_id, current, changes)
            if updated is current:
                return  # already applied: a redelivery or a retry
            try:
                await self._store.save_space(updated, events)
                self.events += len(events)
                return
            except PreconditionFailed:
                self.retries += 1
                await asyncio.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))  # jittered backoff
        raise RuntimeError(f"space {space_id} of {building}: gave up after {self._max_retries} conflicting writes")

    async def _apply_to_floor(self, building: BuildingRef, floor_id: str, space_ids: tuple[str, ...],
                              changes: dict[str, list[OccupancyChange]]) -> None:
        key = (building, floor_id)
        for attempt in range(self._max_retries):
            summary = self._summaries.get(key)
            if summary is None or not summary.fits(space_ids) or not summary.complete():
                summary = await self._store.get_floor_summary(building, floor_id)
            ids = list(changes)
            # read after the summary: a writer in between changes the summary's etag and fails this batch
            currents = dict(zip(ids, await asyncio.gather(*(self._store.get_space(building, s) for s in ids))))
            if summary is None or not summary.fits(space_ids) or not summary.complete():
                # none yet, written for another order of the floor's spaces, or its sinces unreadable: summarise
                # the space documents
                wanted = set(space_ids)
                states = {s.space_id: s for s in await self._store.list_spaces(building) if s.space_id in wanted}
                states.update({s: state for s, state in currents.items() if state is not None})
                summary = FloorSummary.build(building, floor_id, space_ids, states,
                                             etag=summary.etag if summary else None)
                self.summaries_rebuilt += 1
                rebuilt = True
            else:
                rebuilt = False
            writes = []
            for space_id in ids:
                current = currents[space_id] or SpaceState.empty(building, space_id)
                updated, events = await self._changed(building, space_id, current, changes[space_id])
                if updated is not current:
                    writes.append((updated, events))
            if not writes and not rebuilt:
                return  # already applied: a redelivery or a retry
            try:
                for chunk in _floor_batches(writes) if writes else [[]]:
                    # each batch's summary holds the spaces of the batches written so far, and no others
                    summary = summary.updated(space_ids, {space.space_id: space for space, _events in chunk})
                    summary = await self._store.save_floor(summary, chunk)
                    self.events += sum(len(events) for _space, events in chunk)
                self._summaries[key] = summary
                self._summaries.move_to_end(key)
                while len(self._summaries) > self.SUMMARIES_KEPT:
                    self._summaries.popitem(last=False)
                return
            except PreconditionFailed:
                # another writer got there first; the batches written before stay (summary and spaces agree)
                self._summaries.pop(key, None)
                self.retries += 1
                await asyncio.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))  # jittered backoff
        raise RuntimeError(f"floor {floor_id} of {building}: gave up after {self._max_retries} conflicting writes")


def _floor_batches(writes: list[tuple[SpaceState, list[CloudEvent]]]) -> list[list[tuple[SpaceState, list[CloudEvent]]]]:
    """The spaces in batches that fit a transactional batch with the summary (each space with its events)."""
    batches: list[list[tuple[SpaceState, list[CloudEvent]]]] = [[]]
    used = 2  # the summary's counts and sinces
    for space, events in writes:
        size = 1 + len(events)
        if batches[-1] and used + size > FLOOR_BATCH_OPERATIONS:
            batches.append([])
            used = 2
        batches[-1].append((space, events))
        used += size
    return batches


class _Partitions:
    """When this instance last got a call of each Event Hub partition, and each partition's epoch: the devices
    cached in an older epoch are read again before use. The epoch moves on when a partition comes back after more
    than `idle_s` without a call, since another instance may have worked it meanwhile."""

    def __init__(self, idle_s: float) -> None:
        self._idle_s = idle_s
        self._seen: dict[str, tuple[float, int]] = {}

    def called(self, partition: str, now: float) -> None:
        seen = self._seen.get(partition)
        if seen is None:
            self._seen[partition] = (now, 0)
        else:
            last, epoch = seen
            self._seen[partition] = (max(now, last), epoch + 1 if now - last > self._idle_s else epoch)

    def epoch(self, partition: str) -> int:
        seen = self._seen.get(partition)
        return seen[1] if seen is not None else 0


class PipelineService:
    def __init__(self, sites: SiteDirectory, store: LiveStateStore, policy: PipelinePolicy = PipelinePolicy(),
                 monotonic: Callable[[], float] = time.monotonic, cache_size: int = 50_000) -> None:
        self._sites = sites
        self._store = store
        self._policy = policy
        self._monotonic = monotonic
        facts = SiteFacts(sites)
        self._occupancy = OccupancyWriter(store, policy.max_write_retries, facts)
        self._alerts = BeaconAlertWriter(store, facts)
        # The devices this instance works on. Not read again while their partition keeps coming to this instance:
        # the trigger hands a partition (devices are its partition key) to one instance at a time, and every write
        # is over the etag read, so a copy another writer made stale (the presence sweep) fails its next write and
        # is redone from the stored one (_redo). The presence sweep changes only devices whose stored lastSeen is
        # older than the timeout, and such a device's next batch is always due to be written (persist interval <
        # timeout). A partition that comes back after a while is read again (_Partitions).
        self._devices: OrderedDict[tuple[BuildingRef, str], _CachedDevice] = OrderedDict()
        self._partitions = _Partitions(policy.partition_idle_s)
        self._cache_size = cache_size
        self._beacons_written: dict[tuple[BuildingRef, str], tuple[float, BeaconHealth]] = {}
        # the beacon health form of each beacon's drift estimate, kept while the estimate is the same object
        # (a fold replaces the estimates it changes): beacon health looks at every beacon heard in every call
        self._drifts: dict[tuple[BuildingRef, str], tuple[DriftEstimate, BeaconDrift]] = {}
        # per building: every beacon's measured-power drift (positioning's self-calibration), restored from
        # beacon health on first use, folded once per call, written with beacon health
        self._calibrations: dict[BuildingRef, SiteCalibration] = {}
        self.stats = PipelineStats()

    async def process(self, batches: Sequence[tuple[InboundEvent, IngestEvent]]) -> None:
        """Fold the events into live state. Each device's events are handled in the order given.

        Three phases: fold every device (reads only), write visits and occupancy (one write per space for the
        whole invocation), then the devices. A device another writer changed meanwhile is redone on its own.
        """
        per_device: dict[tuple[str, str], list[IngestEvent]] = defaultdict(list)
        partition_of: dict[tuple[str, str], str] = {}
        now = self._monotonic()
        for event, decoded in batches:
            key = (decoded.tenant_id, decoded.batch.device_id)
            per_device[key].append(decoded)
            partition_of[key] = event.partition_id
        for partition in set(partition_of.values()):
            self._partitions.called(partition, now)
        work: list[_DeviceWork] = []
        heard_in: dict[int, Building | None] = {}  # per batch (its id()), the building its sightings place it in
        for (tenant_id, device), events in per_device.items():
            for building, group in await self._group_by_building(tenant_id, events, heard_in):
                work.append(_DeviceWork(building, group, partition_of[(tenant_id, device)]))
        limit = asyncio.Semaphore(self._policy.device_concurrency)

        async def load(item: _DeviceWork) -> None:
            async with limit:
                await self._load_work(item)

        # devices held in memory (the common case) are taken without a task each; the others are read concurrently
        await asyncio.gather(*(load(item) for item in work if not self._load_held(item)))
        self._fold_loaded(work)
        self._fold_calibrations(work)
        await self._occupancy.apply_transitions([t for item in work for t in item.transitions])

        async def persist(item: _DeviceWork) -> None:
            async with limit:
                try:
                    await self._persist(item)
                except PreconditionFailed:
                    await self._redo(item)

        await asyncio.gather(*(persist(item) for item in work
                               if item.state is not None and item.changed and not self._keep_in_memory(item)))
        await self._write_beacon_health(batches, heard_in)

    async def _redo(self, item: _DeviceWork) -> None:
        """Fold, write and persist one device again from its stored version (someone else wrote it)."""
        for _attempt in range(self._policy.max_write_retries):
            self.stats.conflicts_retried += 1
            self._devices.pop((item.building.ref, item.device_id), None)
            item.reset()
            await self._fold(item, count=False)
            await self._occupancy.apply_transitions(item.transitions)
            if item.state is None or not item.changed:
                return
            try:
                await self._persist(item)
                return
            except PreconditionFailed:
                continue
        raise RuntimeError(f"device in building {item.building.ref}: gave up after repeated conflicts")

    async def _group_by_building(self, tenant_id: str, events: list[IngestEvent],
                                 heard_in: dict[int, Building | None]) -> list[tuple[Building, list[IngestEvent]]]:
        # Consecutive batches heard in the same building are folded together (one device write for them).
        groups: list[tuple[Building, list[IngestEvent]]] = []
        for decoded in events:
            self.stats.batches += 1
            self.stats.sightings += len(decoded.sightings)
            building = await self._sites.building_for(tenant_id, decoded.sightings.beacon)
            heard_in[id(decoded)] = building
            if building is None:
                self.stats.unknown_building += 1
                continue
            if groups and groups[-1][0].ref == building.ref:
                groups[-1][1].append(decoded)
            else:
                groups.append((building, [decoded]))
        return groups

    async def _fold(self, item: _DeviceWork, count: bool = True) -> None:
        """Run the device's batches through the tracker; no writes, only `item` is filled in."""
        await self._load_work(item)
        self._fold_loaded([item], count)

    def _load_held(self, item: _DeviceWork) -> bool:
        """`_load_work` without I/O when the device is held in memory and its partition did not leave this instance
        since (and the building's calibration is loaded); False when it has to be read."""
        key = (item.building.ref, item.device_id)
        cached = self._devices.get(key)
        if cached is None or item.building.ref not in self._calibrations or cached.partition != item.partition \
                or cached.epoch != self._partitions.epoch(item.partition):
            return False
        self._devices.move_to_end(key)
        self._take(item, cached)
        return True

    async def _load_work(self, item: _DeviceWork) -> None:
        """The device's state before this call's batches (and its building's calibration, on first use)."""
        cached = await self._load(item.building, item.device_id, item.partition)
        await self._calibration(item.building)
        self._take(item, cached)

    def _take(self, item: _DeviceWork, cached: _CachedDevice | None) -> None:
        item.cached = cached
        state = item.cached.device if item.cached else None
        item.tracking = item.cached.tracking if item.cached else None
        if state is not None and state.leaving_space_id is not None:
            item.transitions.append(_finish_leave(state))
            state = state.copy_with(leaving_space_id=None, leaving_since=None)
            item.changed = True
        item.state = state

    def _fold_loaded(self, work: Sequence[_DeviceWork], count: bool = True) -> None:
        """Fold the loaded devices' batches in rounds: each round takes every device's next batch, and the
        batches of one building go through the tracker together (`track_many`: one grid posterior per floor for
        all of them). A device's own batches stay in order."""
        cursors = {id(item): 0 for item in work}
        while True:
            requests: dict[BuildingRef, list[tuple[_DeviceWork, _TrackRequest]]] = defaultdict(list)
            for item in work:
                while cursors[id(item)] < len(item.events):
                    decoded = item.events[cursors[id(item)]]
                    cursors[id(item)] += 1
                    batch_id = decoded.batch.batch_id
                    if item.state is not None and item.state.has_seen(batch_id):
                        if count:
                            self.stats.duplicates += 1
                        continue
                    request = self._track_request(item.building, item.state, item.tracking, decoded)
                    if isinstance(request, DeviceState):  # nothing fresh to track: the batch is only remembered
                        self._advance(item, request, batch_id, count)
                        continue
                    requests[item.building.ref].append((item, request))
                    break
            if not requests:
                return
            for pending in requests.values():
                building = pending[0][0].building
                if building.index is None:  # SiteDirectory.building_for only hands out positioned buildings
                    raise RuntimeError(f"building {building.ref} is mapped but not positioned "
                                       f"({building.positioning_problem}): it cannot track devices")
                results = track_many([r.input for _item, r in pending], building.index, signal=building.signal,
                                     site_cal=self._calibrations.get(building.ref))
                for (item, request), (new_tracking, estimate) in zip(pending, results):
                    item.tracking = new_tracking
                    self._advance(item, self._tracked(building, item.state, request, estimate), request.batch_id,
                                  count)

    def _advance(self, item: _DeviceWork, new_state: DeviceState, batch_id: str, count: bool) -> None:
        state = item.state
        if state is None or state.space_id != new_state.space_id:
            step = transition(state, new_state, new_state.space_since or new_state.last_seen)
            if step.changes:
                item.transitions.append(step)
                if count:
                    self.stats.transitions += 1
        item.state = new_state.remember(batch_id)
        item.changed = True

    def _track_request(self, building: Building, state: DeviceState | None, tracking: TrackingState | None,
                       decoded: IngestEvent) -> DeviceState | _TrackRequest:
        """The tracker's input for one batch, or the state unchanged when the batch holds nothing fresh."""
        batch, columns = decoded.batch, decoded.sightings
        # Phones' clocks drift: shift the readings by how far the phone's clock was from ours when it sent the
        # batch, so last-seen times, visits and the presence timeout are all on the server's clock.
        skew = (decoded.received_at - batch.sent_at).total_seconds()
        times = columns.ts
        if abs(skew) >= _IGNORED_SKEW_S:
            times = [round(t + skew, 6) for t in times]  # (whole microseconds, as the datetimes they stand for)
        beacons, rssi, tx_power = columns.beacon, columns.rssi, columns.tx_power
        if state is not None and times:
            # A batch that arrives late (an SDK retry, a reordered delivery) is history: the device has moved on
            # since, so its older readings must not pull the estimate back.
            last_seen = state.last_seen.timestamp()
            if min(times) <= last_seen:
                fresh = [k for k, at in enumerate(times) if at > last_seen]
                self.stats.late_sightings += len(times) - len(fresh)
                if not fresh:
                    return state
                beacons, rssi = [beacons[k] for k in fresh], [rssi[k] for k in fresh]
                times, tx_power = [times[k] for k in fresh], [tx_power[k] for k in fresh]
        elif state is not None:
            return state
        event_time = datetime.fromtimestamp(max(times), tz=UTC) if times else decoded.received_at
        # the tracker's columns: beacons as positions in the building's index (readings of other beacons are
        # ignored by the tracker anyway)
        known = building.index.beacon_index if building.index is not None else {}
        positions = list(map(known.get, beacons))
        if None in positions:
            kept = [k for k, p in enumerate(positions) if p is not None]
            readings = ReadingColumns([positions[k] for k in kept], [rssi[k] for k in kept],  # type: ignore[misc]
                                      [times[k] for k in kept], [tx_power[k] for k in kept])
        else:
            readings = ReadingColumns(positions, rssi, times, tx_power)  # type: ignore[arg-type]
        return _TrackRequest(TrackInput(tracking, readings, event_time.timestamp(), batch.model), event_time,
                             decoded, batch.batch_id)

    @staticmethod
    def _tracked(building: Building, state: DeviceState | None, request: _TrackRequest,
                 estimate: Estimate | None) -> DeviceState:
        """The device's state after the tracker's answer for one batch."""
        batch = request.decoded.batch
        event_time = request.event_time
        if state is None:
            state = DeviceState(tenant_id=building.tenant_id, building_id=building.building_id,
                                device_id=batch.device_id, last_seen=event_time)
        if estimate is None:
            return state.copy_with(last_seen=event_time, user_id=batch.user_id, model=batch.model)
        space_since = state.space_since if estimate.space_id == state.space_id else event_time
        return state.copy_with(last_seen=event_time, user_id=batch.user_id, model=batch.model,
                               x=round(estimate.x, 2), y=round(estimate.y, 2), floor=estimate.floor,
                               uncertainty_m=round(estimate.uncertainty_m, 2), space_id=estimate.space_id,
                               space_since=space_since if estimate.space_id else None,
                               space_confidence=round(estimate.space_confidence, 3))

    async def _calibration(self, building: Building) -> SiteCalibration:
        """The building's beacon drift estimates: restored from beacon health the first time, then in memory (an
        instance's estimates come from the traffic it sees; beacon health keeps the latest written)."""
        calibration = self._calibrations.get(building.ref)
        if calibration is None:
            calibration = SiteCalibration()
            for health in await self._store.list_beacon_health(building.ref):
                d = health.drift
                if d is not None:
                    calibration.restore(health.beacon_id, DriftEstimate(d.level_db, d.sd_db**2, d.baseline_db,
                                                                        d.observations, d.at.timestamp()))
            self._calibrations.setdefault(building.ref, calibration)
        return self._calibrations[building.ref]

    def _fold_calibrations(self, work: Sequence[_DeviceWork]) -> None:
        """One drift update per beacon and call, at the time of the call's latest event."""
        latest: dict[BuildingRef, datetime] = {}
        for item in work:
            at = max(e.received_at for e in item.events)
            if item.building.ref not in latest or at > latest[item.building.ref]:
                latest[item.building.ref] = at
        for ref, at in latest.items():
            calibration = self._calibrations.get(ref)
            if calibration is not None:
                calibration.fold(at.timestamp())

    def _drift(self, ref: BuildingRef, beacon: str) -> BeaconDrift | None:
        calibration = self._calibrations.get(ref)
        est = calibration.estimates.get(beacon) if calibration is not None else None
        if calibration is None or est is None or est.ts is None:
            return None
        kept = self._drifts.get((ref, beacon))
        if kept is not None and kept[0] is est:
            return kept[1]
        drift = BeaconDrift(est.level, est.baseline, est.sd, est.observations,
                            datetime.fromtimestamp(est.ts, tz=UTC), calibration.flagged(beacon))
        self._drifts[(ref, beacon)] = (est, drift)
        return drift

    async def _load(self, building: Building, device_id: str, partition: str) -> _CachedDevice | None:
        key = (building.ref, device_id)
        cached = self._devices.get(key)
        epoch = self._partitions.epoch(partition)
        if cached is not None and cached.partition == partition and cached.epoch == epoch:
            self._devices.move_to_end(key)
            return cached
        stored = await self._store.get_device(building.ref, device_id)
        if stored is None:
            self._devices.pop(key, None)
            return None
        if cached is not None and cached.state.etag is not None and cached.state.etag == stored.etag:
            # Nobody wrote it since the version this copy grew from: the copy is that version plus the batches
            # folded since (their writes skipped as not due). Taking the stored one would rewind the device and
            # drop those batches' ids from the dedupe window, so a redelivered one would be counted again.
            cached = replace(cached, partition=partition, epoch=epoch)
            self._remember(key, cached)
            return cached
        cached = _CachedDevice.of(stored, partition, epoch)
        self._remember(key, cached)
        return cached

    def _keep_in_memory(self, item: _DeviceWork) -> bool:
        """Keep a folded device in memory when its write is not due (True); False when it has to be written."""
        building, cached, state = item.building, item.cached, item.state
        if state is None:  # callers persist folded devices only
            raise RuntimeError(f"device {item.device_id} in building {building.ref}: nothing folded to persist")
        due = (
            bool(item.transitions) or cached is None or state.etag is None
            or state.space_id != cached.persisted_space or state.floor != cached.persisted_floor
            or (state.last_seen - cached.persisted_last_seen).total_seconds() >= self._policy.persist_interval_s
        )
        if due or cached is None:  # (not due implies cached)
            return False
        # Heard, nothing changed that anyone reads: keep it in memory and write it within persist_interval_s.
        self.stats.device_writes_skipped += 1
        self._remember((building.ref, state.device_id), cached.holding(state, item.tracking))
        return True

    async def _persist(self, item: _DeviceWork) -> None:
        if self._keep_in_memory(item):
            return
        state = item.state
        if state is None:  # _keep_in_memory refused it already
            return
        key = (item.building.ref, state.device_id)
        # the tracker's state goes into the document only here, when the device is written
        saved = await self._store.save_device(replace(state, tracking=item.tracking.to_json() if item.tracking
                                                      else {}))
        self._remember(key, _CachedDevice.of(saved, item.partition, self._partitions.epoch(item.partition),
                                             item.tracking))

    def _remember(self, key: tuple[BuildingRef, str], cached: _CachedDevice) -> None:
        self._devices[key] = cached
        self._devices.move_to_end(key)
        while len(self._devices) > self._cache_size:
            self._devices.popitem(last=False)

    async def _write_beacon_health(self, batches: Sequence[tuple[InboundEvent, IngestEvent]],
                                   heard_in: dict[int, Building | None]) -> None:
        # Per beacon only the latest time heard and the latest telemetry: one pass, no object per sighting.
        heard: dict[BuildingRef, dict[str, float]] = {}
        buildings: dict[BuildingRef, Building] = {}
        telemetry: dict[tuple[BuildingRef, str], SdkTelemetry] = {}
        for _event, decoded in batches:
            columns = decoded.sightings
            if not columns.beacon and not decoded.telemetry:
                continue
            if columns.beacon and id(decoded) in heard_in:
                building = heard_in[id(decoded)]
            else:
                building = await self._sites.building_for(
                    decoded.tenant_id, columns.beacon or [t.beacon for t in decoded.telemetry])
            if building is None or building.index is None:
                continue
            buildings[building.ref] = building
            latest = heard.setdefault(building.ref, {})
            for beacon, at in newest_per_beacon(columns.beacon, columns.ts).items():
                if latest.get(beacon, -math.inf) < at:
                    latest[beacon] = at
            known = building.index.beacon_index
            for t in decoded.telemetry:
                if t.beacon in known:
                    key = (building.ref, t.beacon)
                    if key not in telemetry or t.ts > telemetry[key].ts:
                        telemetry[key] = t
        heard_at = {(ref, beacon): at for ref, latest in heard.items() for beacon, at in latest.items()
                    if beacon in buildings[ref].index.beacon_index}  # type: ignore[union-attr]
        now = self._monotonic()
        writes = []
        for key in heard_at.keys() | telemetry.keys():
            ref, beacon = key
            written = self._beacons_written.get(key)
            drift = self._drift(ref, beacon)
            if written is not None and key not in telemetry \
                    and now - written[0] < self._policy.beacon_health_interval_s \
                    and _flagged(written[1].drift, drift) == _flagged(written[1].drift, None):
                continue  # beacon health is coarse (silent for a day?): no need to write every sighting
            health = BeaconHealth(ref.tenant_id, ref.building_id, beacon,
                                  datetime.fromtimestamp(heard_at[key], tz=UTC) if key in heard_at
                                  else telemetry[key].ts, drift=drift)
            if key in telemetry:
                t = telemetry[key]
                health = health.merged(BeaconHealth(ref.tenant_id, ref.building_id, beacon, t.ts, t.battery_mv,
                                                    t.solar_lux, t.temperature_c, t.ts))
            if written is not None:
                health = written[1].merged(health)
            if key in telemetry:
                # every reading goes to the battery alert (it reads or writes only when the battery crosses)
                writes.append(self._alerts.on_telemetry(health))
            if written is not None:
                flag_changed = (health.drift is not None and health.drift.flagged) != (
                    written[1].drift is not None and written[1].drift.flagged)
                if not flag_changed and now - written[0] < self._policy.beacon_health_interval_s:
                    # Beacon health is coarse (silent after a day, the battery over weeks): the latest heard time
                    # and telemetry are kept here and written with the next rewrite.
                    self._beacons_written[key] = (written[0], health)
                    continue
            writes.append(self._save_beacon_health(key, health, now))
        await asyncio.gather(*writes)

    async def _save_beacon_health(self, key: tuple[BuildingRef, str], health: BeaconHealth, now: float) -> None:
        # Remembered as written once it is: a write that fails (Cosmos down) is made again when the call is retried.
        await self._store.save_beacon_health(health)
        self._beacons_written[key] = (now, health)


def _flagged(written: BeaconDrift | None, newer: BeaconDrift | None) -> bool:
    """Whether beacon health would say the beacon drifted once `newer` is merged into what was written
    (`BeaconHealth.merged` keeps the later drift)."""
    drift = newer if newer is not None and (written is None or newer.at >= written.at) else written
    return drift is not None and drift.flagged


_IGNORED_SKEW_S = 2.0  # network and queueing delay, not a wrong clock


def _finish_leave(state: DeviceState) -> Transition:
    """Complete a leave the presence sweep started but did not finish (see PresenceSweepService)."""
    space_id = state.leaving_space_id
    if space_id is None:  # both callers pick devices mid-leave
        raise RuntimeError(f"device {state.device_id} in building {state.building_id} is not leaving a space")
    at = state.last_seen
    change = OccupancyChange(state.building, space_id, state.device_id, "leave", at)
    visit = None
    if state.leaving_since is not None and at > state.leaving_since:
        visit = Visit(state.tenant_id, state.building_id, space_id, state.device_id, state.leaving_since,
                      at, state.user_id)
    return Transition((change,), visit)


class PresenceSweepService:
    """Takes phones that went silent out of their spaces: the timer's job, never TTL.

    A leave is written in three steps so a crash anywhere is finished by the next sweep or by the pipeline:
    1. the device records `leavingSpaceId` (over its etag: a device heard meanwhile is left alone),
    2. the visit and the occupancy change are written (idempotent),
    3. the device clears `leavingSpaceId`.
    """

    def __init__(self, store: LiveStateStore, timeout: timedelta, max_write_retries: int = 20,
                 sites: SiteDirectory | None = None) -> None:
        self._store = store
        self._timeout = timeout
        self._occupancy = OccupancyWriter(store, max_write_retries, SiteFacts(sites) if sites else None)

    async def sweep(self, now: datetime) -> int:
        """Close the presence of every device not heard for the timeout; returns how many left a space."""
        left = 0
        for device in await self._store.list_silent_devices(now - self._timeout):
            try:
                if device.space_id is not None:
                    device = await self._store.save_device(replace(
                        device, space_id=None, space_since=None, space_confidence=0.0,
                        leaving_space_id=device.space_id, leaving_since=device.space_since or device.last_seen))
                await self._occupancy.apply_transitions([_finish_leave(device)])
                await self._store.save_device(replace(device, leaving_space_id=None, leaving_since=None))
                left += 1
            except PreconditionFailed:
                # heard again meanwhile: the pipeline owns it now (and finishes any leave it finds)
                logger.info("presence sweep: device in building %s changed meanwhile, skipped", device.building_id)
        if left:
            logger.info("presence sweep: %d silent devices left their spaces", left)
        return left
