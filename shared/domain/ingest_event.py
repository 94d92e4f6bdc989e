"""The Event Hubs event the ingest route publishes: one SDK batch (its accepted readings) plus who sent it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from shared.domain.errors import ContractViolation, FieldError
from shared.domain.sightings import ParsedBatch, SightingsBatch, parse_sightings_batch
from shared.domain.tenancy import is_tenant_id

INGEST_EVENT_SCHEMA = "ingest/v1"


@dataclass(frozen=True)
class IngestEvent:
    tenant_id: str
    received_at: datetime
    parsed: ParsedBatch


def encode_ingest_event(tenant_id: str, received_at: datetime, batch: SightingsBatch) -> bytes:
    body = {
        "schema": INGEST_EVENT_SCHEMA,
        "tenantId": tenant_id,
        "receivedAt": received_at.isoformat(),
        "batch": batch.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode_ingest_event(body: bytes) -> IngestEvent:
    """Decode and re-validate an event; ContractViolation names what is wrong.

    The batch is judged as of when it was received, so a backlog in the hub does not turn good readings stale.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractViolation([FieldError("$", f"the event body is not JSON: {type(exc).__name__}")]) from None
    if not isinstance(data, dict) or data.get("schema") != INGEST_EVENT_SCHEMA:
        raise ContractViolation([FieldError("schema", f"expected an {INGEST_EVENT_SCHEMA} event")])
    errors: list[FieldError] = []
    raw_tenant = data.get("tenantId")
    tenant_id = raw_tenant if isinstance(raw_tenant, str) and is_tenant_id(raw_tenant) else None
    if tenant_id is None:
        errors.append(FieldError("tenantId", "missing or not a tenant id"))
    try:
        received_at = datetime.fromisoformat(str(data.get("receivedAt")))
        if received_at.tzinfo is None:
            raise ValueError
    except ValueError:
        errors.append(FieldError("receivedAt", "must be an RFC 3339 time with offset"))
    if errors or tenant_id is None:  # a missing tenant id is always among the errors
        raise ContractViolation(errors)
    try:
        parsed = parse_sightings_batch(data.get("batch"), now=received_at)
    except ContractViolation as exc:
        raise ContractViolation([FieldError(f"batch.{e.field}" if e.field != "$" else "batch", e.message)
                                 for e in exc.errors]) from None
    return IngestEvent(tenant_id=tenant_id, received_at=received_at, parsed=parsed)
