"""The HTTP API: one FastAPI app, served by the Functions host through AsgiFunctionApp and by uvicorn locally."""
from __future__ import annotations

from fastapi import FastAPI

from functions.overload import InFlightLimit
from functions.problems import install_problem_handlers
from functions.routes import health, ingest, ops

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
    return api
