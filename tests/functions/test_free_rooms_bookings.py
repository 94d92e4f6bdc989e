"""Free rooms with bookings, through the API on an injected clock (in-memory adapters): `freeFor` leaves out rooms
booked within the window, `nextBooking`, and the `booked` / `reclaimable` live statuses."""
from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.domain.bookings import Booking
from shared.domain.presence import OccupancyChange
from shared.domain.tenancy import BuildingRef
from shared.services.pipeline import OccupancyWriter
from shared.services.transitions import SiteFacts
from shared.settings import load_settings
from shared.wiring import build_in_memory_context, set_context
from tests.functions.conftest import LOCAL_VALUES
from tests.support.sites import small_site

ADMIN = {"x-api-key": LOCAL_VALUES["ADMIN_API_KEY"]}
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
HQ = BuildingRef("acme", "hq")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def two_meeting_rooms() -> dict:
    site = small_site("hq")
    site["spaces"].append({"id": "r-elm", "name": "Elm", "kind": "conferenceroom", "floor": "f0",
                           "polygon": [[12, 0], [20, 0], [20, 8], [12, 8]], "capacity": 6, "bookable": True})
    site["navigation"]["nodes"].append({"id": "d-elm", "x": 16, "y": 8, "floor": "f0", "kind": "door",
                                        "spaceId": "r-elm"})
    site["navigation"]["edges"].append({"from": "d-elm", "to": "c0"})
    return site


@pytest.fixture
async def env():
    clock = Clock()
    context = build_in_memory_context(load_settings(LOCAL_VALUES), clock=clock)
    set_context(context)
    from functions.http_api import create_api

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api()), base_url="http://test") as api:
        assert (await api.post("/api/v1/tenants", json={"tenantId": "acme", "name": "Acme"},
                               headers=ADMIN)).status_code == 201
        keys = {}
        for scope in ("read", "admin", "bookings"):
            answer = await api.post("/api/v1/tenants/acme/keys", json={"scopes": [scope]}, headers=ADMIN)
            keys[scope] = {"x-api-key": answer.json()["key"]}
        assert (await api.put("/api/v1/buildings/hq", json=two_meeting_rooms(),
                              headers=keys["admin"])).status_code == 201
        yield api, keys, context, clock
    set_context(None)


async def book(api, keys, room: str, booking_id: str, minutes: int, length: int = 30) -> None:
    start = T0 + timedelta(minutes=minutes)
    answer = await api.put(f"/api/v1/buildings/hq/spaces/{room}/bookings/{booking_id}", headers=keys["bookings"],
                           json={"start": start.isoformat(), "end": (start + timedelta(minutes=length)).isoformat()})
    assert answer.status_code == 201, answer.text


async def free_rooms(api, keys, query: str = "") -> dict[str, dict]:
    answer = await api.get(f"/api/v1/buildings/hq/free-rooms?near=k-0{query}", headers=keys["read"])
    assert answer.status_code == 200, answer.text
    return {room["id"]: room for room in answer.json()["items"]}


async def status_of(api, keys, room: str) -> str:
    return (await api.get(f"/api/v1/buildings/hq/spaces/{room}", headers=keys["read"])).json()["status"]


async def test_free_for_leaves_out_rooms_booked_within_the_window_and_names_the_next_booking(env):
    api, keys, _context, _clock = env
    rooms = await free_rooms(api, keys)
    assert set(rooms) == {"r-oak", "r-elm"} and all(r["nextBooking"] is None for r in rooms.values())
    await book(api, keys, "r-oak", "soon", minutes=10)
    await book(api, keys, "r-elm", "later", minutes=45, length=60)
    rooms = await free_rooms(api, keys)  # freeFor defaults to 30 minutes
    assert set(rooms) == {"r-elm"}
    assert rooms["r-elm"]["nextBooking"] == {"start": "2026-11-26T09:45:00Z", "end": "2026-11-26T10:45:00Z"}
    assert rooms["r-elm"]["status"] == "free"
    short = await free_rooms(api, keys, "&freeFor=10")  # free until the booking at +10 starts
    assert set(short) == {"r-oak", "r-elm"}
    assert short["r-oak"]["nextBooking"] == {"start": "2026-11-26T09:10:00Z", "end": "2026-11-26T09:40:00Z"}
    assert set(await free_rooms(api, keys, "&freeFor=60")) == set()


async def test_a_running_booking_is_booked_then_reclaimable_once_a_no_show(env):
    api, keys, context, clock = env
    await book(api, keys, "r-oak", "standup", minutes=0, length=60)
    clock.now = T0 + timedelta(minutes=5)
    assert await status_of(api, keys, "r-oak") == "booked"
    assert "r-oak" not in await free_rooms(api, keys, "&freeFor=5")
    listed = (await api.get("/api/v1/buildings/hq/spaces?status=booked", headers=keys["read"])).json()["items"]
    assert [s["id"] for s in listed] == ["r-oak"]
    # nobody came: the no-show decision gives the room back
    stored = await context.booking_store.get(HQ, "r-oak", "standup")
    await context.booking_store.save(replace(stored, no_show_at=T0 + timedelta(minutes=10)))
    clock.now = T0 + timedelta(minutes=11)
    assert await status_of(api, keys, "r-oak") == "reclaimable"
    rooms = await free_rooms(api, keys)
    assert "r-oak" in rooms and rooms["r-oak"]["status"] == "reclaimable" and rooms["r-oak"]["nextBooking"] is None
    # someone walks in: occupied, whatever the calendar says (written as the processor writes it)
    writer = OccupancyWriter(context.live_state, facts=SiteFacts(context.sites))
    await writer.apply([OccupancyChange(HQ, "r-oak", "p", "enter", clock.now)])
    assert await status_of(api, keys, "r-oak") == "occupied"
    assert "r-oak" not in await free_rooms(api, keys, "&freeFor=1")
    clock.now = T0 + timedelta(hours=2)
    await writer.apply([OccupancyChange(HQ, "r-oak", "p", "leave", clock.now)])
    assert await status_of(api, keys, "r-oak") == "free"  # the booking is over
    assert "r-oak" in await free_rooms(api, keys)


async def test_a_booking_of_another_tenant_does_not_hold_this_tenants_room(env):
    api, keys, context, _clock = env
    await context.booking_store.save(Booking("globex", "hq", "r-oak", "theirs", T0, T0 + timedelta(hours=1)))
    assert "r-oak" in await free_rooms(api, keys)
    assert await status_of(api, keys, "r-oak") == "free"


@pytest.mark.parametrize("value", ["0", "1441", "x", "-5", "1.5"])
async def test_free_for_is_validated(env, value):
    api, keys, _context, _clock = env
    answer = await api.get(f"/api/v1/buildings/hq/free-rooms?near=k-0&freeFor={value}", headers=keys["read"])
    assert answer.status_code == 400 and answer.json()["errors"][0]["field"] == "query.freeFor"
