"""What people in the building and integrators ask: live state, free rooms, the way there, amenities, beacons."""
from __future__ import annotations

import asyncio
import base64
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain import space_kinds
from shared.domain.bookings import (
    NEXT_BOOKING_HORIZON,
    Booking,
    BookingHold,
    SpaceStatus,
    free_for,
    next_booking,
    running_booking,
)
from shared.domain.errors import ContractViolation, FieldError, NotFound
from shared.domain.floor_summary import FloorSummary, SpaceSnapshot, floor_space_ids, order_key
from shared.domain.ports import BookingStore, LiveStateStore, PreconditionFailed
from shared.domain.presence import SpaceState
from shared.domain.site import Space, SpaceKind
from shared.domain.tenancy import BuildingRef
from shared.domain.wayfinding import NavigationIndex, NoRoute, Place, Route, UnknownPlace
from shared.services.common import Clock, utc_now
from shared.services.sites import Building, SiteDirectory

MEETING_KINDS = space_kinds.MEETING_ROOMS
SILENT_AFTER = timedelta(hours=24)
DEFAULT_FREE_FOR = timedelta(minutes=30)  # free-rooms: free now and for this long (no booking holds the room)
# changed_views reads the space documents of the spaces that look changed by id while they are at most this share
# of the building's spaces (and at least this many): a point read of a space document (~0.4 KB) is 1 RU, a query of
# the building's space documents costs what its bytes do, which by Azure's documented read costs is under
# 0.05 RU a document (73 RU for the 1,949 documents of bench queries' tower).
POINT_READ_SHARE = 0.04
POINT_READS_AT_LEAST = 8
_POINT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*([A-Za-z0-9][A-Za-z0-9._\-]*)\s*$")
AMENITY_KINDS = space_kinds.AMENITY_SEARCH
# Every space kind a `kind` filter may name (IMDF unit categories); anything else is a 400 naming `query.kind`.
KNOWN_KINDS = frozenset(k.value for k in SpaceKind)


@dataclass(frozen=True)
class SpaceView:
    """A space with its live state and, when the question looked at bookings, the booking running now and the
    space's next one (docs/bookings.md)."""

    space: Space
    state: SpaceState | None
    booking: Booking | BookingHold | None = None  # running now
    next_booking: Booking | None = None  # the first booking holding the room that starts later
    snapshot: SpaceSnapshot | None = None  # instead of `state`, when the answer came from the floor summaries

    @property
    def live(self) -> SpaceState | SpaceSnapshot | None:
        return self.snapshot if self.snapshot is not None else self.state

    @property
    def status(self) -> SpaceStatus:
        """`occupied` when someone is in; `booked` while a booking runs and nobody is in, `reclaimable` once that
        booking is a no-show; else `free`."""
        live = self.live
        if live is not None and live.status == "occupied":
            return "occupied"
        if self.booking is None:
            return "free"
        return "reclaimable" if self.booking.gives_room_back else "booked"

    @property
    def headcount(self) -> int:
        live = self.live
        return live.headcount if live else 0

    @property
    def since(self) -> datetime | None:
        live = self.live
        return live.since if live else None


@dataclass(frozen=True)
class Nearby:
    """A space and how far it is to walk there; both None when the question gave no `near`."""

    view: SpaceView
    distance_m: float | None
    eta_s: float | None


@dataclass(frozen=True)
class Page:
    items: list[SpaceView]
    continuation: str | None


@dataclass(frozen=True)
class BeaconStatus:
    beacon_id: str
    floor: str
    x: float
    y: float
    last_heard: datetime | None
    battery_mv: int | None
    solar_lux: float | None
    temperature_c: float | None
    silent: bool
    drift_db: float | None = None  # measured-power drift seen by positioning's self-calibration
    drift_flagged: bool = False


_Candidate = tuple[float, str, float, Space]  # a free room found: distance, id, eta, the space


@dataclass(frozen=True)
class _Layout:
    floors: dict[str, tuple[tuple[str, ...], str]]  # floor -> its space ids in site order, their order_key
    kinds: tuple[str, ...]  # each space's kind, in site order
    position: dict[str, tuple[str, int]]  # space id -> its floor and its place in the floor's summary


@dataclass(frozen=True)
class _LiveState:
    """The building's live state as free rooms, occupancy and the streams read it: the space documents, or the
    floor summaries (read by each space's place in its floor's summary)."""

    states: dict[str, SpaceState]
    summaries: dict[str, FloorSummary] | None  # by floor, when the live state came from them
    position: dict[str, tuple[str, int]]

    def occupied(self, space_id: str) -> bool:
        if self.summaries is None:
            state = self.states.get(space_id)
            return state is not None and state.status == "occupied"
        floor, index = self.position[space_id]
        return self.summaries[floor].occupied(index)

    def snapshot(self, space_id: str) -> SpaceSnapshot | None:
        """What the summary says of a space (its sinces must have been read); None for a space without a
        document."""
        if self.summaries is None:
            return None
        floor, index = self.position[space_id]
        return self.summaries[floor].snapshot(index)

    def entry(self, space_id: str) -> object:
        """The space's summary entry: equal entries, equal live states."""
        if self.summaries is None:
            return None
        floor, index = self.position[space_id]
        return self.summaries[floor].entry(index)


class QueryService:
    def __init__(self, directory: SiteDirectory, live: LiveStateStore, clock: Clock = utc_now,
                 bookings: BookingStore | None = None) -> None:
        self._directory = directory
        self._live = live
        self._clock = clock
        self._bookings = bookings
        self._navigation: OrderedDict[tuple[BuildingRef, str], NavigationIndex] = OrderedDict()
        self._layouts: OrderedDict[tuple[BuildingRef, str], _Layout] = OrderedDict()

    async def building(self, ref: BuildingRef) -> Building:
        """The tenant's building; NotFound (the same answer for another tenant's building as for none)."""
        building = await self._directory.get(ref)
        if building is None:
            raise NotFound(f"no building '{ref.building_id}'")
        return building

    async def buildings(self, tenant_id: str) -> list[Building]:
        return await self._directory.all(tenant_id)

    def navigation(self, building: Building) -> NavigationIndex:
        if building.navigation is not None:
            return building.navigation  # built with the building, off the event loop
        key = (building.ref, building.etag)
        index = self._navigation.get(key)
        if index is None:
            index = NavigationIndex.from_site(building.site)
            self._navigation[key] = index
            while len(self._navigation) > 64:
                self._navigation.popitem(last=False)
        return index

    async def views(self, building: Building, with_bookings: bool = True) -> list[SpaceView]:
        """Every space with its live state; `with_bookings`, with the booking running now and the next one."""
        views, _bookings = await self._views(building, NEXT_BOOKING_HORIZON if with_bookings else None)
        return views

    async def changed_views(self, building: Building, changed: Callable[[SpaceView], bool],
                            unchanged: dict[str, object] | None = None) -> list[SpaceView]:
        """The spaces for which `changed(view)` holds, in site order, each with its space document and the booking
        running now (as much of it as the status needs: BookingStore.list_running; no next booking), reading as
        little as the floor summaries allow (docs/streaming.md): each space is judged from its floor summary first
        (a view with a `snapshot`), then the documents of those that look changed are read by id, concurrently, and
        judged again. `changed` must judge by what a summary holds
        (status, headcount, since, the space and its booking). From the space documents of the whole building in
        one query instead when more spaces look changed than point reads are cheaper for (`_point_reads_up_to`),
        and when the building has no usable summaries (`_live_state`'s fallback, which writes them).

        `unchanged`, kept by the caller from call to call: each space's summary entry, booking and site version
        when `changed` last said no for it, so a space whose entry is still the same is not decoded and judged
        again. What `changed` judges by may only change for the spaces returned (their entries are dropped)."""
        now = self._clock()
        live, holds = await asyncio.gather(self._live_state(building, sinces=True), self._running(building, now))
        memo: dict[str, object] = {} if unchanged is None else unchanged
        bookings: dict[str, list[BookingHold]] = {}
        for hold in holds:
            bookings.setdefault(hold.space_id, []).append(hold)

        def running(space: Space) -> BookingHold | None:
            held = bookings.get(space.id)
            return running_booking(held, now) if held else None

        def found(views: Iterable[SpaceView]) -> list[SpaceView]:
            out = [v for v in views if changed(v)]
            for view in out:
                memo.pop(view.space.id, None)
            return out

        spaces = building.site.spaces
        if live.summaries is None:
            return found(SpaceView(space, live.states.get(space.id), running(space)) for space in spaces)
        looks_changed = []
        for space in spaces:
            booking = running(space)
            entry = (live.entry(space.id), booking, space)
            if memo.get(space.id) == entry:
                continue
            if changed(SpaceView(space, None, booking, snapshot=live.snapshot(space.id))):
                looks_changed.append((space, booking))
            else:
                memo[space.id] = entry
        if not looks_changed:
            return []
        if len(looks_changed) > _point_reads_up_to(len(spaces)):
            states = {s.space_id: s for s in await self._live.list_spaces(building.ref)}
            return found(SpaceView(space, states.get(space.id), running(space)) for space in spaces)
        read = await asyncio.gather(*(self._live.get_space(building.ref, space.id) for space, _b in looks_changed))
        # judged again on the document: read after the summary it is as new or newer (then it is what is sent)
        return found(SpaceView(space, state, booking) for (space, booking), state in zip(looks_changed, read))

    async def _views(self, building: Building,
                     ahead: timedelta | None) -> tuple[list[SpaceView], dict[str, list[Booking]]]:
        """The views, and each space's bookings from now to `ahead` from now (one query of the building's
        partition; none when `ahead` is None or there is no booking store)."""
        states = {s.space_id: s for s in await self._live.list_spaces(building.ref)}
        per_space: dict[str, list[Booking]] = {}
        if ahead is not None and self._bookings is not None:
            now = self._clock()
            for booking in await self._bookings.list_bookings(building.ref, now, now + ahead):
                per_space.setdefault(booking.space_id, []).append(booking)
            return [SpaceView(space, states.get(space.id), running_booking(per_space.get(space.id, ()), now),
                              next_booking(per_space.get(space.id, ()), now))
                    for space in building.site.spaces], per_space
        return [SpaceView(space, states.get(space.id)) for space in building.site.spaces], per_space

    async def spaces(self, ref: BuildingRef, *, floor: str | None = None,
                     kind: str | None = None, status: str | None = None, min_capacity: int | None = None,
                     amenity: str | None = None, limit: int = 100, continuation: str | None = None) -> Page:
        building = await self.building(ref)
        self._check_floor(building, floor, "query.floor")
        if kind is not None:
            _check_kinds([kind])
        start = _decode_token(continuation, building)
        matches = [v for v in await self.views(building)
                   if (floor is None or v.space.floor == floor)
                   and (kind is None or v.space.kind.value == kind)
                   and (status is None or v.status == status)
                   and (min_capacity is None or v.space.capacity >= min_capacity)
                   and (amenity is None or amenity in v.space.amenities)]
        page = matches[start:start + limit]
        following = start + limit if start + limit < len(matches) else None
        return Page(page, _encode_token(following, building) if following is not None else None)

    async def space(self, ref: BuildingRef, space_id: str) -> SpaceView:
        building = await self.building(ref)
        space = next((s for s in building.site.spaces if s.id == space_id), None)
        if space is None:
            raise NotFound(f"no space '{space_id}' in building '{ref.building_id}'")
        state = await self._live.get_space(building.ref, space_id)
        if self._bookings is None or not space.bookable:
            return SpaceView(space, state)
        now = self._clock()
        bookings = await self._bookings.list_bookings(building.ref, now, now + NEXT_BOOKING_HORIZON, space_id)
        return SpaceView(space, state, running_booking(bookings, now), next_booking(bookings, now))

    async def occupancy(self, ref: BuildingRef) -> tuple[datetime, dict[str, int]]:
        building = await self.building(ref)
        per_floor = {f.id: 0 for f in sorted(building.site.floors, key=lambda f: f.ordinal)}
        live = await self._live_state(building)
        if live.summaries is not None:
            for floor_id, summary in live.summaries.items():
                per_floor[floor_id] += summary.headcount()
            return self._clock(), per_floor
        for space in building.site.spaces:
            state = live.states.get(space.id)
            if state is not None:
                per_floor[space.floor] += state.headcount
        return self._clock(), per_floor

    async def free_rooms(self, ref: BuildingRef, near: str, *, min_capacity: int | None = None,
                         amenity: str | None = None, kinds: list[str] | None = None, limit: int = 10,
                         accessible: bool = False, free_for_: timedelta = DEFAULT_FREE_FOR) -> list[Nearby]:
        """Rooms nobody is in and no booking holds for `free_for_` from now (a no-show's room counts as free), by
        walking distance from `near`; each view carries the room's next booking."""
        building = await self.building(ref)
        if kinds:
            _check_kinds(kinds)
        wanted = set(kinds) if kinds else set(MEETING_KINDS)
        distances = self._distances(building, near, "query.near", accessible)
        now = self._clock()
        live = await self._live_state(building)
        bookings = await self._bookings_ahead(building, now, max(free_for_, NEXT_BOOKING_HORIZON))
        found: list[_Candidate] = []
        for space, kind in zip(building.site.spaces, self._layout(building).kinds):
            if (kind not in wanted or space.id not in distances
                    or (min_capacity is not None and space.capacity < min_capacity)
                    or (amenity is not None and amenity not in space.amenities)):
                continue
            # free_for, with the status from whichever the live state came from: nobody in, and no booking
            # holds the room for free_for_
            if live.occupied(space.id) or (space.id in bookings
                                           and not free_for(None, bookings[space.id], now, free_for_)):
                continue
            distance, eta = distances[space.id]
            found.append((distance, space.id, eta, space))
        found.sort(key=lambda n: (n[0], n[1]))
        nearest = []
        for (distance, space_id, eta, space), state in await self._still_free(building, live, found, limit):
            held = bookings.get(space_id, [])
            view = (SpaceView(space, state, running_booking(held, now), next_booking(held, now))
                    if not isinstance(state, SpaceSnapshot)
                    else SpaceView(space, None, running_booking(held, now), next_booking(held, now), state))
            nearest.append(Nearby(view, distance, eta))
        return nearest

    async def _still_free(self, building: Building, live: _LiveState, found: list[_Candidate],
                          limit: int) -> list[tuple[_Candidate, SpaceState | SpaceSnapshot | None]]:
        """The first `limit` rooms found free, each with its live state (None: no space document). From the floor
        summaries, whose counts hold no since, the shown rooms' headcount and since are read from their space
        documents (one query, `limit` rooms at most, returning only those fields); a room someone entered since
        the counts were read is passed over for the next."""
        if live.summaries is None:
            return [(candidate, live.states.get(candidate[1])) for candidate in found[:limit]]
        shown: list[tuple[_Candidate, SpaceState | SpaceSnapshot | None]] = []
        at = 0
        while len(shown) < limit and at < len(found):
            ask = found[at:at + limit - len(shown)]
            at += len(ask)
            snapshots = await self._live.get_snapshots(building.ref, [c[1] for c in ask])
            shown += [(c, snapshots.get(c[1])) for c in ask if not (c[1] in snapshots and snapshots[c[1]].headcount)]
        return shown

    async def _running(self, building: Building, now: datetime) -> list[BookingHold]:
        return await self._bookings.list_running(building.ref, now) if self._bookings is not None else []

    async def _bookings_ahead(self, building: Building, now: datetime,
                              ahead: timedelta) -> dict[str, list[Booking]]:
        """Each space's bookings from now to `ahead` from now (one query of the building's partition)."""
        per_space: dict[str, list[Booking]] = {}
        if self._bookings is not None:
            for booking in await self._bookings.list_bookings(building.ref, now, now + ahead):
                per_space.setdefault(booking.space_id, []).append(booking)
        return per_space

    async def _live_state(self, building: Building, *, sinces: bool = False) -> _LiveState:
        """Each space's live state: from the building's floor summaries (one single-partition query; the counts,
        and the sinces too when `sinces`) when every floor with spaces has one that follows the floor's spaces as
        the site model orders them now. Otherwise (a building from before summaries, a floor nobody was seen on
        yet, a site model changed since) from the space documents, as every query once did, and the floors'
        summaries are written from them for the next query. Summaries are read before the spaces: a writer in
        between changes a summary's etag, and this one is then not written."""
        layout = self._layout(building)
        summaries = {s.floor_id: s for s in await self._live.list_floor_summaries(building.ref, sinces=sinces)}
        stale: list[tuple[str, tuple[str, ...], FloorSummary | None]] = []
        for floor_id, (space_ids, order) in layout.floors.items():
            summary = summaries.get(floor_id)
            if summary is None or not summary.fits(space_ids, order) or (sinces and not summary.complete()):
                stale.append((floor_id, space_ids, summary))
        if not stale:
            return _LiveState({}, {f: summaries[f] for f in layout.floors}, layout.position)
        states = {s.space_id: s for s in await self._live.list_spaces(building.ref)}
        for floor_id, space_ids, summary in stale:
            try:
                await self._live.save_floor(FloorSummary.build(building.ref, floor_id, space_ids, states,
                                                               etag=summary.etag if summary else None))
            except PreconditionFailed:
                pass  # a writer wrote the floor meanwhile, with its summary
        return _LiveState(states, None, layout.position)

    def _layout(self, building: Building) -> _Layout:
        """Each floor's space ids in site order with their order key, and each space's kind, per version of the
        building (cached)."""
        key = (building.ref, building.etag)
        layout = self._layouts.get(key)
        if layout is None:
            floors = {f: (ids, order_key(ids)) for f, ids in floor_space_ids(building.site.spaces).items()}
            position = {space_id: (f, i) for f, (ids, _order) in floors.items() for i, space_id in enumerate(ids)}
            layout = _Layout(floors, tuple(s.kind.value for s in building.site.spaces), position)
            self._layouts[key] = layout
            while len(self._layouts) > 64:
                self._layouts.popitem(last=False)
        return layout

    async def amenities(self, ref: BuildingRef, kind: str, near: str | None, *,
                        limit: int = 10, accessible: bool = False) -> list[Nearby]:
        building = await self.building(ref)
        # `kind` is an amenity word (AMENITY_SEARCH: kitchen, restroom...), a space kind, or an amenity some space
        # of this building lists (printer, display...); anything else is a typo, answered 400 rather than [].
        present = {a for s in building.site.spaces for a in s.amenities}
        if kind not in AMENITY_KINDS and kind not in KNOWN_KINDS and kind not in present:
            raise ContractViolation([FieldError(
                "query.kind", f"unknown kind '{kind[:64]}': neither an amenity search "
                f"({', '.join(sorted(AMENITY_KINDS))}), a space kind, nor an amenity of a space in this building")])
        kinds = AMENITY_KINDS.get(kind, frozenset({kind}))
        candidates = [v for v in await self.views(building, with_bookings=False)
                      if v.space.kind.value in kinds or kind in v.space.amenities]
        if near is None:  # no origin: no distance either (null, never a made-up 0)
            return [Nearby(v, None, None) for v in sorted(candidates, key=lambda v: v.space.id)][:limit]
        distances = self._distances(building, near, "query.near", accessible)
        found = [Nearby(v, *distances[v.space.id]) for v in candidates if v.space.id in distances]
        found.sort(key=lambda n: (n.distance_m or 0.0, n.view.space.id))
        return found[:limit]

    async def route(self, ref: BuildingRef, origin: str, destination: str,
                    accessible: bool) -> Route:
        building = await self.building(ref)
        navigation = self.navigation(building)
        start = _place(building, origin, "query.from")
        end = _place(building, destination, "query.to")
        try:
            return navigation.route(start, end, accessible=accessible)
        except UnknownPlace as exc:
            field = "query.to" if exc.place == end and exc.place != start else "query.from"
            raise ContractViolation([FieldError(field, str(exc))]) from None
        except NoRoute as exc:
            raise NotFound(f"no route: {exc}") from None

    async def beacon_health(self, ref: BuildingRef) -> list[BeaconStatus]:
        building = await self.building(ref)
        health = {h.beacon_id: h for h in await self._live.list_beacon_health(building.ref)}
        now = self._clock()
        out = []
        for beacon in building.site.beacons:
            h = health.get(beacon.id)
            last = h.last_heard if h else None
            drift = h.drift if h else None
            out.append(BeaconStatus(
                beacon.id, beacon.floor, beacon.x, beacon.y, last, h.battery_mv if h else None,
                h.solar_lux if h else None, h.temperature_c if h else None,
                silent=last is None or now - last > SILENT_AFTER,
                drift_db=None if drift is None or drift.drift_db is None else round(drift.drift_db, 1),
                drift_flagged=drift is not None and drift.flagged,
            ))
        return out

    def _distances(self, building: Building, near: str, field: str,
                   accessible: bool) -> dict[str, tuple[float, float]]:
        try:
            return self.navigation(building).distances_from(_place(building, near, field), accessible=accessible)
        except UnknownPlace as exc:
            raise ContractViolation([FieldError(field, str(exc))]) from None

    @staticmethod
    def _check_floor(building: Building, floor: str | None, field: str) -> None:
        if floor is not None and floor not in {f.id for f in building.site.floors}:
            raise ContractViolation([FieldError(field, f"unknown floor '{floor}'")])


def _point_reads_up_to(spaces: int) -> int:
    return max(POINT_READS_AT_LEAST, int(spaces * POINT_READ_SHARE))


def _check_kinds(kinds: list[str]) -> None:
    unknown = [k for k in kinds if k not in KNOWN_KINDS]
    if unknown:
        raise ContractViolation([FieldError("query.kind", f"unknown space kind '{unknown[0][:64]}' "
                                                          "(the IMDF unit categories: conferenceroom, office...)")])


def _place(building: Building, text: str, field: str) -> Place:
    """A space id, or `x,y,floor` in building metres."""
    match = _POINT.match(text)
    if match:
        x, y, floor = float(match[1]), float(match[2]), match[3]
        if floor not in {f.id for f in building.site.floors}:
            raise ContractViolation([FieldError(field, f"unknown floor '{floor}'")])
        return (x, y, floor)
    if text not in {s.id for s in building.site.spaces}:
        raise ContractViolation([FieldError(field, f"'{text[:64]}' is neither a space id nor 'x,y,floor'")])
    return text


def _encode_token(offset: int, building: Building) -> str:
    raw = json.dumps({"o": offset, "v": building.etag}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str | None, building: Building) -> int:
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(data["o"])
        if offset < 0 or data["v"] != building.etag:
            raise ValueError
        return offset
    except (ValueError, KeyError, TypeError):
        raise ContractViolation([FieldError("query.continuationToken",
                                            "not a token from this listing (or the site changed since)")]) from None
