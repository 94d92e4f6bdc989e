"""The HTTP API: one FastAPI app, served on Azure Functions through function_app.py's HTTP-streams function
(functions/asgi_bridge.py) and by uvicorn locally."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from functions.gate import BODY_DEADLINE_S, PUBLIC_PATHS, PUBLIC_ROUTES, RequestGate, context_of
from functions.overload import AdmissionControl
from functions.problems import install_problem_handlers
from functions.routes import (
    admin,
    analytics,
    bookings,
    buildings,
    calendars,
    floorplans,
    health,
    ingest,
    ops,
    people,
    signin,
    stream,
    subscriptions,
    teams,
)
from shared.domain.events import EVENTS_SCHEMA_ID, STRUCTURED_CONTENT_TYPE, events_json_schema
from shared.domain.sightings import batch_json_schema
from shared.domain.site import site_json_schema

API_PREFIX = "/api"
STATIC = Path(__file__).resolve().parent / "static"  # app/ (the dashboard), docs/, vendor/ (devkit/vendor.py)


def content_security_policy(sign_in_origins: Sequence[str] = ()) -> str:
    """The browser pages load everything from this origin (the vendored assets): a policy the browser enforces.
    They may connect elsewhere only to the sign-in origins (DASHBOARD_SIGNIN_ORIGINS, checked to be bare origins):
    the dashboard reads the issuer's discovery document and exchanges the authorization code there."""
    connect = " ".join(("'self'", *sign_in_origins))
    return (f"default-src 'self'; connect-src {connect}; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


# Without the settings (the context could not be built): the pages work, the sign-in elsewhere does not.
CONTENT_SECURITY_POLICY = content_security_policy()


async def _page_policy(app: Any) -> str:
    """The policy with the sign-in origins of the settings: a test's context, the worker's when it is built, else
    the settings alone (a static file never waits for the stores to connect)."""
    from shared.settings import SettingsError, get_settings
    from shared.wiring import get_context, installed_context

    if get_context in (getattr(app, "dependency_overrides", None) or {}):
        settings = (await context_of(app)).settings
    elif (context := installed_context()) is not None:
        settings = context.settings
    else:
        try:
            settings = get_settings()
        except SettingsError:  # the API answers 503 naming them; the pages still load
            return CONTENT_SECURITY_POLICY
    return content_security_policy(settings.sign_in_origins)


def create_api(*, admission: AdmissionControl | None = None, body_deadline_s: float = BODY_DEADLINE_S) -> FastAPI:
    """The FastAPI app with every router mounted under /api, behind the request gate (credential, body deadline,
    work slots, JSON depth: functions/gate.py); builds nothing that connects. The arguments are for tests and
    the devkit; the Functions host uses the defaults."""
    api = FastAPI(
        title="spaceflow",
        version="0.1.0",
        description="Real-time space analytics from BLE beacons.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # FastAPI's page loads Swagger UI from another host; ours (below) uses the vendored copy
        redoc_url=None,
    )
    install_problem_handlers(api)
    api.add_middleware(RequestGate, admission=admission or AdmissionControl(), body_deadline_s=body_deadline_s)
    api.include_router(health.router, prefix=API_PREFIX)
    api.include_router(ingest.router, prefix=API_PREFIX)
    api.include_router(ops.router, prefix=API_PREFIX)
    api.include_router(admin.router, prefix=API_PREFIX)
    api.include_router(signin.router, prefix=API_PREFIX)
    api.include_router(buildings.router, prefix=API_PREFIX)
    api.include_router(bookings.router, prefix=API_PREFIX)
    api.include_router(calendars.router, prefix=API_PREFIX)
    api.include_router(calendars.graph_router, prefix=API_PREFIX)
    api.include_router(stream.router, prefix=API_PREFIX)
    api.include_router(floorplans.router, prefix=API_PREFIX)
    api.include_router(people.router, prefix=API_PREFIX)
    api.include_router(people.me_router, prefix=API_PREFIX)
    api.include_router(people.building_router, prefix=API_PREFIX)
    api.include_router(analytics.router, prefix=API_PREFIX)
    api.include_router(teams.router, prefix=API_PREFIX)
    api.include_router(subscriptions.router, prefix=API_PREFIX)
    _mount_browser_pages(api)
    _document_problems(api)
    return api


class _Static(StaticFiles):
    """StaticFiles with the browser pages' content security policy on every answer."""

    async def get_response(self, path: str, scope: Scope) -> Any:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = await _page_policy(scope.get("app"))
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>spaceflow API</title>
  <link rel="stylesheet" href="{static}/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi}"></div>
  <script src="{static}/vendor/swagger-ui/swagger-ui-bundle.js"></script>
  <script src="{static}/vendor/swagger-ui/swagger-ui-standalone-preset.js"></script>
  <script src="{static}/docs/init.js"></script>
</body>
</html>
"""


def _mount_browser_pages(api: FastAPI) -> None:
    """/api/docs (Swagger UI from the vendored files), /api/static/ (those files) and the dashboard at /app/.
    None of them holds data: the gate lets them through without a key (functions/gate.py PUBLIC_PREFIXES)."""
    page = DOCS_PAGE.format(static=f"{API_PREFIX}/static", openapi=api.openapi_url)

    @api.get(f"{API_PREFIX}/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": await _page_policy(api),
                                           "X-Content-Type-Options": "nosniff"})

    # check_dir=False: the app starts without the vendored copy (`make setup` makes it); its files then answer 404
    api.mount(f"{API_PREFIX}/static", _Static(directory=STATIC, check_dir=False), name="static")
    api.mount("/app", _Static(directory=STATIC / "app", html=True, check_dir=False), name="dashboard")


class Problem(BaseModel):
    """RFC 9457 problem details: every error answer of the API."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, str]] | None = Field(default=None, description="for 400: each offending field")


def _document_problems(api: FastAPI) -> None:
    """Add the Problem schema the routers' error responses refer to."""
    original = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = original()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = Problem.model_json_schema()
            problem = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            # FastAPI documents its own 422; we answer invalid input with 400 problem+json instead.
            for path, operations in schema.get("paths", {}).items():
                for method, operation in operations.items():
                    responses = operation.get("responses", {})
                    if responses.pop("422", None) is not None:
                        responses.setdefault("400", {"description": "invalid input; `errors` names each field",
                                                     **problem})
                    # What the request gate answers on every route (functions/gate.py).
                    if path in PUBLIC_PATHS:
                        operation["security"] = []  # health documents its own 503 (which dependency is down)
                        continue
                    if any(method == m.lower() and p.fullmatch(path) for m, p in PUBLIC_ROUTES):
                        operation["security"] = []
                        responses.setdefault("503", {"description": "overloaded (or a dependency is down): retry "
                                                                    "after the Retry-After seconds", **problem})
                        continue
                    responses.setdefault("401", {"description": "no API key, or an unknown or revoked one",
                                                 **problem})
                    if method in ("post", "put", "patch"):
                        responses.setdefault("408", {"description": "the body did not arrive within "
                                                                    f"{BODY_DEADLINE_S:g} s", **problem})
                    responses.setdefault("503", {"description": "overloaded (or a dependency is down): retry "
                                                                "after the Retry-After seconds", **problem})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            _embed_contract(schema, "https://spaceflow.dev/schemas/sightings-v1.json", "SightingsBatch",
                            batch_json_schema())
            _embed_contract(schema, "https://spaceflow.dev/schemas/site-v1.json", "SiteModel", site_json_schema())
            _embed_contract(schema, EVENTS_SCHEMA_ID, "SpaceflowEvent", events_json_schema())
            schema["webhooks"] = _EVENT_WEBHOOK
            schema["components"]["securitySchemes"] = {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key",
                           "description": "a tenant's API key (integrators, the SDK, admins)"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "a person signed in with the tenant's OpenID Connect issuer (Entra ID): "
                                          "RS256/ES256, the tenant's audience"}}
            # Either one: the API key, or a signed-in person's token (what each route accepts is in its text).
            schema["security"] = [{"apiKey": []}, {"bearer": []}]
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


# What a webhook subscription receives (OpenAPI 3.1 `webhooks`): one CloudEvent per POST, signed per Standard
# Webhooks (docs/events.md).
_EVENT_WEBHOOK: dict[str, Any] = {"spaceflowEvent": {"post": {
    "summary": "A room or beacon transition, as a CloudEvent 1.0 (structured JSON), to a webhook subscription",
    "parameters": [
        {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": text}
        for name, text in (("webhook-id", "the event's id: the same on every attempt (deduplicate on it)"),
                           ("webhook-timestamp", "seconds since the epoch when this attempt was signed"),
                           ("webhook-signature", ("`v1,<base64 HMAC-SHA256>`, space-separated while a rotated "
                                                 "secret is still valid (Standard Webhooks)")))],
    "requestBody": {"required": True, "content": {STRUCTURED_CONTENT_TYPE.split(";")[0]: {
        "schema": {"$ref": "#/components/schemas/SpaceflowEvent"}}}},
    "responses": {"2XX": {"description": "received; any other answer (or none within 5 s) is retried with "
                                         "backoff for 24 h; 410 disables the subscription"}},
}}}


def _embed_contract(openapi: dict[str, Any], external_ref: str, name: str, contract: dict[str, Any]) -> None:
    """Put a contract's JSON Schema (docs/schemas) into components and point the request bodies at it, so tools
    that cannot fetch external references (schemathesis, code generators) see the whole API."""
    schemas = openapi["components"]["schemas"]
    contract = json.loads(json.dumps(contract).replace('"#/$defs/', '"#/components/schemas/'))
    for def_name, definition in contract.pop("$defs", {}).items():
        schemas.setdefault(def_name, definition)
    contract.pop("$id", None)
    schemas[name] = contract
    text = json.dumps(openapi["paths"]).replace(f'"{external_ref}"', f'"#/components/schemas/{name}"')
    openapi["paths"] = json.loads(text)
