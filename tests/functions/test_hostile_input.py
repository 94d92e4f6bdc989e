"""Hostile input on every route, property-based, in process: any text as any path id, and JSON nested any depth
from 1 to 100,000 on every JSON-body route, is answered 2xx/3xx/4xx, never 500; an id outside the pattern is a
400 naming `path.<param>`, a body nested deeper than the limit a 400 naming `$`.

The routes are read from the app's OpenAPI document, so a route added later is fuzzed without anyone listing it
here (a test fails until it has a valid value and body below)."""
from __future__ import annotations

import asyncio
import gzip
import re
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from functions.bodies import MAX_JSON_DEPTH
from functions.http_api import create_api
from shared.domain.tenancy import Scope, is_id, is_tenant_id, is_user_id
from shared.settings import load_settings
from shared.wiring import AppContext, build_in_memory_context, set_context
from tests.functions.conftest import LOCAL_VALUES
from tests.support.sites import small_site

# A valid value for each path parameter, and the rest of a valid request for each route.
VALID_IDS = {"buildingId": "hq", "spaceId": "r-oak", "tenantId": "acme", "keyId": "nokey", "teamId": "team-1",
             "userId": "ann@acme.example", "subscriptionId": "sub-none", "bookingId": "b-1"}
QUERIES = {"/free-rooms": {"near": "r-oak"}, "/geojson": {"floor": "f0"}, "/route": {"from": "r-oak", "to": "o-1"},
           "/amenities": {"kind": "kitchen"}, "/analytics": {"from": "2026-01-05", "to": "2026-01-06"},
           "/stream": {"maxSeconds": "0"}, "/replay": {"from": "2026-01-05T00:00:00Z"},
           "/bookings": {"from": "2026-01-05T00:00:00Z", "to": "2026-01-06T00:00:00Z"}}  # a stream ends at once: the fuzzer reads whole answers
BODIES = {"/api/v1/buildings/{buildingId}": small_site("hq"), "/api/v1/teams/{teamId}": {"members": ["ann"]},
          "/api/v1/people/{userId}/sharing": {"level": "off"}, "/api/v1/tenants/{tenantId}/keys": {"scopes": ["read"]},
          "/api/v1/tenants": {"tenantId": "other", "name": "Other"}, "/api/v1/sightings": {"schema": "sightings/v1"},
          "/api/v1/me/sharing": {"level": "off"},
          # a JSON body where a zip belongs is a 415; nested deeper than the limit, the gate's 400 comes first
          "/api/v1/buildings/{buildingId}/imdf": {"not": "a zip"},
          "/api/v1/buildings/{buildingId}/beacons": {"beacons": []},
          "/api/v1/buildings/{buildingId}/beacon-plan": {"minBeaconsPerRoom": 3},
          "/api/v1/tenants/{tenantId}/identity": {"issuer": "https://login.example.com/acme/v2.0",
                                                  "audience": "api://spaceflow"},
          "/api/v1/subscriptions": {"url": "https://hooks.example.com/spaceflow"},
          "/api/v1/subscriptions/{subscriptionId}": {"paused": True},
          "/api/v1/subscriptions/{subscriptionId}/rotate-secret": {},
          "/api/v1/subscriptions/{subscriptionId}/replay": {},
          "/api/v1/buildings/{buildingId}/spaces/{spaceId}/bookings/{bookingId}": {
              "start": "2026-01-05T09:00:00Z", "end": "2026-01-05T10:00:00Z"},
          "/api/v1/buildings/{buildingId}/booking-settings": {"releaseNoShows": False},
          "/api/v1/buildings/{buildingId}/spaces/{spaceId}/calendar": {"ical": {}},
          "/api/v1/buildings/{buildingId}/spaces/{spaceId}/calendar/sync": {},
          # a JSON body where an iCalendar file belongs is a 415
          "/api/v1/buildings/{buildingId}/spaces/{spaceId}/calendar.ics": {"not": "a calendar"},
          "/api/v1/graph/notifications/{tenantId}/{buildingId}/{spaceId}": {"value": []}}
# Routes whose body goes through functions/bodies.py (gzip accepted); the others are pydantic bodies.
GZIP_ROUTES = {"/api/v1/sightings", "/api/v1/buildings/{buildingId}", "/api/v1/teams/{teamId}",
               "/api/v1/buildings/{buildingId}/beacons",
               "/api/v1/buildings/{buildingId}/spaces/{spaceId}/bookings/{bookingId}",
               "/api/v1/buildings/{buildingId}/booking-settings",
               "/api/v1/buildings/{buildingId}/spaces/{spaceId}/calendar",
               "/api/v1/graph/notifications/{tenantId}/{buildingId}/{spaceId}"}
VALIDATORS = {"tenantId": is_tenant_id, "userId": is_user_id}


@dataclass
class Env:
    runner: asyncio.Runner
    context: AppContext
    client: httpx.AsyncClient
    key: str  # the tenant's admin key: every route lets it through to the validation


def operations() -> list[tuple[str, str]]:
    """Every (method, path) the app serves, from its OpenAPI document (FastAPI nests included routers)."""
    return sorted((method.upper(), path) for path, ops in create_api().openapi()["paths"].items() for method in ops)


PATH_ID_OPERATIONS = [(m, p, name) for m, p in operations() for name in re.findall(r"{(\w+)}", p)]
BODY_OPERATIONS = [(m, p) for m, p in operations() if m in ("POST", "PUT", "PATCH")]


def test_the_fuzzed_routes_are_all_there_is():
    assert {name for _m, _p, name in PATH_ID_OPERATIONS} == set(VALID_IDS)
    assert len(PATH_ID_OPERATIONS) >= 20
    assert {p for _m, p in BODY_OPERATIONS} == set(BODIES)


@pytest.fixture(scope="module")
def env():
    runner = asyncio.Runner()
    context = build_in_memory_context(load_settings(LOCAL_VALUES))
    set_context(context)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api()), base_url="http://test")

    async def setup() -> str:
        admin = {"x-api-key": LOCAL_VALUES["ADMIN_API_KEY"]}
        assert (await client.post("/api/v1/tenants", json={"tenantId": "acme", "name": "Acme"},
                                  headers=admin)).status_code == 201
        key = (await client.post("/api/v1/tenants/acme/keys", json={"scopes": ["admin"]}, headers=admin)).json()["key"]
        assert (await client.put("/api/v1/buildings/hq", json=small_site("hq"),
                                 headers={"x-api-key": key})).status_code == 201
        return key

    yield Env(runner, context, client, runner.run(setup()))
    runner.run(client.aclose())
    runner.close()
    set_context(None)


@pytest.fixture(autouse=True)
def _installed(env):
    set_context(env.context)  # other modules' fixtures reset the worker's context between tests


def url_segment(text: str) -> str:
    # Every byte but letters and digits percent-encoded, dots too: "%2E%2E" reaches the router as "..", where a
    # client would have collapsed a literal "..".
    return quote(text, safe="").replace(".", "%2E")


def call(env: Env, method: str, path: str, *, content: bytes | None = None, json_body=None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    query = next((q for suffix, q in QUERIES.items() if path.split("?")[0].endswith(suffix)), None)
    return env.runner.run(env.client.request(method, path, params=query, content=content, json=json_body,
                                             headers={"x-api-key": env.key, **(headers or {})}))


path_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="./\\#?|%@+-_ \n\x00aZ9é", max_size=12),
    st.sampled_from([".", "..", "...", "a/b", "a#b", "a?b", "a\\b", "a|b", "hq\n", "-hq", "b" * 65, "b" * 60_000]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}", fullmatch=True),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operation=st.sampled_from(PATH_ID_OPERATIONS), text=path_text)
@example(operation=("GET", "/api/v1/buildings/{buildingId}", "buildingId"), text="..")
@example(operation=("PUT", "/api/v1/people/{userId}/sharing", "userId"), text="a#b?c\\d")
@example(operation=("GET", "/api/v1/buildings/{buildingId}/spaces/{spaceId}", "spaceId"), text=".")
def test_any_text_as_any_path_id_is_never_a_server_error(env, operation, text):
    method, template, name = operation
    path = template
    for param in re.findall(r"{(\w+)}", template):
        path = path.replace(f"{{{param}}}", url_segment(text) if param == name else VALID_IDS[param])
    response = call(env, method, path, json_body=BODIES.get(template))
    assert response.status_code < 500, (method, path[:200], response.text[:500])
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
    if text and "/" not in text:  # one path segment: the route was reached with exactly this id
        valid = VALIDATORS.get(name, is_id)(text)
        named = {e["field"] for e in response.json().get("errors") or []} if response.status_code == 400 else set()
        assert (f"path.{name}" in named) == (not valid), (text, response.text[:500])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operation=st.sampled_from(BODY_OPERATIONS), depth=st.integers(1, 100_000), arrays=st.floats(0, 1),
       compress=st.booleans())
@example(operation=("POST", "/api/v1/sightings"), depth=100_000, arrays=1.0, compress=True)
@example(operation=("PUT", "/api/v1/people/{userId}/sharing"), depth=MAX_JSON_DEPTH + 1, arrays=0.0, compress=False)
@example(operation=("PUT", "/api/v1/buildings/{buildingId}"), depth=MAX_JSON_DEPTH, arrays=0.5, compress=False)
def test_json_nested_any_depth_on_any_body_route_is_never_a_server_error(env, operation, depth, arrays, compress):
    method, template = operation
    path = template
    for param in re.findall(r"{(\w+)}", template):
        path = path.replace(f"{{{param}}}", VALID_IDS[param])
    lists = round(depth * arrays)
    text = b'{"a":' * (depth - lists) + b"[" * lists + b"1" + b"]" * lists + b"}" * (depth - lists)
    compress = compress and template in GZIP_ROUTES
    response = call(env, method, path, content=gzip.compress(text) if compress else text,
                    headers={"content-type": "application/json", **({"content-encoding": "gzip"} if compress else {})})
    assert response.status_code < 500, (method, path, depth, response.text[:500])
    if depth > MAX_JSON_DEPTH:
        assert response.status_code == 400, response.text[:500]
        [error] = response.json()["errors"]
        assert error["field"] == "$" and f"{depth} levels" in error["message"]
    elif response.status_code == 400:
        assert all(e["field"] != "$" or "levels" not in e["message"] for e in response.json()["errors"])


def test_the_tenant_admin_key_reaches_every_route(env):
    # Otherwise the properties above would only ever see 401/403.
    who = env.runner.run(env.context.auth.authenticate(env.key))
    assert Scope.admin in who.scopes
