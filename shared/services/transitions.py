"""The events of transitions that are not a phone moving: held-back headcounts, beacons gone silent, batteries
running low. Each is written with the state it changes, in one atomic batch (LiveStateStore), over that state's
etag, so racing processors and repeated sweeps make each event exactly once (docs/events.md)."""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime

from shared.domain.events import (
    SILENT_AFTER,
    BeaconAlerts,
    BeaconFacts,
    SpaceFacts,
    battery_event,
    due_headcount_event,
    silence_event,
)
from shared.domain.floor_summary import floor_space_ids
from shared.domain.ports import LiveStateStore, PreconditionFailed
from shared.domain.presence import BeaconHealth
from shared.domain.tenancy import BuildingRef
from shared.services.sites import SiteDirectory, SiteUnavailable

logger = logging.getLogger(__name__)


class SiteFacts:
    """The static part of the events' data (a space's name, kind, floor...; a beacon's place), from the site
    models through the SiteDirectory (cached there; re-read when a building's version changes)."""

    def __init__(self, sites: SiteDirectory) -> None:
        self._sites = sites
        # per building: the version indexed, its spaces and beacons by id
        self._indexed: dict[BuildingRef, tuple[str, dict[str, SpaceFacts], dict[str, BeaconFacts]]] = {}
        # per building: the version indexed, each space's floor and that floor's space ids in site order
        self._floors: dict[BuildingRef, tuple[str, dict[str, tuple[str, tuple[str, ...]]]]] = {}

    async def _index(self, building: BuildingRef) -> tuple[dict[str, SpaceFacts], dict[str, BeaconFacts]]:
        try:
            loaded = await self._sites.get(building)
        except SiteUnavailable:
            loaded = None
        if loaded is None:
            return {}, {}
        cached = self._indexed.get(building)
        if cached is not None and cached[0] == loaded.etag:
            return cached[1], cached[2]
        spaces = {s.id: SpaceFacts(name=s.name, kind=s.kind.value, floor=s.floor, capacity=s.capacity,
                                   amenities=tuple(s.amenities), bookable=s.bookable) for s in loaded.site.spaces}
        beacons = {b.id: BeaconFacts(floor=b.floor, x=b.x, y=b.y) for b in loaded.site.beacons}
        self._indexed[building] = (loaded.etag, spaces, beacons)
        return spaces, beacons

    async def space(self, building: BuildingRef, space_id: str) -> SpaceFacts:
        spaces, _beacons = await self._index(building)
        return spaces.get(space_id) or SpaceFacts.unknown(space_id)

    async def floor_of(self, building: BuildingRef, space_id: str) -> tuple[str, tuple[str, ...]] | None:
        """The space's floor and that floor's space ids in the site model's order (what its floor summary
        follows); None for a space the site model does not have."""
        try:
            loaded = await self._sites.get(building)
        except SiteUnavailable:
            loaded = None
        if loaded is None:
            return None
        cached = self._floors.get(building)
        if cached is None or cached[0] != loaded.etag:
            floors = floor_space_ids(loaded.site.spaces)
            cached = (loaded.etag, {s: (f, ids) for f, ids in floors.items() for s in ids})
            self._floors[building] = cached
        return cached[1].get(space_id)

    async def beacon(self, building: BuildingRef, beacon_id: str) -> BeaconFacts | None:
        _spaces, beacons = await self._index(building)
        return beacons.get(beacon_id)


class BeaconAlertWriter:
    """beacon.battery-low from the telemetry the pipeline writes. The alerts of each beacon are remembered per
    instance, so a battery that stays where it is costs no read; a crossing is written over the stored alerts'
    etag (another instance may have raised it first: then nothing more is written)."""

    def __init__(self, store: LiveStateStore, facts: SiteFacts, max_retries: int = 5) -> None:
        self._store = store
        self._facts = facts
        self._max_retries = max_retries
        self._known: dict[tuple[BuildingRef, str], bool] = {}  # beacon -> battery low, as last read or written
        self.raised = 0

    async def on_telemetry(self, health: BeaconHealth) -> None:
        battery = health.battery_mv
        if battery is None:
            return
        key = (health.building, health.beacon_id)
        known = self._known.get(key)
        probe = BeaconAlerts.none(health.building, health.beacon_id)
        if known is not None and battery_event(replace(probe, battery_low=known), health, _NOWHERE) is None:
            return  # no crossing from what this instance knows: nothing to read or write
        facts = await self._facts.beacon(health.building, health.beacon_id)
        if facts is None:
            return
        for _attempt in range(self._max_retries):
            alerts = (await self._store.get_beacon_alerts(health.building, health.beacon_id)
                      or BeaconAlerts.none(health.building, health.beacon_id))
            outcome = battery_event(alerts, health, facts)
            if outcome is None:
                self._known[key] = alerts.battery_low
                return
            updated, event = outcome
            try:
                await self._store.save_beacon_alerts(updated, [event] if event else [])
            except PreconditionFailed:
                continue  # another writer changed the alerts: decide again from theirs
            self._known[key] = updated.battery_low
            self.raised += event is not None
            return
        logger.warning("battery alerts of a beacon in building %s: gave up after conflicting writes",
                       health.building_id)


_NOWHERE = BeaconFacts(floor="", x=0.0, y=0.0)  # only to ask whether a crossing happens, never written


class TransitionSweepService:
    """The timer's part of the events: headcount events held back by the one-a-minute rule once they are due,
    and beacons not heard for 24 hours."""

    def __init__(self, store: LiveStateStore, facts: SiteFacts, max_retries: int = 5) -> None:
        self._store = store
        self._facts = facts
        self._max_retries = max_retries

    async def sweep(self, now: datetime) -> int:
        """Write the events that are due; returns how many were written."""
        written = await self._due_headcounts(now) + await self._silent_beacons(now)
        if written:
            logger.info("transition sweep: %d events", written)
        return written

    async def _due_headcounts(self, now: datetime) -> int:
        written = 0
        for space in await self._store.list_spaces_due(now):
            facts = await self._facts.space(space.building, space.space_id)
            for _attempt in range(self._max_retries):
                outcome = due_headcount_event(space, facts, now)
                if outcome is None:
                    break
                state, event = outcome
                try:
                    await self._store.save_space(state, [event] if event else [])
                except PreconditionFailed:
                    # the pipeline wrote the space meanwhile: decide again from its version
                    fresh = await self._store.get_space(space.building, space.space_id)
                    if fresh is None:
                        break
                    space = fresh
                    continue
                written += event is not None
                break
        return written

    async def _silent_beacons(self, now: datetime) -> int:
        written = 0
        for health in await self._store.list_silent_beacons(now - SILENT_AFTER):
            facts = await self._facts.beacon(health.building, health.beacon_id)
            if facts is None:
                continue  # a beacon no longer in the site model: nobody to tell about it
            alerts = (await self._store.get_beacon_alerts(health.building, health.beacon_id)
                      or BeaconAlerts.none(health.building, health.beacon_id))
            outcome = silence_event(alerts, health, facts, now)
            try:
                if outcome is None:  # reported; a later health write with the same lastHeard dropped the mark
                    await self._store.save_beacon_alerts(alerts, [], silence_of=health)
                    continue
                await self._store.save_beacon_alerts(outcome[0], [outcome[1]], silence_of=health)
            except PreconditionFailed:
                continue  # heard meanwhile, or another sweep reported it: nothing to do
            written += 1
        return written
