"""GET /api/v1/buildings/{buildingId}/analytics: the hourly and daily rollups (docs/metrics.md), JSON or CSV."""
from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from functions.deps import require
from functions.routes.models import PROBLEMS, PathId, id_query
from shared.domain.analytics import Grain
from shared.domain.errors import ContractViolation, FieldError, NotFound
from shared.domain.tenancy import Principal, Scope
from shared.services.rollups import ANSWER_COLUMNS, MAX_RANGE_DAYS, METRICS
from shared.wiring import AppContext, get_context

router = APIRouter(prefix="/v1/buildings", tags=["analytics"], responses=PROBLEMS)


class AnalyticsRow(BaseModel):
    window_start: str = Field(alias="windowStart")
    window_end: str = Field(alias="windowEnd")
    local_date: str = Field(alias="localDate")
    local_hour: int | None = Field(alias="localHour", description="hour grain: the local clock hour")
    scope: Literal["space", "floor", "building", "teams"]
    scope_id: str = Field(alias="scopeId", description="space, floor or building id; `teamA+teamB` for teams")
    metric: str
    value: float | None = Field(description="null when suppressed or not defined (e.g. no occupied time)")
    unit: str
    suppressed: bool = Field(description="true when fewer than minGroupSize distinct people made the cell")


class AnalyticsWindow(BaseModel):
    start: str
    end: str
    local_date: str = Field(alias="localDate")
    local_hour: int | None = Field(alias="localHour")
    watermark: str
    final: bool
    suppressed_cells: dict[str, int] = Field(alias="suppressedCells")


class AnalyticsOut(BaseModel):
    building_id: str = Field(alias="buildingId")
    time_zone: str = Field(alias="timeZone")
    grain: Grain
    from_: date = Field(alias="from")
    to: date
    min_group_size: int = Field(alias="minGroupSize")
    windows: list[AnalyticsWindow] = Field(description="the computed windows found (watermark, final)")
    rows: list[AnalyticsRow]


@router.get(
    "/{buildingId}/analytics",
    summary="Utilization, occupancy, headcounts and collaboration per hour or day (read scope); CSV with "
            "`Accept: text/csv`",
    responses={200: {"model": AnalyticsOut, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def get_analytics(
    request: Request,
    buildingId: PathId,
    first: date = Query(alias="from", description="first local date (inclusive)"),
    last: date = Query(alias="to", description="last local date (inclusive)"),
    grain: Grain = Query(default=Grain.day),
    space_id: str | None = id_query(alias="spaceId"),
    metric: str | None = Query(default=None, description=f"comma-separated, of: {', '.join(METRICS)}"),
    who: Principal = Depends(require(Scope.read)),
    context: AppContext = Depends(get_context),
) -> Response:
    versioned = await context.site_models.get(who.building(buildingId))
    if versioned is None:
        raise NotFound(f"no building '{buildingId}'")
    site = versioned.site
    errors = []
    if last < first:
        errors.append(FieldError("query.to", "must not be before `from`"))
    elif (last - first).days + 1 > MAX_RANGE_DAYS[grain]:
        errors.append(FieldError("query.to", f"a range of at most {MAX_RANGE_DAYS[grain]} days for grain={grain.value}"
                                 + (" (use grain=day for longer ranges)" if grain is Grain.hour else "")))
    metrics = None
    if metric is not None:
        metrics = [m.strip() for m in metric.split(",") if m.strip()]
        unknown = [m for m in metrics if m not in METRICS]
        if unknown or not metrics:
            errors.append(FieldError("query.metric", f"unknown metric {', '.join(unknown) or '(empty)'}; "
                                                     f"one of {', '.join(METRICS)}"))
    if space_id is not None and space_id not in {s.id for s in site.spaces}:
        errors.append(FieldError("query.spaceId", f"no space '{space_id}' in building '{buildingId}'"))
    if errors:
        raise ContractViolation(errors, title="The request is invalid")
    answer = await context.analytics.read(who.tenant_id, site, grain, first, last, space_id, metrics)
    if "text/csv" in request.headers.get("accept", ""):
        return Response(_csv(answer.rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{buildingId}-{grain.value}-'
                                                        f'{first.isoformat()}-{last.isoformat()}.csv"'})
    return JSONResponse({
        "buildingId": answer.building_id, "timeZone": answer.time_zone, "grain": answer.grain.value,
        "from": answer.first.isoformat(), "to": answer.last.isoformat(), "minGroupSize": answer.min_group_size,
        "windows": answer.windows, "rows": answer.rows,
    })


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=ANSWER_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else str(v).lower() if isinstance(v, bool) else v) for k, v in row.items()})
    return out.getvalue()
