"""The Event Hubs event the ingest route publishes: one SDK batch (its accepted readings) plus who sent it.

The processor decodes every event once, into plain data: the batch's envelope and its sightings as columns
(beacon ids, RSSI, epoch seconds, tx power), no object per sighting. Two paths:
- trusted: the ingest route stamps the event `"validated": "sightings/v1"` (it judged every reading against
  that contract, normalised the beacon ids and dropped duplicates and rejected readings before publishing).
  Such an event is decoded and type-checked in one pass by msgspec (the contract's types, ranges and patterns,
  the time window against `receivedAt`); beacon ids go through a memoised normalisation.
- full: an event without the stamp (published before it existed), with another stamp, or one the one-pass
  check refuses, is judged as before, reading by reading (`parse_sightings_batch`), so bad readings are dropped
  and a bad envelope is refused naming its field.
Either way a malformed event raises ContractViolation naming the field, never anything else.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Annotated, Final, Literal, cast

import msgspec

from shared.domain.beacon_ids import normalize_beacon_id
from shared.domain.errors import ContractViolation, FieldError
from shared.domain.sightings import (
    MAX_AGE,
    MAX_CLOCK_AHEAD,
    MAX_SIGHTINGS_PER_BATCH,
    MAX_TELEMETRY_PER_BATCH,
    RSSI_MAX_DBM,
    RSSI_MIN_DBM,
    SIGHTINGS_SCHEMA,
    BeaconTelemetry,
    ParsedBatch,
    Sighting,
    SightingsBatch,
    parse_sightings_batch,
)
from shared.domain.tenancy import USER_ID_MAX_LENGTH, USER_ID_PATTERN, is_tenant_id

INGEST_EVENT_SCHEMA: Final = "ingest/v1"
# What the ingest route vouches for: every reading of the event passed this contract when it was received.
VALIDATED_AS: Final = SIGHTINGS_SCHEMA


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """The envelope of a batch: who sent it, when, with what."""

    batch_id: str
    device_id: str
    sent_at: datetime
    platform: Literal["ios", "android"]
    model: str
    sdk_version: str
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class SightingColumns:
    """A batch's sightings as columns, in the order sent: canonical beacon ids, RSSI (dBm), epoch seconds, and the
    advertised power (None where not sent)."""

    beacon: list[str] = field(default_factory=list)
    rssi: list[int] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    tx_power: list[int | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.beacon)


@dataclass(frozen=True)
class IngestEvent:
    tenant_id: str
    received_at: datetime
    batch: BatchInfo
    sightings: SightingColumns
    telemetry: tuple[BeaconTelemetry, ...] = ()
    trusted: bool = False  # decoded on the trusted path (the ingest route's stamp), not reading by reading

    @cached_property
    def parsed(self) -> ParsedBatch:
        """The batch as `sightings/v1` models (built on first use: tests, tools; the processor reads the columns)."""
        from datetime import UTC

        sightings = [
            Sighting.model_construct(beacon=b, rssi=r, ts=datetime.fromtimestamp(t, tz=UTC), tx_power=p)
            for b, r, t, p in zip(self.sightings.beacon, self.sightings.rssi, self.sightings.ts,
                                  self.sightings.tx_power)
        ]
        info = self.batch
        batch = SightingsBatch.model_construct(
            schema_="sightings/v1", batch_id=uuid.UUID(info.batch_id), device_id=info.device_id,
            sent_at=info.sent_at, platform=info.platform, model=info.model, sdk_version=info.sdk_version,
            user_id=info.user_id, sightings=sightings, beacon_telemetry=list(self.telemetry))
        return ParsedBatch(batch=batch)


def encode_ingest_event(tenant_id: str, received_at: datetime, batch: SightingsBatch) -> bytes:
    """The event of a batch that `parse_sightings_batch` judged as of `received_at` (only its kept readings)."""
    body = {
        "schema": INGEST_EVENT_SCHEMA,
        "tenantId": tenant_id,
        "receivedAt": received_at.isoformat(),
        "validated": VALIDATED_AS,
        "batch": batch.model_dump(mode="json", by_alias=True, exclude_none=True),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def decode_ingest_event(body: bytes) -> IngestEvent:
    """Decode an event, trusting the ingest route's stamp where there is one (one-pass check) and judging it
    reading by reading otherwise; ContractViolation names what is wrong.

    The batch is judged as of when it was received, so a backlog in the hub does not turn good readings stale.
    """
    trusted = _decode_trusted(body)
    return trusted if trusted is not None else _decode_full(body)


# ------------------------------------------------------------------------------------------------ trusted path
_DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$"


class _Sighting(msgspec.Struct, forbid_unknown_fields=True, rename={"tx_power": "txPower"}):
    beacon: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    rssi: Annotated[int, msgspec.Meta(ge=RSSI_MIN_DBM, le=RSSI_MAX_DBM)]
    ts: Annotated[datetime, msgspec.Meta(tz=True)]
    tx_power: Annotated[int, msgspec.Meta(ge=-100, le=20)] | None = None


class _Telemetry(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    beacon: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    ts: Annotated[datetime, msgspec.Meta(tz=True)]
    battery_mv: Annotated[int, msgspec.Meta(ge=0, le=5_000)] | None = None
    solar_lux: Annotated[float, msgspec.Meta(ge=0, le=200_000)] | None = None
    temperature_c: Annotated[float, msgspec.Meta(ge=-40, le=85)] | None = None


class _Batch(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    schema: Literal["sightings/v1"]
    batch_id: uuid.UUID
    device_id: Annotated[str, msgspec.Meta(min_length=8, max_length=128, pattern=_DEVICE_ID)]
    sent_at: Annotated[datetime, msgspec.Meta(tz=True)]
    platform: Literal["ios", "android"]
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[\x20-\x7e]+$")]
    sdk_version: Annotated[str, msgspec.Meta(max_length=32, pattern=r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.\-]+)?$")]
    user_id: Annotated[str, msgspec.Meta(min_length=1, max_length=USER_ID_MAX_LENGTH,
                                         pattern=USER_ID_PATTERN)] | None = None
    sightings: Annotated[list[_Sighting], msgspec.Meta(max_length=MAX_SIGHTINGS_PER_BATCH)] = []
    beacon_telemetry: Annotated[list[_Telemetry], msgspec.Meta(max_length=MAX_TELEMETRY_PER_BATCH)] = []


class _Event(msgspec.Struct, rename="camel"):
    schema: Literal["ingest/v1"]
    tenant_id: str
    received_at: Annotated[datetime, msgspec.Meta(tz=True)]
    batch: _Batch
    validated: str | None = None


_EVENT_DECODER = msgspec.json.Decoder(_Event)

# Canonical form of each raw beacon id seen (the same str object every time: also shared by the states that keep
# it). A fleet hears a bounded set of beacons; the table starts over if it ever gets this large.
_BEACON_IDS: dict[str, str] = {}
_BEACON_IDS_KEPT = 200_000


def canonical_beacon_id(raw: str) -> str:
    """`normalize_beacon_id`, memoised; ValueError for an id of neither format."""
    known = _BEACON_IDS.get(raw)
    if known is not None:
        return known
    canonical = normalize_beacon_id(raw)
    if len(_BEACON_IDS) >= _BEACON_IDS_KEPT:
        _BEACON_IDS.clear()
    canonical = _BEACON_IDS.setdefault(canonical, canonical)
    _BEACON_IDS[raw] = canonical
    return canonical


def _decode_trusted(body: bytes) -> IngestEvent | None:
    """The event on the trusted path; None when it has to be judged in full (no stamp, another stamp, or anything
    the one-pass check refuses: the full path then names the problem)."""
    try:
        event = _EVENT_DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    if event.validated != VALIDATED_AS or not is_tenant_id(event.tenant_id):
        return None
    batch = event.batch
    received = event.received_at
    oldest, newest = received - MAX_AGE, received + MAX_CLOCK_AHEAD
    if not oldest <= batch.sent_at <= newest:
        return None
    readings = batch.sightings
    seen = _BEACON_IDS.get  # the canonical ids already seen, without a call of ours per reading
    known = [seen(s.beacon) for s in readings]
    if None not in known:
        beacons = cast(list[str], known)
    else:
        try:
            beacons = [canonical_beacon_id(s.beacon) for s in readings]
        except ValueError:
            return None
    # the time window in epoch seconds, one comparison per reading; a reading outside it (a tampered or a very late
    # event) sends the event to the full path, which drops exactly those readings
    times = [s.ts.timestamp() for s in readings]
    if times and not (oldest.timestamp() <= min(times) and max(times) <= newest.timestamp()):
        return None
    telemetry: list[BeaconTelemetry] = []
    for t in batch.beacon_telemetry:
        if not oldest <= t.ts <= newest:
            return None
        try:
            beacon = canonical_beacon_id(t.beacon)
        except ValueError:
            return None
        telemetry.append(BeaconTelemetry.model_construct(
            beacon=beacon, ts=t.ts, battery_mv=t.battery_mv, solar_lux=t.solar_lux, temperature_c=t.temperature_c))
    columns = SightingColumns(beacons, [s.rssi for s in readings], times, [s.tx_power for s in readings])
    info = BatchInfo(str(batch.batch_id), batch.device_id, batch.sent_at, batch.platform, batch.model,
                     batch.sdk_version, batch.user_id)
    return IngestEvent(event.tenant_id, received, info, columns, tuple(telemetry), trusted=True)


# --------------------------------------------------------------------------------------------------- full path
def _decode_full(body: bytes) -> IngestEvent:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: a deeply nested body (json.loads recurses per level)
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
    b = parsed.batch
    columns = SightingColumns([canonical_beacon_id(s.beacon) for s in b.sightings], [s.rssi for s in b.sightings],
                              [s.ts.timestamp() for s in b.sightings], [s.tx_power for s in b.sightings])
    info = BatchInfo(str(b.batch_id), b.device_id, b.sent_at, b.platform, b.model, b.sdk_version, b.user_id)
    decoded = IngestEvent(tenant_id, received_at, info, columns, tuple(b.beacon_telemetry))
    decoded.__dict__["parsed"] = parsed  # the models it was judged with, rejected readings included
    return decoded
