"""GET /api/ops/stats: this instance's processing counters, for operators and the devkit benchmarks (admin scope)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from functions.deps import caller
from shared.domain.errors import Forbidden
from shared.domain.tenancy import Caller, Operator
from shared.wiring import AppContext, get_context

router = APIRouter(tags=["operations"])


@router.get("/ops/stats", summary="This instance's ingest and processing counters (admin scope)")
async def stats(who: Caller = Depends(caller), context: AppContext = Depends(get_context)) -> dict[str, Any]:
    if not isinstance(who, Operator):
        raise Forbidden("instance counters are for the bootstrap admin key")
    backlog = getattr(context.publisher, "backlog", None)
    return {
        # Events processed, parked in the dead-letter container, and lost (neither, after the last retry: should
        # stay 0); deliveries failed so that they are retried.
        "processing": {"lastLagS": round(context.processing.last_lag_s, 3),
                       "processed": context.processing.processed,
                       "deadLettered": context.processing.dead_lettered,
                       "retries": context.processing.retries,
                       "lost": context.processing.lost},
        "pipeline": vars(context.pipeline.stats),
        "hub": {"backlog": backlog() if callable(backlog) else None},
    }
