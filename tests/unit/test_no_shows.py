"""No-shows end to end over the in-memory stores (the Cosmos batch is held to the same contract in
tests/integration/test_booking_store_contract.py): a phone entering the booked room is a check-in; a room left
empty is exactly one `booking.no-show` event and, where the building releases no-shows, one release at the
source, however often the timer runs, however many run at once, and when the phone's batches are redelivered."""
from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shared.adapters.memory import (
    InMemoryBookingStore,
    InMemoryDeliveryStore,
    InMemoryEventLog,
    InMemoryLiveStateStore,
    InMemorySiteModelStore,
    InMemorySubscriptionStore,
)
from shared.domain.bookings import Booking, BookingSettings, BookingSourceKind, ReleaseState
from shared.domain.events import EventType
from shared.domain.ports import DependencyUnavailable
from shared.domain.tenancy import BuildingRef
from shared.services.delivery import EventRelay, SubscriptionCache
from shared.services.no_shows import FlagRelease, NoShowService
from shared.services.pipeline import PipelineService
from shared.services.sites import SiteDirectory
from shared.services.transitions import SiteFacts
from tests.support.pipeline import add_small_site, room_event

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HQ = BuildingRef("tenant-a", "hq")
TEN = timedelta(minutes=10)


class CountingReleaser:
    """A source that counts how often it is asked to give a room back; `fail_first` times it cannot be reached."""

    def __init__(self, fail_first: int = 0, answer: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_first = fail_first
        self.answer = answer

    async def release(self, booking: Booking) -> str | None:
        self.calls.append(booking.booking_id)
        await asyncio.sleep(0)  # let racing releasers interleave
        if len(self.calls) <= self.fail_first:
            raise DependencyUnavailable("graph", "timed out")
        return self.answer


class World:
    def __init__(self, releaser: CountingReleaser | None = None) -> None:
        self.sites = InMemorySiteModelStore()
        self.live = InMemoryLiveStateStore()
        self.bookings = InMemoryBookingStore(self.live)
        self.directory = SiteDirectory(self.sites)
        self.pipeline = PipelineService(self.directory, self.live)
        self.releaser = releaser or CountingReleaser()

    def service(self) -> NoShowService:
        return NoShowService(self.bookings, self.live, SiteFacts(self.directory),
                             {BookingSourceKind.graph: self.releaser, BookingSourceKind.api: FlagRelease()}, TEN)

    async def book(self, booking_id: str = "b1", source: BookingSourceKind = BookingSourceKind.graph,
                   minutes: int = 0) -> Booking:
        start = T0 + timedelta(minutes=minutes)
        return await self.bookings.save(Booking("tenant-a", "hq", "r-oak", booking_id, start,
                                                start + timedelta(hours=1), source, f"event-{booking_id}"))

    async def no_show_events(self):
        return [e for e in await self.live.pending() if e.type is EventType.booking_no_show]


@pytest.fixture
async def world():
    w = World()
    await add_small_site(w.sites)
    return w


async def test_a_room_nobody_enters_is_one_no_show_event_however_often_and_however_many_timers_run(world):
    await world.book()
    service = world.service()
    assert await service.sweep(T0 + timedelta(minutes=9)) == 0 and await world.no_show_events() == []
    results = await asyncio.gather(*(s.sweep(T0 + TEN) for s in (service, world.service(), world.service())))
    assert sum(results) == 1
    assert await service.sweep(T0 + timedelta(minutes=11)) == 0
    [event] = await world.no_show_events()
    assert event.subject == "spaces/r-oak/bookings/b1" and event.time == T0 + TEN and event.sequence == "000000000001"
    assert (event.data.space_id, event.data.name, event.data.kind, event.data.floor) == (
        "r-oak", "Oak", "conferenceroom", "f0")
    assert (event.data.start, event.data.released, event.data.source) == (T0, False, "graph")
    stored = await world.bookings.get(HQ, "r-oak", "b1")
    assert stored.no_show_at == T0 + TEN and stored.release_state is ReleaseState.none
    assert world.releaser.calls == []  # releasing is off by default


async def test_a_person_entering_is_a_check_in_even_when_their_batches_are_redelivered(world):
    await world.book()
    batches = [room_event(T0 + timedelta(minutes=3, seconds=20 * i), "r-oak", device="install-7") for i in range(3)]
    await world.pipeline.process(batches)
    await world.pipeline.process(batches)  # redelivered by the hub: changes nothing
    await world.service().sweep(T0 + TEN)
    stored = await world.bookings.get(HQ, "r-oak", "b1")
    assert stored.no_show_at is None and stored.checked_in_at is not None
    assert T0 <= stored.checked_in_at <= T0 + timedelta(minutes=4)
    assert await world.no_show_events() == []


async def test_someone_in_the_kitchen_does_not_check_in_the_meeting_room(world):
    await world.book()
    await world.pipeline.process([room_event(T0 + timedelta(minutes=2, seconds=20 * i), "k-0", device="install-8")
                                  for i in range(3)])
    await world.service().sweep(T0 + TEN)
    assert len(await world.no_show_events()) == 1


async def test_release_on_gives_the_room_back_once_at_the_source_under_racing_and_repeated_timers(world):
    await world.bookings.put_settings(BookingSettings("tenant-a", "hq", release_no_shows=True))
    await world.book()
    await asyncio.gather(*(world.service().sweep(T0 + TEN) for _ in range(4)))
    for minute in (11, 12, 30):
        await world.service().sweep(T0 + timedelta(minutes=minute))
    assert world.releaser.calls == ["b1"]
    [event] = await world.no_show_events()
    assert event.data.released is True
    stored = await world.bookings.get(HQ, "r-oak", "b1")
    assert stored.released and stored.release_state is ReleaseState.done
    # The relay hands the one event on; relaying again (a redelivery of the outbox) adds nothing.
    log = InMemoryEventLog()
    relay = EventRelay(world.live, log, InMemoryDeliveryStore(), SubscriptionCache(InMemorySubscriptionStore()))
    assert await relay.relay_pending() == 1 and await relay.relay_pending() == 0
    assert [e.type for e in await log.since("tenant-a", "hq", T0)] == [EventType.booking_no_show]


async def test_a_source_that_cannot_be_reached_is_asked_again_after_the_claim_lapses(world):
    world.releaser = CountingReleaser(fail_first=1)
    await world.bookings.put_settings(BookingSettings("tenant-a", "hq", release_no_shows=True))
    await world.book()
    await world.service().sweep(T0 + TEN)
    assert (await world.bookings.get(HQ, "r-oak", "b1")).release_state is ReleaseState.pending
    await world.service().sweep(T0 + TEN + timedelta(seconds=30))  # still claimed by the failed attempt
    assert len(world.releaser.calls) == 1
    await world.service().sweep(T0 + TEN + timedelta(minutes=3))
    assert len(world.releaser.calls) == 2
    assert (await world.bookings.get(HQ, "r-oak", "b1")).release_state is ReleaseState.done
    assert len(await world.no_show_events()) == 1


async def test_a_source_refusing_for_good_is_recorded_not_retried(world):
    world.releaser = CountingReleaser(answer="404: the occurrence is gone")
    await world.bookings.put_settings(BookingSettings("tenant-a", "hq", release_no_shows=True))
    await world.book()
    for minute in (10, 15, 30):
        await world.service().sweep(T0 + timedelta(minutes=minute))
    stored = await world.bookings.get(HQ, "r-oak", "b1")
    assert len(world.releaser.calls) == 1
    assert (stored.release_state, stored.release_error) == (ReleaseState.failed, "404: the occurrence is gone")


async def test_api_bookings_are_released_by_their_flag_and_a_moved_booking_is_decided_again(world):
    await world.bookings.put_settings(BookingSettings("tenant-a", "hq", release_no_shows=True))
    await world.book("api-1", BookingSourceKind.api)
    await world.service().sweep(T0 + TEN)
    stored = await world.bookings.get(HQ, "r-oak", "api-1")
    assert stored.released and stored.release_state is ReleaseState.done and world.releaser.calls == []
    # the booking system moves it to the afternoon: a new decision, and a new event if nobody comes again
    from shared.domain.bookings import rescheduled

    moved = await world.bookings.save(rescheduled(stored, T0 + timedelta(hours=5), T0 + timedelta(hours=6)))
    assert not moved.released and not moved.decided
    await world.service().sweep(T0 + timedelta(hours=5, minutes=10))
    events = await world.no_show_events()
    assert [e.sequence for e in events] == ["000000000001", "000000000002"] and len({e.id for e in events}) == 2


async def test_a_cancelled_booking_is_not_decided(world):
    booking = await world.book()
    service = world.service()
    await world.bookings.delete(HQ, "r-oak", "b1")
    assert await service.sweep(T0 + TEN) == 0
    # a stale read racing a cancellation: the write fails, the fresh read finds nothing, nothing is written
    assert await service._decide(replace(booking), T0 + TEN, release=False) == 0
    assert await world.no_show_events() == []
