"""The SDK's batch contract `sightings/v1` and its validation.

A batch is judged in two layers: the envelope (schema, ids, device, platform...) must be valid or the whole
batch is refused with every offending field named; each sighting and telemetry reading is then judged on its
own, so one stale or out-of-range reading is dropped and counted while the good ones in the batch are kept.
"""
from __future__ import annotations

import uuid
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from shared.domain.beacon_ids import normalize_beacon_id
from shared.domain.errors import ContractViolation, FieldError, field_errors
from shared.domain.tenancy import USER_ID_MAX_LENGTH, USER_ID_PATTERN

SIGHTINGS_SCHEMA = "sightings/v1"
MAX_SIGHTINGS_PER_BATCH = 2_000
MAX_TELEMETRY_PER_BATCH = 200
MAX_AGE = timedelta(hours=24)
MAX_CLOCK_AHEAD = timedelta(minutes=5)
RSSI_MIN_DBM, RSSI_MAX_DBM = -120, 0


def _beacon_id(value: str) -> str:
    try:
        return normalize_beacon_id(value)
    except ValueError as exc:
        raise PydanticCustomError("beacon_id", str(exc)) from None


BeaconId = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(_beacon_id)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, str_strip_whitespace=False)


class Sighting(_Strict):
    beacon: BeaconId
    rssi: int = Field(ge=RSSI_MIN_DBM, le=RSSI_MAX_DBM, description="received signal strength, dBm")
    ts: AwareDatetime = Field(description="when the phone heard the beacon, RFC 3339 with offset")
    tx_power: int | None = Field(default=None, alias="txPower", ge=-100, le=20, description="advertised power, dBm")


class BeaconTelemetry(_Strict):
    beacon: BeaconId
    ts: AwareDatetime
    battery_mv: int | None = Field(default=None, alias="batteryMv", ge=0, le=5_000)
    solar_lux: float | None = Field(default=None, alias="solarLux", ge=0, le=200_000, allow_inf_nan=False)
    temperature_c: float | None = Field(default=None, alias="temperatureC", ge=-40, le=85, allow_inf_nan=False)


class SightingsBatch(_Strict):
    """A validated batch: only the sightings and telemetry readings that passed their own checks."""

    schema_: Literal["sightings/v1"] = Field(alias="schema")
    batch_id: uuid.UUID = Field(alias="batchId", description="unique per device; the idempotency key")
    device_id: str = Field(
        alias="deviceId", min_length=8, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]*$",
        description="opaque installation id, no personal data",
    )
    sent_at: AwareDatetime = Field(alias="sentAt")
    platform: Literal["ios", "android"]
    model: str = Field(min_length=1, max_length=64, pattern=r"^[\x20-\x7e]+$", description="phone model, e.g. iPhone15,2")
    sdk_version: str = Field(alias="sdkVersion", max_length=32, pattern=r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.\-]+)?$")
    user_id: str | None = Field(
        default=None, alias="userId", min_length=1, max_length=USER_ID_MAX_LENGTH, pattern=USER_ID_PATTERN,
        description="only when the user opted in to sharing; what the people finder and teams look it up by",
    )
    sightings: list[Sighting] = Field(default_factory=list, max_length=MAX_SIGHTINGS_PER_BATCH)
    beacon_telemetry: list[BeaconTelemetry] = Field(
        default_factory=list, alias="beaconTelemetry", max_length=MAX_TELEMETRY_PER_BATCH
    )


class _Envelope(SightingsBatch):
    """The batch with its readings still raw: judged one by one after the envelope passes."""

    sightings: list[Any] = Field(default_factory=list, max_length=MAX_SIGHTINGS_PER_BATCH)
    beacon_telemetry: list[Any] = Field(
        default_factory=list, alias="beaconTelemetry", max_length=MAX_TELEMETRY_PER_BATCH
    )


@dataclass(frozen=True)
class RejectedReading:
    """A reading dropped from an otherwise valid batch: where it was and why."""

    field: str  # "sightings" or "beaconTelemetry"
    index: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "index": self.index, "reason": self.reason}


@dataclass(frozen=True)
class ParsedBatch:
    batch: SightingsBatch
    rejected: list[RejectedReading] = field(default_factory=list)

    @property
    def rejected_sightings(self) -> list[RejectedReading]:
        return [r for r in self.rejected if r.field == "sightings"]


_SIGHTING = TypeAdapter(Sighting)
_TELEMETRY = TypeAdapter(BeaconTelemetry)


UNKNOWN_BEACON = "unknown beacon: not placed in any building of this tenant"


def parse_sightings_batch(data: object, now: datetime, known_beacons: Container[str] | None = None) -> ParsedBatch:
    """Validate a decoded JSON batch against `sightings/v1` as of `now` (timezone-aware).

    Raises ContractViolation naming every bad envelope field. Bad, stale (older than 24 h), future (more than
    5 min ahead of `now`) and duplicate readings are dropped into `rejected`; the rest are kept in order. With
    `known_beacons`, readings of other beacons (a neighbour's, one not placed yet) are dropped too.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not isinstance(data, dict):
        raise ContractViolation([FieldError("$", "the batch must be a JSON object")])
    try:
        envelope = _Envelope.model_validate(data)
    except ValidationError as exc:
        raise ContractViolation(field_errors(exc), title="The sightings batch is invalid") from None
    errors = _time_errors("sentAt", envelope.sent_at, now)
    if errors:
        raise ContractViolation([FieldError("sentAt", errors)], title="The sightings batch is invalid")

    rejected: list[RejectedReading] = []
    sightings = _keep_valid(_SIGHTING, "sightings", envelope.sightings, now, rejected, known_beacons)
    telemetry = _keep_valid(_TELEMETRY, "beaconTelemetry", envelope.beacon_telemetry, now, rejected, known_beacons)

    batch = SightingsBatch.model_construct(
        **{name: getattr(envelope, name) for name in SightingsBatch.model_fields if name not in ("sightings", "beacon_telemetry")},
        sightings=sightings,
        beacon_telemetry=telemetry,
    )
    return ParsedBatch(batch=batch, rejected=rejected)


def _keep_valid(adapter: TypeAdapter[Any], field_name: str, raws: list[Any], now: datetime,
                rejected: list[RejectedReading], known_beacons: Container[str] | None = None) -> list[Any]:
    """The readings that pass on their own, in order; the others (and repeats of a beacon at one instant) are
    appended to `rejected` with their reason."""
    kept: list[Any] = []
    seen: set[tuple[str, datetime]] = set()
    for index, raw in enumerate(raws):
        reading, reason = _judge(adapter, raw, now)
        if reading is not None and (reading.beacon, reading.ts) in seen:
            reading, reason = None, "duplicate of an earlier reading of the same beacon at the same time"
        elif reading is not None and known_beacons is not None and reading.beacon not in known_beacons:
            reading, reason = None, UNKNOWN_BEACON
        if reading is None:
            rejected.append(RejectedReading(field_name, index, reason))
        else:
            seen.add((reading.beacon, reading.ts))
            kept.append(reading)
    return kept


def _judge(adapter: TypeAdapter[Any], raw: object, now: datetime) -> tuple[Any, str]:
    try:
        reading = adapter.validate_python(raw)
    except ValidationError as exc:
        return None, "; ".join(f"{e.field}: {e.message}" if e.field != "$" else e.message for e in field_errors(exc))
    problem = _time_errors("ts", reading.ts, now)
    if problem:
        return None, f"ts: {problem}"
    return reading, ""


def _time_errors(name: str, ts: datetime, now: datetime) -> str:
    if ts < now - MAX_AGE:
        return f"{name} is more than 24 hours old (stale)"
    if ts > now + MAX_CLOCK_AHEAD:
        return f"{name} is more than 5 minutes ahead of the server clock (future)"
    return ""


def batch_json_schema() -> dict[str, Any]:
    """JSON Schema of the `sightings/v1` batch, as published in docs/schemas."""
    schema = SightingsBatch.model_json_schema(by_alias=True, mode="validation")
    schema["$id"] = "https://spaceflow.dev/schemas/sightings-v1.json"
    schema["title"] = "sightings/v1"
    return schema
