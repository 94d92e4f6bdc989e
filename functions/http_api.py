"""The HTTP API: one FastAPI app, served by the Functions host through AsgiFunctionApp and by uvicorn locally."""
from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse

from functions.problems import PROBLEM_JSON, install_problem_handlers
from shared.wiring import AppContext, get_context

API_PREFIX = "/api"

health_router = APIRouter(tags=["operations"])


@health_router.get(
    "/health",
    summary="Each dependency's status",
    responses={503: {"description": "a dependency is down", "content": {PROBLEM_JSON: {}}}},
)
async def health(context: AppContext = Depends(get_context)) -> JSONResponse:
    statuses = await context.health.check()
    healthy = all(s.ok for s in statuses)
    body = {"status": "ok" if healthy else "degraded", "dependencies": {s.name: s.as_dict() for s in statuses}}
    return JSONResponse(body, status_code=200 if healthy else 503)


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
    api.include_router(health_router, prefix=API_PREFIX)
    return api
