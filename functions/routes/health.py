from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from shared.wiring import AppContext, get_context

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Each dependency's status; 503 when one is down")
async def health(context: AppContext = Depends(get_context)) -> JSONResponse:
    statuses = await context.health.check()
    healthy = all(s.ok for s in statuses)
    body = {"status": "ok" if healthy else "degraded", "dependencies": {s.name: s.as_dict() for s in statuses}}
    return JSONResponse(body, status_code=200 if healthy else 503)
