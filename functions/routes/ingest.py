"""POST /api/v1/sightings: the mobile SDK's call."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from functions.bodies import read_json_body
from functions.deps import require
from functions.problems import PROBLEM_JSON
from shared.domain.tenancy import Principal, Scope
from shared.wiring import AppContext, get_context

router = APIRouter(tags=["ingest"])


class RejectedOut(BaseModel):
    index: int = Field(description="position in the batch's `sightings` (or `beaconTelemetry`) array")
    reason: str


class IngestAccepted(BaseModel):
    batch_id: str = Field(alias="batchId")
    accepted: int = Field(description="sightings accepted for processing")
    rejected: list[RejectedOut] = Field(description="sightings dropped, with why")
    rejected_telemetry: list[RejectedOut] = Field(default_factory=list, alias="rejectedTelemetry")

    model_config = {"populate_by_name": True}


_problem: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}


@router.post(
    "/v1/sightings",
    status_code=202,
    response_model=IngestAccepted,
    response_model_by_alias=True,
    summary="Post a batch of beacon sightings (sightings/v1, gzip accepted)",
    responses={400: {"description": "the batch is malformed; `errors` names each field", **_problem},
               401: {"description": "no or unknown API key", **_problem},
               403: {"description": "the key lacks the `ingest` scope", **_problem},
               413: {"description": "over 256 KB compressed or 1 MB uncompressed", **_problem},
               415: {"description": "not JSON, or an encoding other than gzip", **_problem},
               503: {"description": "ingestion is unavailable; retry after Retry-After with the same batchId",
                     **_problem}},
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": "https://spaceflow.dev/schemas/sightings-v1.json"}}}}},
)
async def post_sightings(request: Request, who: Principal = Depends(require(Scope.ingest)),
                         context: AppContext = Depends(get_context)) -> IngestAccepted:
    data = await read_json_body(request)
    result = await context.ingest.ingest(who.tenant_id, data)
    return IngestAccepted(
        batch_id=result.batch_id, accepted=result.accepted,
        rejected=[RejectedOut(index=r.index, reason=r.reason) for r in result.rejected if r.field == "sightings"],
        rejected_telemetry=[RejectedOut(index=r.index, reason=r.reason) for r in result.rejected
                            if r.field == "beaconTelemetry"],
    )
