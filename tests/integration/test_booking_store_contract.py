"""The booking store contract, against the in-memory fake and Cosmos on the emulator.

Two tenants share the ids here (building `hq`, space `r-oak`, booking `b1`): one tenant's bookings are never
readable, listable or overwritable through the other's. A booking saved with its no-show event puts the event in
the same outbox the relay reads, both or neither.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.cosmos_bookings import CosmosBookingStore
from shared.adapters.cosmos_live_state import CosmosLiveStateStore
from shared.adapters.memory import InMemoryBookingStore, InMemoryLiveStateStore
from shared.domain.bookings import (
    Booking,
    BookingHold,
    BookingSettings,
    BookingSourceKind,
    CalendarSource,
    ReleaseState,
)
from shared.domain.events import BookingEventData, EventType, booking_subject, make_event
from shared.domain.ports import PreconditionFailed
from shared.domain.presence import SpaceState
from shared.domain.tenancy import BuildingRef
from tests.integration.conftest import emulator_database

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
A_HQ = BuildingRef("tenant-a", "hq")
B_HQ = BuildingRef("tenant-b", "hq")


@pytest.fixture(params=["memory", "cosmos"])
async def stores(request):
    """(bookings, live state): the booking store and the live-state store whose outbox it writes into."""
    if request.param == "memory":
        live = InMemoryLiveStateStore()
        yield InMemoryBookingStore(live), live
        return
    async with emulator_database(request, "bookings") as database:
        yield CosmosBookingStore(database), CosmosLiveStateStore(database)


def booking(building: BuildingRef = A_HQ, booking_id: str = "b1", minutes: int = 0, length: int = 60,
            space_id: str = "r-oak", **changes) -> Booking:
    base = Booking(building.tenant_id, building.building_id, space_id, booking_id, T0 + timedelta(minutes=minutes),
                   T0 + timedelta(minutes=minutes + length))
    return replace(base, **changes)


def no_show_event(b: Booking):
    data = BookingEventData(id=b.booking_id, space_id=b.space_id, name="Oak", kind="conferenceroom", floor="f0",
                            start=b.start, end=b.end, source=b.source.value, released=b.released)
    return make_event(b.building, booking_subject(b.space_id, b.booking_id), b.event_seq + 1,
                      EventType.booking_no_show, b.start + timedelta(minutes=10), data)


async def test_create_read_guarded_replace_and_delete(stores):
    store, _live = stores
    created = await store.save(booking(source=BookingSourceKind.ical, source_event_id="uid-1@example.com"))
    assert created.etag
    read = await store.get(A_HQ, "r-oak", "b1")
    assert replace(read, etag=None) == booking(source=BookingSourceKind.ical, source_event_id="uid-1@example.com")
    with pytest.raises(PreconditionFailed):
        await store.save(booking())  # creating twice
    moved = await store.save(replace(read, end=read.end + timedelta(minutes=30)))
    with pytest.raises(PreconditionFailed):
        await store.save(replace(read, released=True))  # stale etag
    assert (await store.get(A_HQ, "r-oak", "b1")).end == T0 + timedelta(minutes=90) and moved.etag != read.etag
    assert await store.delete(A_HQ, "r-oak", "b1") is True
    assert await store.delete(A_HQ, "r-oak", "b1") is False
    assert await store.get(A_HQ, "r-oak", "b1") is None


async def test_the_same_ids_in_two_tenants_are_two_bookings(stores):
    store, _live = stores
    await store.save(booking(A_HQ))
    assert await store.get(B_HQ, "r-oak", "b1") is None
    assert await store.list_bookings(B_HQ, T0 - timedelta(days=1), T0 + timedelta(days=1)) == []
    await store.save(booking(B_HQ, minutes=120))
    assert (await store.get(A_HQ, "r-oak", "b1")).start == T0
    assert (await store.get(B_HQ, "r-oak", "b1")).start == T0 + timedelta(hours=2)
    assert await store.delete(B_HQ, "r-oak", "b1")
    assert await store.get(A_HQ, "r-oak", "b1") is not None


async def test_lists_what_overlaps_a_range_by_start_per_building_and_space(stores):
    store, _live = stores
    await store.save(booking(booking_id="late", minutes=120))
    await store.save(booking(booking_id="early", minutes=0))
    await store.save(booking(booking_id="other-room", minutes=30, space_id="r-elm"))
    await store.save(booking(BuildingRef("tenant-a", "annex"), booking_id="annex", minutes=0))
    window = await store.list_bookings(A_HQ, T0 + timedelta(minutes=59), T0 + timedelta(minutes=121))
    assert [b.booking_id for b in window] == ["early", "other-room", "late"]
    # [start, end): a booking ending when the range starts, or starting when it ends, is outside it
    assert [b.booking_id for b in await store.list_bookings(A_HQ, T0 + timedelta(minutes=60),
                                                             T0 + timedelta(minutes=120))] == ["other-room"]
    assert [b.booking_id for b in await store.list_bookings(A_HQ, T0, T0 + timedelta(days=1), "r-oak")] == [
        "early", "late"]


async def test_running_bookings_as_much_as_a_status_needs_per_building(stores):
    store, _live = stores
    await store.save(booking(booking_id="early", minutes=0))
    await store.save(booking(booking_id="next", minutes=60))  # starts as "early" ends
    await store.save(booking(booking_id="gone", minutes=0, length=30, space_id="r-elm", no_show_at=T0))
    await store.save(booking(booking_id="given", minutes=10, space_id="r-ash", released=True))
    await store.save(booking(BuildingRef("tenant-a", "annex"), booking_id="annex", minutes=0))
    await store.save(booking(B_HQ, booking_id="theirs", minutes=0))
    at = T0 + timedelta(minutes=20)
    running = await store.list_running(A_HQ, at)
    assert running == [BookingHold("r-elm", "gone", T0, T0 + timedelta(minutes=30), True),
                       BookingHold("r-oak", "early", T0, T0 + timedelta(minutes=60), False),
                       BookingHold("r-ash", "given", T0 + timedelta(minutes=10), T0 + timedelta(minutes=70), True)]
    # start <= at < end: at the hour "early" has ended and "next" runs; "gone" ended at half past
    assert [(h.booking_id, h.space_id) for h in await store.list_running(A_HQ, T0 + timedelta(minutes=60))] == [
        ("given", "r-ash"), ("next", "r-oak")]
    assert [h.booking_id for h in await store.list_running(B_HQ, at)] == ["theirs"]
    assert await store.list_running(A_HQ, T0 - timedelta(microseconds=1)) == []


async def test_open_checks_and_pending_releases_are_found_across_buildings(stores):
    store, _live = stores
    await store.save(booking(A_HQ, "due", minutes=-30))
    await store.save(booking(B_HQ, "due-b", minutes=-15))
    await store.save(booking(A_HQ, "decided", minutes=-30, checked_in_at=T0))
    await store.save(booking(A_HQ, "later", minutes=30))
    await store.save(booking(A_HQ, "to-release", minutes=-60, no_show_at=T0 - timedelta(minutes=50),
                             released=True, release_state=ReleaseState.pending))
    due = await store.list_checks_due(T0 - timedelta(minutes=10))
    assert [(b.tenant_id, b.booking_id) for b in due] == [("tenant-a", "due"), ("tenant-b", "due-b")]
    assert [b.booking_id for b in await store.list_releases_pending()] == ["to-release"]


async def test_a_no_show_and_its_event_are_written_together_or_not_at_all(stores):
    store, live = stores
    stored = await store.save(booking())
    decided = replace(stored, no_show_at=T0 + timedelta(minutes=10), event_seq=1)
    event = no_show_event(stored)
    await store.save(decided, [event])
    assert [e.id for e in await live.pending()] == [event.id]
    assert (await store.get(A_HQ, "r-oak", "b1")).no_show_at == T0 + timedelta(minutes=10)
    # A second writer from the same read loses on the etag: neither its booking nor its event is written.
    with pytest.raises(PreconditionFailed):
        await store.save(replace(stored, no_show_at=T0 + timedelta(minutes=11)), [no_show_event(replace(
            stored, start=T0 + timedelta(minutes=1)))])
    assert [e.id for e in await live.pending()] == [event.id]
    await live.remove(event)
    assert await live.pending() == []
    # The bookings never show up as spaces (the live views list state documents only).
    assert await live.list_spaces(A_HQ) == []


async def test_racing_no_show_writers_make_one_event(stores):
    store, live = stores
    stored = await store.save(booking())
    decided = replace(stored, no_show_at=T0 + timedelta(minutes=10), event_seq=1)
    results = await asyncio.gather(*(store.save(decided, [no_show_event(stored)]) for _ in range(3)),
                                   return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, PreconditionFailed) for r in results if isinstance(r, Exception))
    assert len(await live.pending()) == 1


async def test_settings_default_and_are_per_building(stores):
    store, live = stores
    assert await store.get_settings(A_HQ) == BookingSettings("tenant-a", "hq")
    saved = await store.put_settings(BookingSettings("tenant-a", "hq", release_no_shows=True))
    assert saved.release_no_shows and saved.etag
    assert (await store.get_settings(A_HQ)).release_no_shows
    assert not (await store.get_settings(B_HQ)).release_no_shows
    await live.save_space(SpaceState.empty(A_HQ, "r-oak"))
    assert [s.space_id for s in await live.list_spaces(A_HQ)] == ["r-oak"]


async def test_calendar_sources_per_space_guarded_and_listed_across_buildings(stores):
    store, live = stores
    source = CalendarSource("tenant-a", "hq", "r-oak", BookingSourceKind.graph, mailbox="room-oak@contoso.com",
                            client_state="s3cret", subscription_expires_at=T0)
    saved = await store.save_source(source)
    assert replace(saved, etag=None) == source and saved.etag
    with pytest.raises(PreconditionFailed):
        await store.save_source(source)  # creating twice
    synced = await store.save_source(replace(saved, cursor="https://graph/delta?$deltatoken=1", last_sync_at=T0))
    with pytest.raises(PreconditionFailed):
        await store.save_source(replace(saved, sync_requested=True))  # stale etag
    assert (await store.get_source(A_HQ, "r-oak")).cursor == synced.cursor
    assert await store.get_source(B_HQ, "r-oak") is None
    await store.save_source(CalendarSource("tenant-b", "hq", "r-oak", BookingSourceKind.ical, url="https://x.example/a"))
    assert [(s.tenant_id, s.kind) for s in await store.list_sources()] == [
        ("tenant-a", BookingSourceKind.graph), ("tenant-b", BookingSourceKind.ical)]
    assert await live.list_spaces(A_HQ) == [] and await store.list_bookings(A_HQ, T0, T0 + timedelta(days=1)) == []
    assert await store.delete_source(A_HQ, "r-oak") and not await store.delete_source(A_HQ, "r-oak")
    assert [s.tenant_id for s in await store.list_sources()] == ["tenant-b"]
