"""The live-state stream (Server-Sent Events) and its polling fallback, through FastAPI over the in-memory adapters.
The stream runs on a fake clock whose sleep moves time on and lets the test change state between polls, so a
ten-minute stream takes no real time."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from devkit.benchmarks.live_queries import full_read_poll
from functions.http_api import create_api
from functions.overload import AdmissionControl
from shared.domain.presence import SpaceState
from shared.domain.tenancy import BuildingRef
from shared.services.stream import Cursor, StreamService
from tests.functions.test_query_api import new_tenant
from tests.support.sites import small_site

HQ = BuildingRef("acme", "hq")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class FakeTime:
    """A monotonic clock and a sleep that moves it; `at[n]` runs during the n-th sleep (from 1)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.at: dict[int, Callable[[], Awaitable[None]]] = {}

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        if (hook := self.at.get(self.sleeps)) is not None:
            await hook()


@pytest.fixture
async def acme(api):
    keys = await new_tenant(api, "acme")
    assert (await api.put("/api/v1/buildings/hq", json=small_site("hq"), headers=keys["admin"])).status_code == 201
    return keys


@pytest.fixture
def fake(memory_context) -> FakeTime:
    time = FakeTime()
    memory_context.stream = StreamService(memory_context.queries, clock=time.clock, sleep=time.sleep)
    return time


async def occupy(context, space_id: str, devices: int, at: datetime) -> None:
    live = context.live_state
    current = await live.get_space(HQ, space_id) or SpaceState.empty(HQ, space_id)
    await live.save_space(replace(current, occupants={f"d{i}": at.isoformat() for i in range(devices)},
                                  since=at, last_change=at))


def events(text: str) -> list[dict[str, str]]:
    """The events of an SSE body: each a dict of its fields (comments as `comment`)."""
    out = []
    for block in text.split("\n\n"):
        if not block:
            continue
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields[name or "comment"] = value.removeprefix(" ")
        out.append(fields)
    return out


async def test_a_snapshot_first_then_each_change_then_keepalives(api, acme, fake, memory_context):
    fake.at[1] = lambda: occupy(memory_context, "r-oak", 2, T0)
    response = await api.get("/api/v1/buildings/hq/stream", params={"maxSeconds": 40}, headers=acme["read"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    got = events(response.text)
    assert got[0] == {"retry": "2000"}
    snapshot = got[1]
    assert snapshot["event"] == "snapshot"
    body = json.loads(snapshot["data"])
    assert {s["id"] for s in body["items"]} == {"r-oak", "k-0", "o-1"}
    assert all(s["status"] == "free" and s["since"] is None for s in body["items"])
    assert snapshot["id"] == body["cursor"]
    space = got[2]
    assert space["event"] == "space" and space["id"] == str(Cursor(T0, "r-oak"))
    oak = json.loads(space["data"])
    assert oak == {**next(s for s in body["items"] if s["id"] == "r-oak"), "status": "occupied", "headcount": 2,
                   "since": "2026-01-05T09:00:00Z"}
    # nothing changed after that: a keepalive after 15 s of silence, twice in the 40 s
    assert [e for e in got[3:]] == [{"comment": "keepalive"}] * 2
    assert memory_context.stream.open_streams == 0


async def test_the_changed_space_matches_the_space_route(api, acme, fake, memory_context):
    fake.at[1] = lambda: occupy(memory_context, "o-1", 3, T0)
    got = events((await api.get("/api/v1/buildings/hq/stream", params={"maxSeconds": 3},
                                headers=acme["read"])).text)
    [space] = [e for e in got if e.get("event") == "space"]
    assert json.loads(space["data"]) == (await api.get("/api/v1/buildings/hq/spaces/o-1",
                                                       headers=acme["read"])).json()


async def test_last_event_id_resumes_with_only_what_changed_since(api, acme, fake, memory_context):
    await occupy(memory_context, "r-oak", 1, T0)
    first = events((await api.get("/api/v1/buildings/hq/stream", params={"maxSeconds": 0},
                                  headers=acme["read"])).text)
    last_id = first[-1]["id"]
    assert last_id == str(Cursor(T0, "r-oak"))
    await occupy(memory_context, "k-0", 1, T0 + timedelta(minutes=1))
    await occupy(memory_context, "o-1", 2, T0 + timedelta(minutes=2))
    again = events((await api.get("/api/v1/buildings/hq/stream", params={"maxSeconds": 0},
                                  headers={**acme["read"], "Last-Event-ID": last_id})).text)
    assert [e.get("event") for e in again] == [None, "space", "space"]  # the retry hint, no snapshot
    assert [json.loads(e["data"])["id"] for e in again[1:]] == ["k-0", "o-1"]
    assert again[-1]["id"] == str(Cursor(T0 + timedelta(minutes=2), "o-1"))
    # nothing new since the last id: nothing but the hint
    quiet = events((await api.get("/api/v1/buildings/hq/stream", params={"maxSeconds": 0},
                                  headers={**acme["read"], "Last-Event-ID": again[-1]["id"]})).text)
    assert quiet == [{"retry": "2000"}]
    # an id this API never wrote starts over with a snapshot
    fresh = events((await api.get("/api/v1/buildings/hq/stream", params={"maxSeconds": 0},
                                  headers={**acme["read"], "Last-Event-ID": "garbage"})).text)
    assert fresh[1]["event"] == "snapshot"


async def test_another_tenant_and_unknown_buildings_are_404(api, acme, fake):
    globex = await new_tenant(api, "globex")
    for path in ("/api/v1/buildings/hq/stream", "/api/v1/buildings/hq/changes", "/api/v1/buildings/nope/stream"):
        headers = globex["read"] if "hq" in path else acme["read"]
        response = await api.get(path, params={"maxSeconds": 0} if path.endswith("stream") else None,
                                 headers=headers)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
    assert (await api.get("/api/v1/buildings/hq/stream", headers=acme["ingest"])).status_code == 403


async def test_changes_is_the_stream_for_clients_that_poll(api, acme, fake, memory_context):
    everything = await api.get("/api/v1/buildings/hq/changes", headers=acme["read"])
    assert everything.status_code == 200
    assert {s["id"] for s in everything.json()["items"]} == {"r-oak", "k-0", "o-1"}
    cursor = everything.json()["cursor"]
    unchanged = (await api.get("/api/v1/buildings/hq/changes", params={"since": cursor},
                               headers=acme["read"])).json()
    assert unchanged == {"items": [], "cursor": cursor}
    await occupy(memory_context, "k-0", 4, T0)
    changed = (await api.get("/api/v1/buildings/hq/changes", params={"since": cursor}, headers=acme["read"])).json()
    assert [(s["id"], s["headcount"]) for s in changed["items"]] == [("k-0", 4)]
    assert changed["cursor"] == str(Cursor(T0, "k-0"))
    after = (await api.get("/api/v1/buildings/hq/changes", params={"since": changed["cursor"]},
                           headers=acme["read"])).json()
    assert after["items"] == []
    bad = await api.get("/api/v1/buildings/hq/changes", params={"since": "yesterday"}, headers=acme["read"])
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "query.since"


async def test_over_the_cap_a_stream_is_refused_with_retry_after(api, acme, fake, memory_context):
    memory_context.stream.max_streams = 1
    held = await memory_context.stream.open(HQ, lambda view: {})
    refused = await api.get("/api/v1/buildings/hq/stream", params={"maxSeconds": 0}, headers=acme["read"])
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert refused.headers["content-type"] == "application/problem+json"
    held.close()
    held.close()  # idempotent
    assert (await api.get("/api/v1/buildings/hq/stream", params={"maxSeconds": 0},
                          headers=acme["read"])).status_code == 200


async def _run_until_first_event(app, headers: dict[str, str]) -> list[bytes]:
    """Call the ASGI app as a server would; the client goes away once the snapshot arrived."""
    got_body = asyncio.Event()
    chunks: list[bytes] = []
    requested = False

    async def receive():
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await got_body.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body" and message.get("body"):
            chunks.append(message["body"])
            if b"event: snapshot" in message["body"]:
                got_body.set()

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/api/v1/buildings/hq/stream", "raw_path": b"",
             "query_string": b"", "root_path": "", "server": ("test", 80), "client": None,
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    return chunks


async def test_a_disconnected_client_ends_the_stream_and_no_stream_holds_a_work_slot(api, acme, memory_context):
    memory_context.stream = StreamService(memory_context.queries, poll_s=0.01)  # real sleeps, a long lifetime
    admission = AdmissionControl()
    app = create_api(admission=admission)
    in_use: list[int] = []
    original = memory_context.stream.sleep

    async def sleep(seconds: float) -> None:
        in_use.append(admission.in_use)
        await original(seconds)

    memory_context.stream.sleep = sleep
    chunks = await _run_until_first_event(app, acme["read"])
    assert b"event: snapshot" in b"".join(chunks)
    assert memory_context.stream.open_streams == 0
    assert admission.in_use == 0
    assert set(in_use) <= {0}  # the slot was given back when the response started
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in leftovers if "stream" in repr(t.get_coro())]


# --- a poll reads the floor summaries, and only the documents of the spaces that changed ------------------------
#
# Each test plays occupancy changes through the processor's OccupancyWriter (which writes the floor summaries with
# the spaces) and polls two streams opened together: the stream as it is, and the poll as it was before summaries
# (every space document and the bookings, each poll: `full_read_poll`, the reference `bench queries` measures the
# poll against). A client must get the same bytes from both.

TOWER = BuildingRef("acme", "bench-tower")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class NoSummaries:
    """A live-state store whose floor summaries the queries never find (a building from before summaries that
    cannot be summarised): every poll falls back to the space documents."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    async def list_floor_summaries(self, building, *, sinces=False):
        return []

    async def save_floor(self, summary, spaces=()):
        from shared.domain.ports import PreconditionFailed

        raise PreconditionFailed("no summaries here")


@pytest.fixture(params=["memory", "cosmos"])
async def live_stores(request):
    """(live-state store, booking store): the in-memory fakes, then Cosmos on the emulator."""
    from shared.adapters.cosmos_bookings import CosmosBookingStore
    from shared.adapters.cosmos_live_state import CosmosLiveStateStore
    from shared.adapters.memory import InMemoryBookingStore, InMemoryLiveStateStore
    from tests.integration.conftest import emulator_database

    if request.param == "memory":
        store = InMemoryLiveStateStore()
        yield store, InMemoryBookingStore(store)
        return
    async with emulator_database(request, "stream") as database:
        yield CosmosLiveStateStore(database), CosmosBookingStore(database)


class Tower:
    """A two-floor office of 99 spaces, its writer, and a stream service over a given view of its live state."""

    def __init__(self, store, bookings) -> None:
        from devkit.benchmarks.queries import big_building
        from shared.adapters.memory import InMemorySiteModelStore
        from shared.domain.site import parse_site_model
        from shared.services.sites import SiteDirectory

        self.site = parse_site_model(big_building(floors=2, units=1, seed=3))
        self.sites = InMemorySiteModelStore()
        self.directory = SiteDirectory(self.sites)
        self.store = store
        self.bookings = bookings
        self.clock = Clock(T0)
        self.rooms = [s.id for s in self.site.spaces if s.kind.value != "walkway"]
        self.booked = [s.id for s in self.site.spaces if s.bookable]
        self.read_by_poll = 0

    async def put(self) -> None:
        await self.sites.put(TOWER, self.site)

    def writer(self, summaries: bool = True):
        from shared.services.pipeline import OccupancyWriter
        from shared.services.transitions import SiteFacts

        return OccupancyWriter(self.store, facts=SiteFacts(self.directory) if summaries else None)

    def streams(self, live=None):
        from shared.services.queries import QueryService

        queries = QueryService(self.directory, live or self.store, clock=self.clock, bookings=self.bookings)
        return queries, StreamService(queries, clock=FakeTime().clock)

    def change(self, space_id: str, device: str, kind: str, seconds: float):
        from shared.domain.presence import OccupancyChange

        return OccupancyChange(TOWER, space_id, device, kind, T0 + timedelta(seconds=seconds))

    def space_documents_read(self) -> int:
        """Documents of the spaces container read so far, floor summaries not counted."""
        return self.store.meter.documents["spaces"]


def _render(view) -> dict:
    from functions.routes.stream import _render as render

    return render(view)


async def _both_polls(tower: Tower, new, old, queries) -> list[bytes]:
    """The new poll's events, checked against the reference's; `tower.read_by_poll` is what the new poll read of
    the spaces container (documents: floor summaries and space documents)."""
    before = tower.store.meter.documents["spaces"]
    got = await new.poll()
    tower.read_by_poll = tower.store.meter.documents["spaces"] - before
    assert got == await full_read_poll(old, queries, _render)
    assert new.cursor == old.cursor
    return got


async def _play_scripted_day(tower: Tower, new, old, queries, summaries_kept: bool) -> None:
    """Occupancy changes of every kind a client can see or must not see, polled after each step: the same events
    from both polls, and (when the summaries are read) a quiet poll reads no space document."""
    from shared.domain.bookings import Booking

    writer = tower.writer()
    summary_docs = 2 * len(tower.site.floors)  # each floor's counts and sinces
    oak, elm, ash = tower.rooms[3], tower.rooms[60], tower.rooms[61]  # ash and elm on the second floor

    async def quiet() -> None:
        assert await _both_polls(tower, new, old, queries) == []
        if summaries_kept:  # the floor summaries and no space document
            assert tower.read_by_poll == summary_docs, "a quiet poll read space documents"
        else:  # every space document, as before summaries
            assert tower.read_by_poll == len(await tower.store.list_spaces(TOWER))

    await quiet()
    # one person walks in: one event, for that room
    await writer.apply([tower.change(oak, "p1", "enter", 10)])
    [event] = await _both_polls(tower, new, old, queries)
    assert b"event: space" in event and oak.encode() in event and b'"headcount":1' in event
    if summaries_kept:
        assert tower.read_by_poll == summary_docs + 1  # the summaries and the one room's document
    await quiet()
    # a second one, then one of the two leaves while a third walks in: the same headcount and since, no event
    await writer.apply([tower.change(oak, "p2", "enter", 20)])
    assert len(await _both_polls(tower, new, old, queries)) == 1
    # gone by the next poll: the room is as its summary entry was at the quiet poll before, and that is an event
    await writer.apply([tower.change(oak, "p2", "leave", 25)])
    [event] = await _both_polls(tower, new, old, queries)
    assert b'"headcount":1' in event
    await writer.apply([tower.change(oak, "p2", "enter", 27)])
    assert len(await _both_polls(tower, new, old, queries)) == 1
    await writer.apply([tower.change(oak, "p1", "leave", 30), tower.change(oak, "p3", "enter", 30)])
    await quiet()
    # two floors at once, a room emptied and others filled
    await writer.apply([tower.change(elm, "p4", "enter", 40), tower.change(ash, "p5", "enter", 41),
                        tower.change(oak, "p2", "leave", 42), tower.change(oak, "p3", "leave", 42)])
    got = await _both_polls(tower, new, old, queries)
    assert len(got) == 3 and b'"status":"free"' in got[-1]  # oak's change is the newest
    await quiet()
    # more rooms change than point reads are worth: the building's space documents in one query, same events
    crowd = [tower.change(room, f"c{n}", "enter", 50 + n) for n, room in enumerate(tower.rooms[10:30])]
    await writer.apply(crowd)
    assert len(await _both_polls(tower, new, old, queries)) == 20
    if summaries_kept:
        assert tower.read_by_poll == summary_docs + len(await tower.store.list_spaces(TOWER))
    await quiet()
    # a booking starts in a free room: booked without any change of its live state; then it ends
    room = next(r for r in tower.booked if r not in tower.rooms[10:30] and r not in (oak, elm, ash))
    held = await tower.bookings.save(Booking("acme", TOWER.building_id, room, "b1", T0 + timedelta(minutes=5),
                                             T0 + timedelta(minutes=35)))
    await quiet()
    tower.clock.now = T0 + timedelta(minutes=5)
    [booked] = await _both_polls(tower, new, old, queries)
    assert room.encode() in booked and b'"status":"booked"' in booked
    await quiet()
    await writer.apply([tower.change(room, "p6", "enter", 301)])  # someone comes: occupied
    assert b'"status":"occupied"' in (await _both_polls(tower, new, old, queries))[0]
    await writer.apply([tower.change(room, "p6", "leave", 302)])  # gone again, the booking still runs: booked
    assert b'"status":"booked"' in (await _both_polls(tower, new, old, queries))[0]
    # nobody came: a no-show gives the room back, and that is an event too
    await tower.bookings.save(replace(held, no_show_at=T0 + timedelta(minutes=15)))
    tower.clock.now = T0 + timedelta(minutes=15)
    assert b'"status":"reclaimable"' in (await _both_polls(tower, new, old, queries))[0]
    await quiet()
    tower.clock.now = T0 + timedelta(minutes=35)
    assert b'"status":"free"' in (await _both_polls(tower, new, old, queries))[0]
    await quiet()


async def _open_two(tower: Tower, live=None):
    queries, service = tower.streams(live)
    new = await service.open(TOWER, _render)
    old = await service.open(TOWER, _render)
    return queries, new, old


async def test_a_poll_sends_what_the_full_read_sent_and_reads_only_the_changed_spaces(live_stores):
    store, bookings = live_stores
    tower = Tower(store, bookings)
    await tower.put()
    # live state from before summaries (a writer that keeps none): the first poll reads the space documents and
    # writes the summaries; from then on the writer keeps them and polls read them
    await tower.writer(summaries=False).apply([tower.change(r, f"early{n}", "enter", 1)
                                               for n, r in enumerate(tower.rooms[40:45])])
    assert await store.list_floor_summaries(TOWER) == []
    queries, new, old = await _open_two(tower)
    assert await _both_polls(tower, new, old, queries) == []
    assert len(await store.list_floor_summaries(TOWER)) == len(tower.site.floors)
    await _play_scripted_day(tower, new, old, queries, summaries_kept=True)
    # the snapshot and resume still carry every space: a stream opened now agrees with what the polls sent
    fresh = await _open_two(tower)
    assert fresh[1]._sent == new._sent


async def test_a_building_without_summaries_streams_from_the_space_documents(live_stores):
    store, bookings = live_stores
    tower = Tower(store, bookings)
    await tower.put()
    queries, new, old = await _open_two(tower, NoSummaries(store))
    await _play_scripted_day(tower, new, old, queries, summaries_kept=False)
