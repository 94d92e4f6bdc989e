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
