"""The HTTP API: one FastAPI app, served by the Functions host through AsgiFunctionApp and by uvicorn locally."""
from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel, Field

from functions.overload import InFlightLimit
from functions.problems import install_problem_handlers
from functions.routes import admin, buildings, health, ingest, ops, people

API_PREFIX = "/api"
MAX_IN_FLIGHT = 256  # per instance; beyond it requests get 503 + Retry-After at once


def create_api() -> FastAPI:
    """The FastAPI app with every router mounted under /api; builds nothing that connects."""
    api = FastAPI(
        title="spaceflow",
        version="0.1.0",
        description="Real-time space analytics from BLE beacons.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    install_problem_handlers(api)
    api.add_middleware(InFlightLimit, max_in_flight=MAX_IN_FLIGHT)
    api.include_router(health.router, prefix=API_PREFIX)
    api.include_router(ingest.router, prefix=API_PREFIX)
    api.include_router(ops.router, prefix=API_PREFIX)
    api.include_router(admin.router, prefix=API_PREFIX)
    api.include_router(buildings.router, prefix=API_PREFIX)
    api.include_router(people.router, prefix=API_PREFIX)
    _document_problems(api)
    return api


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

    def openapi() -> dict:
        if api.openapi_schema is None:
            schema = original()
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema()
            schema["components"]["securitySchemes"] = {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}}
            schema["security"] = [{"apiKey": []}]
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
