"""The bookings API through FastAPI (in-memory adapters): PUT/DELETE idempotent with 201/200/204, validation naming
the field, the `bookings` scope, calendar-owned bookings, tenant isolation, the building's release setting."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.bookings import Booking, BookingSourceKind
from shared.domain.tenancy import BuildingRef
from tests.functions.conftest import LOCAL_VALUES
from tests.support.sites import small_site

ADMIN = {"x-api-key": LOCAL_VALUES["ADMIN_API_KEY"]}
PATH = "/api/v1/buildings/hq/spaces/r-oak/bookings"
START = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


async def keys_of(api, tenant_id: str) -> dict[str, dict[str, str]]:
    assert (await api.post("/api/v1/tenants", json={"tenantId": tenant_id, "name": tenant_id},
                           headers=ADMIN)).status_code == 201
    keys = {}
    for scope in ("read", "admin", "bookings", "ingest"):
        answer = await api.post(f"/api/v1/tenants/{tenant_id}/keys", json={"scopes": [scope]}, headers=ADMIN)
        assert answer.status_code == 201, answer.text
        keys[scope] = {"x-api-key": answer.json()["key"]}
    assert (await api.put("/api/v1/buildings/hq", json=small_site("hq"), headers=keys["admin"])).status_code == 201
    return keys


@pytest.fixture
async def acme(api):
    return await keys_of(api, "acme")


def times(start: datetime = START, minutes: int = 60) -> dict[str, str]:
    return {"start": start.isoformat(), "end": (start + timedelta(minutes=minutes)).isoformat()}


async def test_put_creates_then_is_idempotent_then_moves_and_delete_is_idempotent(api, acme):
    created = await api.put(f"{PATH}/standup", json=times(), headers=acme["bookings"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert body == {"id": "standup", "spaceId": "r-oak", "start": "2026-11-26T09:00:00Z",
                    "end": "2026-11-26T10:00:00Z", "source": "api", "released": False, "checkedInAt": None,
                    "noShowAt": None}
    again = await api.put(f"{PATH}/standup", json=times(), headers=acme["bookings"])
    assert again.status_code == 200 and again.json() == body
    # the same instant in another offset is the same booking time
    offset = {"start": "2026-11-26T10:00:00+01:00", "end": "2026-11-26T11:00:00+01:00"}
    assert (await api.put(f"{PATH}/standup", json=offset, headers=acme["bookings"])).json() == body
    moved = await api.put(f"{PATH}/standup", json=times(START + timedelta(hours=2), 30), headers=acme["admin"])
    assert moved.status_code == 200 and moved.json()["start"] == "2026-11-26T11:00:00Z"
    read = await api.get(f"{PATH}/standup", headers=acme["read"])
    assert read.status_code == 200 and read.json()["end"] == "2026-11-26T11:30:00Z"
    listed = await api.get(PATH, params={"from": "2026-11-26T00:00:00Z", "to": "2026-11-27T00:00:00Z"},
                           headers=acme["bookings"])
    assert listed.status_code == 200 and [b["id"] for b in listed.json()["items"]] == ["standup"]
    assert listed.json()["continuationToken"] is None
    assert (await api.delete(f"{PATH}/standup", headers=acme["bookings"])).status_code == 204
    assert (await api.delete(f"{PATH}/standup", headers=acme["bookings"])).status_code == 204
    assert (await api.get(f"{PATH}/standup", headers=acme["read"])).status_code == 404


@pytest.mark.parametrize(("body", "fields"), [
    ({"start": "2026-11-26T10:00:00Z", "end": "2026-11-26T09:00:00Z"}, {"end"}),
    ({"start": "2026-11-26T09:00:00Z", "end": "2026-11-28T09:00:00Z"}, {"end"}),
    ({"start": "2026-11-26T09:00:00", "end": "2026-11-26T10:00:00Z"}, {"start"}),
    ({"start": "tomorrow", "end": "2026-11-26T10:00:00Z"}, {"start"}),
    ({"start": "2026-11-26T09:00:00Z"}, {"end"}),
    ({"start": "2026-11-26T09:00:00Z", "end": "2026-11-26T10:00:00Z", "subject": "Board meeting"}, {"subject"}),
    ([], {"$"}),
])
async def test_bad_bodies_are_400_naming_the_field(api, acme, body, fields):
    answer = await api.put(f"{PATH}/b1", json=body, headers=acme["bookings"])
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert {e["field"] for e in answer.json()["errors"]} == fields


async def test_an_interval_error_says_what_is_wrong(api, acme):
    answer = await api.put(f"{PATH}/b1", json={"start": "2026-11-26T10:00:00Z", "end": "2026-11-26T10:00:00Z"},
                           headers=acme["bookings"])
    assert "end must be after start" in answer.json()["errors"][0]["message"]


async def test_bad_paths_and_queries_are_400_naming_them(api, acme):
    assert {e["field"] for e in (await api.put("/api/v1/buildings/hq/spaces/r-oak/bookings/..", json=times(),
                                               headers=acme["bookings"])).json().get("errors", [])} <= {
        "path.bookingId"}
    bad = await api.put(f"{PATH}/{'x' * 65}", json=times(), headers=acme["bookings"])
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "path.bookingId"
    reversed_range = await api.get(PATH, params={"from": "2026-11-27T00:00:00Z", "to": "2026-11-26T00:00:00Z"},
                                   headers=acme["read"])
    assert reversed_range.status_code == 400 and reversed_range.json()["errors"][0]["field"] == "query.to"
    too_long = await api.get(PATH, params={"from": "2026-11-01T00:00:00Z", "to": "2026-12-26T00:00:00Z"},
                             headers=acme["read"])
    assert too_long.status_code == 400 and too_long.json()["errors"][0]["field"] == "query.to"
    naive = await api.get(PATH, params={"from": "2026-11-01T00:00:00", "to": "2026-11-02T00:00:00Z"},
                          headers=acme["read"])
    assert naive.status_code == 400 and naive.json()["errors"][0]["field"] == "query.from"


async def test_scopes(api, acme):
    assert (await api.put(f"{PATH}/b1", json=times(), headers=acme["read"])).status_code == 403
    assert (await api.put(f"{PATH}/b1", json=times(), headers=acme["ingest"])).status_code == 403
    assert (await api.delete(f"{PATH}/b1", headers=acme["read"])).status_code == 403
    assert (await api.put(f"{PATH}/b1", json=times())).status_code == 401
    assert (await api.put(f"{PATH}/b1", json=times(), headers=ADMIN)).status_code == 403  # the operator: no tenant
    assert (await api.put(f"{PATH}/b1", json=times(), headers=acme["bookings"])).status_code == 201
    assert (await api.get(f"{PATH}/b1", headers=acme["ingest"])).status_code == 403
    # the release setting is the building admin's
    assert (await api.put("/api/v1/buildings/hq/booking-settings", json={"releaseNoShows": True},
                          headers=acme["bookings"])).status_code == 403


async def test_unknown_spaces_buildings_and_unbookable_spaces(api, acme):
    assert (await api.put("/api/v1/buildings/hq/spaces/nowhere/bookings/b1", json=times(),
                          headers=acme["bookings"])).status_code == 404
    assert (await api.put("/api/v1/buildings/annex/spaces/r-oak/bookings/b1", json=times(),
                          headers=acme["bookings"])).status_code == 404
    kitchen = await api.put("/api/v1/buildings/hq/spaces/k-0/bookings/b1", json=times(), headers=acme["bookings"])
    assert kitchen.status_code == 409 and kitchen.json()["spaceId"] == "k-0"


async def test_another_tenant_sees_and_touches_nothing(api, acme):
    globex = await keys_of(api, "globex")
    assert (await api.put(f"{PATH}/b1", json=times(), headers=acme["bookings"])).status_code == 201
    assert (await api.get(f"{PATH}/b1", headers=globex["read"])).status_code == 404
    listed = await api.get(PATH, params={"from": "2026-11-26T00:00:00Z", "to": "2026-11-27T00:00:00Z"},
                           headers=globex["read"])
    assert listed.json()["items"] == []
    # globex's own b1 in its own hq is another booking
    assert (await api.put(f"{PATH}/b1", json=times(START + timedelta(hours=3)),
                          headers=globex["bookings"])).status_code == 201
    assert (await api.delete(f"{PATH}/b1", headers=globex["bookings"])).status_code == 204
    assert (await api.get(f"{PATH}/b1", headers=acme["read"])).json()["start"] == "2026-11-26T09:00:00Z"


async def test_bookings_of_a_calendar_are_changed_there_not_here(api, acme, memory_context):
    building = BuildingRef("acme", "hq")
    await memory_context.booking_store.save(Booking("acme", "hq", "r-oak", "ical-abc", START, START + timedelta(hours=1),
                                                    BookingSourceKind.ical, "uid-1"))
    for answer in (await api.put(f"{PATH}/ical-abc", json=times(), headers=acme["bookings"]),
                   await api.delete(f"{PATH}/ical-abc", headers=acme["bookings"])):
        assert answer.status_code == 409 and answer.json()["source"] == "ical"
    assert await memory_context.booking_store.get(building, "r-oak", "ical-abc") is not None


async def test_the_release_setting_is_per_building(api, acme):
    assert (await api.get("/api/v1/buildings/hq/booking-settings", headers=acme["admin"])).json() == {
        "releaseNoShows": False}
    on = await api.put("/api/v1/buildings/hq/booking-settings", json={"releaseNoShows": True}, headers=acme["admin"])
    assert on.status_code == 200 and on.json() == {"releaseNoShows": True}
    assert (await api.get("/api/v1/buildings/hq/booking-settings", headers=acme["admin"])).json()["releaseNoShows"]
    bad = await api.put("/api/v1/buildings/hq/booking-settings", json={"releaseNoShows": "yes please"},
                        headers=acme["admin"])
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "releaseNoShows"
    assert (await api.get("/api/v1/buildings/annex/booking-settings", headers=acme["admin"])).status_code == 404
