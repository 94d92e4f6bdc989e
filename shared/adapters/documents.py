"""Presence objects <-> the JSON documents both live-state stores keep, so the fake stores what Cosmos stores."""
from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.domain.bookings import (
    Booking,
    BookingHold,
    BookingSettings,
    BookingSourceKind,
    CalendarSource,
    ReleaseState,
)
from shared.domain.events import BeaconAlerts, CloudEvent, EventType, parse_event
from shared.domain.floor_summary import BadSummary, FloorSummary, SpaceSnapshot, decode_counts, encode_counts
from shared.domain.identity import IdentityConfig, issuer_key
from shared.domain.people import AuditEntry, Sharing, SharingChange, SharingLevel, Tenant
from shared.domain.presence import BeaconDrift, BeaconHealth, DeviceState, SpaceState, Visit, batch_key
from shared.domain.subscriptions import (
    AttemptRecord,
    Delivery,
    DeliveryStatus,
    EventHubTarget,
    SigningSecret,
    SinkKind,
    Subscription,
)


def iso(moment: datetime | None) -> str | None:
    """UTC with fixed precision, so stored times compare correctly as strings in queries."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None  # 3.11 reads the trailing Z


class MissingField(KeyError):
    """A stored document lacks a field its object cannot do without (absent, null or empty). A KeyError, as the
    plain `doc[field]` it replaces raised for an absent one."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else super().__str__()


def require_time(doc: dict[str, Any], field_name: str) -> datetime:
    """The time `doc[field_name]`, which the document must hold; MissingField names the document and the field."""
    moment = parse_time(doc.get(field_name))
    if moment is None:
        raise MissingField(f"document {doc.get('id')!r} has no {field_name!r}, a required time")
    return moment


# Live-state documents are partitioned by this synthetic key, `tenantId|buildingId` (docs/data-model.md).
PARTITION_KEY_FIELD = "buildingKey"


def device_to_doc(d: DeviceState) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": d.device_id, PARTITION_KEY_FIELD: d.building.key, "buildingId": d.building_id, "tenantId": d.tenant_id,
        "lastSeen": iso(d.last_seen),
        "x": d.x, "y": d.y, "floor": d.floor, "uncertaintyM": d.uncertainty_m,
        "spaceId": d.space_id, "spaceSince": iso(d.space_since), "spaceConfidence": d.space_confidence,
        "model": d.model, BATCH_KEYS: "".join(d.recent_batches) if _joinable(d.recent_batches) else list(d.recent_batches),
    }
    # Absent rather than null when unset (a device mid-leave, a person sharing): the queries test IS_STRING.
    for name, value in (("userId", d.user_id), ("leavingSpaceId", d.leaving_space_id),
                        ("leavingSince", iso(d.leaving_since))):
        if value is not None:
            doc[name] = value
    doc["tracking"] = pack_tracking(d.tracking, doc)
    return doc


def _joinable(keys: tuple[str, ...]) -> bool:
    return all(len(k) == BATCH_KEY_CHARS for k in keys)


def device_from_doc(doc: dict[str, Any]) -> DeviceState:
    if BATCH_KEYS in doc:
        stored = doc[BATCH_KEYS] or ()
        batches = tuple(stored[i:i + BATCH_KEY_CHARS] for i in range(0, len(stored), BATCH_KEY_CHARS)) \
            if isinstance(stored, str) else tuple(stored)
    else:  # written before the window kept short keys: the batch ids themselves
        batches = tuple(batch_key(str(b)) for b in doc.get("recentBatches") or ())
    return DeviceState(
        tenant_id=doc["tenantId"], building_id=doc["buildingId"], device_id=doc["id"],
        last_seen=require_time(doc, "lastSeen"), tracking=unpack_tracking(doc.get("tracking"), doc),
        x=doc.get("x"), y=doc.get("y"),
        floor=doc.get("floor"), uncertainty_m=doc.get("uncertaintyM"), space_id=doc.get("spaceId"),
        space_since=parse_time(doc.get("spaceSince")), space_confidence=doc.get("spaceConfidence") or 0.0,
        user_id=doc.get("userId"), model=doc.get("model"), recent_batches=batches,
        leaving_space_id=doc.get("leavingSpaceId"), leaving_since=parse_time(doc.get("leavingSince")),
        etag=doc.get("_etag"),
    )


# The device document's dedupe window: presence.batch_key() of the last batch ids, one string of 11-character keys
# (a list when some key is not 11 characters); documents written before it kept the ids themselves, under
# `recentBatches`.
BATCH_KEYS = "batchKeys"
BATCH_KEY_CHARS = 11

# The tracker's state (positioning TrackingState as JSON) is stored packed, to keep the device document under
# 1 KB (docs/data-model.md). Packing is lossless:
# - `k` says which of these keys the state has (bit i: _TRACKING_KEYS[i]); a key the table does not know is kept
#   as it is;
# - a value equal to what it can be derived from is left out: the same field of the device document (the tracker's
#   position, floor, room and confidence are the device's, as last estimated) or the key's default;
# - `beacons` (beacon id -> [rssi, variance, time, measured power]) becomes `p`, the beacon ids' common prefix
#   (their UUID, mostly), `w`, the most common measured power, and `b`, suffix -> [rssi, variance, seconds before
#   lastSeen] and the measured power when it is not `w`;
# - the pending switches' times are stored as seconds before lastSeen.
_PACKED = 2
_FROM_DOC = object()  # marks a key derived from the device document's field of the same meaning
_TRACKING_KEYS: tuple[tuple[str, Any, str | None], ...] = (  # key, default, the device document's field
    ("schema", "tracking/v1", None), ("ts", _FROM_DOC, "lastSeen"), ("beacons", _FROM_DOC, None),
    ("x", _FROM_DOC, "x"), ("y", _FROM_DOC, "y"), ("floor", _FROM_DOC, "floor"),
    ("uncertainty_m", _FROM_DOC, "uncertaintyM"), ("floor_candidate", None, None),
    ("floor_candidate_since", None, None), ("space", _FROM_DOC, "spaceId"),
    ("space_confidence", _FROM_DOC, "spaceConfidence"), ("space_candidate", None, None),
    ("space_candidate_since", None, None), ("space_evidence", 0.0, None), ("offset", None, None),
    ("rooms", None, None),
)
_PACKING_KEYS = {"v", "k", "p", "b", "w"}
_TIMES = {"floor_candidate_since", "space_candidate_since"}  # epoch seconds: stored as seconds before lastSeen


def _derived(key: str, default: Any, field_name: str | None, doc: dict[str, Any]) -> Any:
    if default is not _FROM_DOC:
        return default
    if field_name == "lastSeen":
        return _epoch(doc)
    return doc.get(field_name) if field_name else None


def _epoch(doc: dict[str, Any]) -> float:
    return round(require_time(doc, "lastSeen").timestamp(), 3)


def pack_tracking(tracking: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """The tracker's state as stored in the device document `doc` (which must hold the device's other fields)."""
    if not tracking or _PACKING_KEYS & tracking.keys():  # nothing to pack, or keys packing would shadow
        return tracking
    packed: dict[str, Any] = {"v": _PACKED}
    mask = 0
    known = set()
    for bit, (key, default, field_name) in enumerate(_TRACKING_KEYS):
        known.add(key)
        if key not in tracking:
            continue
        mask |= 1 << bit
        value = tracking[key]
        if key == "beacons":
            packed.update(_pack_beacons(value, _epoch(doc)))
            continue
        derived = _derived(key, default, field_name, doc)
        if value != derived or type(value) is not type(derived):  # (1 and 1.0 are equal, but not the same JSON)
            packed[key] = round(_epoch(doc) - value, 3) if key in _TIMES and isinstance(value, float) else value
    packed["k"] = mask
    packed.update({key: value for key, value in tracking.items() if key not in known})
    return packed


def unpack_tracking(stored: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """The tracker's state from a device document, packed (pack_tracking) or as written before packing."""
    if not isinstance(stored, dict) or not stored:
        return {}
    if stored.get("v") != _PACKED or not isinstance(stored.get("k"), int):
        return stored
    mask = stored["k"]
    tracking: dict[str, Any] = {}
    for bit, (key, default, field_name) in enumerate(_TRACKING_KEYS):
        if not mask & (1 << bit):
            continue
        if key == "beacons" and key not in stored:
            tracking[key] = _unpack_beacons(stored.get("p") or "", stored.get("w") or 0.0, stored.get("b") or {},
                                            _epoch(doc))
        else:
            value = stored[key] if key in stored else _derived(key, default, field_name, doc)
            tracking[key] = round(_epoch(doc) - value, 3) if key in _TIMES and key in stored and isinstance(
                value, float) else value
    known = {key for key, _d, _f in _TRACKING_KEYS} | _PACKING_KEYS
    tracking.update({key: value for key, value in stored.items() if key not in known})
    return tracking


def _pack_beacons(beacons: Any, base: float) -> dict[str, Any]:
    if not isinstance(beacons, dict) or not all(
            isinstance(v, (list, tuple)) and len(v) == 4 and all(isinstance(x, float) for x in v)
            for v in beacons.values()):
        return {"beacons": beacons}  # not the shape packing knows: kept as it is
    ids = list(beacons)
    prefix = os.path.commonprefix(ids) if len(ids) > 1 else ""
    if ":" in prefix:  # whole UUID (and major) only: the suffixes stay readable
        prefix = prefix[: prefix.rindex(":") + 1]
    powers = [power for _r, _v, _t, power in beacons.values()]
    usual = max(set(powers), key=powers.count) if powers else 0.0
    packed = {}
    for beacon, (rssi, variance, at, power) in beacons.items():
        entry = [rssi, variance, round(base - at, 3)]
        packed[beacon[len(prefix):]] = entry if power == usual else [*entry, power]
    return {"p": prefix, "w": usual, "b": packed}


def _unpack_beacons(prefix: str, usual: float, packed: dict[str, Any], base: float) -> dict[str, list[float]]:
    return {prefix + suffix: [float(entry[0]), float(entry[1]), round(base - entry[2], 3),
                              float(entry[3]) if len(entry) > 3 else float(usual)]
            for suffix, entry in packed.items()}


def space_to_doc(s: SpaceState) -> dict[str, Any]:
    # headcount and status are stored as well as derived: queries filter on them (free rooms, occupancy).
    return {"id": s.space_id, PARTITION_KEY_FIELD: s.building.key, "buildingId": s.building_id,
            "tenantId": s.tenant_id, "occupants": s.occupants, "headcount": s.headcount, "status": s.status,
            "since": iso(s.since), "lastChange": iso(s.last_change), "eventSeq": s.event_seq,
            "headcountReported": s.headcount_reported, "headcountReportedAt": iso(s.headcount_reported_at),
            "headcountDueAt": iso(s.headcount_due_at)}


def space_from_doc(doc: dict[str, Any]) -> SpaceState:
    return SpaceState(tenant_id=doc["tenantId"], building_id=doc["buildingId"], space_id=doc["id"],
                      occupants=dict(doc.get("occupants") or {}),
                      since=parse_time(doc.get("since")), last_change=parse_time(doc.get("lastChange")),
                      event_seq=int(doc.get("eventSeq") or 0),
                      # written before events existed: the headcount then is taken as reported
                      headcount_reported=int(doc.get("headcountReported", len(doc.get("occupants") or {}))),
                      headcount_reported_at=parse_time(doc.get("headcountReportedAt")),
                      headcount_due_at=parse_time(doc.get("headcountDueAt")), etag=doc.get("_etag"))


# What a free-rooms answer needs of a space document (a query's projection: the bytes it returns are its cost).
SNAPSHOT_PROJECTION = "c.id, c.headcount, c.since"


def snapshot_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of a space document SNAPSHOT_PROJECTION returns (an absent field is left out, as Cosmos does)."""
    return {k: doc[k] for k in ("id", "headcount", "since") if k in doc}


def snapshot_from_doc(doc: dict[str, Any]) -> tuple[str, SpaceSnapshot]:
    headcount = doc.get("headcount")
    return str(doc["id"]), SpaceSnapshot(headcount if isinstance(headcount, int) else 0, parse_time(doc.get("since")))


def visit_to_doc(v: Visit) -> dict[str, Any]:
    return {"id": v.id, PARTITION_KEY_FIELD: v.building.key, "tenantId": v.tenant_id, "buildingId": v.building_id,
            "spaceId": v.space_id,
            "deviceId": v.device_id, "start": iso(v.start), "end": iso(v.end), "durationS": round(v.duration_s, 3),
            "userId": v.user_id}


def visit_from_doc(doc: dict[str, Any]) -> Visit:
    return Visit(tenant_id=doc["tenantId"], building_id=doc["buildingId"], space_id=doc["spaceId"],
                 device_id=doc["deviceId"], start=require_time(doc, "start"), end=require_time(doc, "end"),
                 user_id=doc.get("userId"))


def beacon_to_doc(b: BeaconHealth) -> dict[str, Any]:
    drift = None
    if b.drift is not None:
        d = b.drift
        drift = {"levelDb": round(d.level_db, 2), "baselineDb": None if d.baseline_db is None else round(d.baseline_db, 2),
                 "sdDb": round(d.sd_db, 3), "observations": d.observations, "at": iso(d.at), "flagged": d.flagged}
    return {"id": b.beacon_id, PARTITION_KEY_FIELD: b.building.key, "buildingId": b.building_id,
            "tenantId": b.tenant_id, "lastHeard": iso(b.last_heard),
            "batteryMv": b.battery_mv, "solarLux": b.solar_lux, "temperatureC": b.temperature_c,
            "telemetryAt": iso(b.telemetry_at), "drift": drift}


def beacon_from_doc(doc: dict[str, Any]) -> BeaconHealth:
    return BeaconHealth(tenant_id=doc["tenantId"], building_id=doc["buildingId"], beacon_id=doc["id"],
                        last_heard=require_time(doc, "lastHeard"), battery_mv=doc.get("batteryMv"),
                        solar_lux=doc.get("solarLux"), temperature_c=doc.get("temperatureC"),
                        telemetry_at=parse_time(doc.get("telemetryAt")),
                        silence_reported=bool(doc.get(SILENCE_REPORTED)), drift=_drift_from_doc(doc.get("drift")))


def _drift_from_doc(raw: Any) -> BeaconDrift | None:
    """The drift sub-document; None when absent (documents written before self-calibration) or unreadable."""
    if not isinstance(raw, dict):
        return None
    try:
        baseline = raw.get("baselineDb")
        at = parse_time(raw.get("at"))
        if at is None:
            return None
        return BeaconDrift(float(raw["levelDb"]), None if baseline is None else float(baseline), float(raw["sdDb"]),
                           int(raw["observations"]), at, bool(raw.get("flagged", False)))
    except (KeyError, TypeError, ValueError):
        return None



# Documents beside the state in the spaces and beacons containers (same partition, so one transactional batch
# writes a transition with its events) carry a `kind`; the state documents have none.
KIND_FIELD = "kind"
OUTBOX_KIND = "outbox"
ALERTS_KIND = "alerts"
SILENCE_REPORTED = "silenceReported"


def outbox_id(event_id: str) -> str:
    return f"outbox:{event_id}"


def outbox_to_doc(event: CloudEvent) -> dict[str, Any]:
    building = event.building
    return {"id": outbox_id(event.id), PARTITION_KEY_FIELD: building.key, "tenantId": building.tenant_id,
            "buildingId": building.building_id, KIND_FIELD: OUTBOX_KIND, "subject": event.subject,
            "sequence": event.sequence_number, "event": event.to_json()}


def outbox_from_doc(doc: dict[str, Any]) -> CloudEvent:
    return parse_event(doc["event"])


def alerts_id(beacon_id: str) -> str:
    return f"alerts:{beacon_id}"


def alerts_to_doc(a: BeaconAlerts) -> dict[str, Any]:
    return {"id": alerts_id(a.beacon_id), PARTITION_KEY_FIELD: a.building.key, "tenantId": a.tenant_id,
            "buildingId": a.building_id, KIND_FIELD: ALERTS_KIND, "beaconId": a.beacon_id, "eventSeq": a.event_seq,
            "batteryLow": a.battery_low, "silentReportedFor": iso(a.silent_reported_for)}


def alerts_from_doc(doc: dict[str, Any]) -> BeaconAlerts:
    return BeaconAlerts(tenant_id=doc["tenantId"], building_id=doc["buildingId"], beacon_id=doc["beaconId"],
                        event_seq=int(doc.get("eventSeq") or 0), battery_low=bool(doc.get("batteryLow")),
                        silent_reported_for=parse_time(doc.get("silentReportedFor")), etag=doc.get("_etag"))


# Azure's documented costs (DESIGN.md): a point read of up to 1 KB is 1 RU; a ~1 KB write is ~5.5 RU with no
# index, 8-10 RU with selective indexing (what our containers use), ~19 RU with everything indexed.
READ_RU_PER_KB = 1.0
WRITE_RU_FIRST_KB = 8.0
WRITE_RU_PER_EXTRA_KB = 5.5


def estimated_read_ru(size_bytes: int) -> float:
    return READ_RU_PER_KB * max(1, math.ceil(size_bytes / 1024))


def estimated_write_ru(size_bytes: int) -> float:
    return WRITE_RU_FIRST_KB + WRITE_RU_PER_EXTRA_KB * max(0, math.ceil(size_bytes / 1024) - 1)


@dataclass
class StoreMeter:
    """Reads and writes per container with their estimated request units, and the documents the reads returned (a
    point read one or none, a query as many as it returned; it is metered as one read of them all)."""

    reads: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    writes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    ru: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    documents: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def read(self, container: str, size_bytes: int, documents: int | None = None) -> None:
        self.reads[container] += 1
        self.ru[container] += estimated_read_ru(size_bytes)
        self.documents[container] += (1 if size_bytes else 0) if documents is None else documents

    def write(self, container: str, size_bytes: int) -> None:
        self.writes[container] += 1
        self.ru[container] += estimated_write_ru(size_bytes)

    def reset(self) -> None:
        self.reads.clear()
        self.writes.clear()
        self.ru.clear()
        self.documents.clear()


def tenant_to_doc(t: Tenant) -> dict[str, Any]:
    return {"id": "tenant", "tenantId": t.tenant_id, "kind": "tenant", "name": t.name, "createdAt": iso(t.created_at)}


def tenant_from_doc(doc: dict[str, Any]) -> Tenant:
    return Tenant(tenant_id=doc["tenantId"], name=doc["name"], created_at=require_time(doc, "createdAt"))


def sharing_to_doc(s: Sharing) -> dict[str, Any]:
    return {"id": f"sharing:{s.user_id}", "tenantId": s.tenant_id, "kind": "sharing", "userId": s.user_id,
            "level": s.level.value, "until": iso(s.until), "updatedAt": iso(s.updated_at)}


def sharing_from_doc(doc: dict[str, Any]) -> Sharing:
    return Sharing(tenant_id=doc["tenantId"], user_id=doc["userId"], level=SharingLevel(doc["level"]),
                   until=parse_time(doc.get("until")), updated_at=require_time(doc, "updatedAt"), etag=doc.get("_etag"))


def identity_to_doc(c: IdentityConfig) -> dict[str, Any]:
    return {"id": "identity", "tenantId": c.tenant_id, "kind": "identity", "issuer": c.issuer,
            "audience": c.audience, "jwksUri": c.jwks_uri, "userClaim": c.user_claim, "updatedAt": iso(c.updated_at),
            "dashboardClientId": c.dashboard_client_id, "dashboardScope": c.dashboard_scope}


def identity_from_doc(doc: dict[str, Any]) -> IdentityConfig:
    return IdentityConfig(tenant_id=doc["tenantId"], issuer=doc["issuer"], audience=doc["audience"],
                          jwks_uri=doc.get("jwksUri"), user_claim=doc["userClaim"],
                          updated_at=require_time(doc, "updatedAt"),
                          # absent from configurations saved before the dashboard signed people in
                          dashboard_client_id=doc.get("dashboardClientId"), dashboard_scope=doc.get("dashboardScope"))


ISSUER_CLAIM_ID = "issuer"


def issuer_partition(issuer: str) -> str:
    """The partition of an issuer's claim in `tenants`: `issuer:<sha256>`, which no tenant id can be (':')."""
    return f"issuer:{issuer_key(issuer)}"


def issuer_claim_to_doc(issuer: str, tenant_id: str) -> dict[str, Any]:
    return {"id": ISSUER_CLAIM_ID, "tenantId": issuer_partition(issuer), "kind": "issuer-claim", "issuer": issuer,
            "owner": tenant_id}


# The audit container holds two kinds of entries; lookups written before `kind` existed have none.
LOOKUP_KIND = "lookup"
SHARING_CHANGE_KIND = "sharing-change"


def audit_kind(doc: dict[str, Any]) -> str:
    return doc.get("kind") or LOOKUP_KIND


def audit_to_doc(e: AuditEntry, entry_id: str) -> dict[str, Any]:
    return {"id": entry_id, "tenantId": e.tenant_id, "kind": LOOKUP_KIND, "at": iso(e.at), "keyId": e.key_id,
            "byUserId": e.by_user_id, "userId": e.user_id, "outcome": e.outcome,
            "level": e.level.value if e.level else None}


def audit_from_doc(doc: dict[str, Any]) -> AuditEntry:
    return AuditEntry(tenant_id=doc["tenantId"], at=require_time(doc, "at"), key_id=doc.get("keyId"),
                      user_id=doc["userId"], outcome=doc["outcome"],
                      level=SharingLevel(doc["level"]) if doc.get("level") else None, by_user_id=doc.get("byUserId"))


def sharing_change_to_doc(c: SharingChange, entry_id: str) -> dict[str, Any]:
    return {"id": entry_id, "tenantId": c.tenant_id, "kind": SHARING_CHANGE_KIND, "at": iso(c.at),
            "userId": c.user_id, "byUserId": c.by_user_id, "byKeyId": c.by_key_id,
            "fromLevel": c.from_level.value if c.from_level else None, "fromUntil": iso(c.from_until),
            "toLevel": c.to_level.value, "toUntil": iso(c.to_until)}


def sharing_change_from_doc(doc: dict[str, Any]) -> SharingChange:
    return SharingChange(tenant_id=doc["tenantId"], at=require_time(doc, "at"), user_id=doc["userId"],
                         by_user_id=doc.get("byUserId"), by_key_id=doc.get("byKeyId"),
                         from_level=SharingLevel(doc["fromLevel"]) if doc.get("fromLevel") else None,
                         from_until=parse_time(doc.get("fromUntil")), to_level=SharingLevel(doc["toLevel"]),
                         to_until=parse_time(doc.get("toUntil")))


def subscription_to_doc(s: Subscription) -> dict[str, Any]:
    return {"id": s.subscription_id, "tenantId": s.tenant_id, "sink": s.sink.value, "url": s.url,
            "eventHub": {"namespace": s.event_hub.namespace, "hub": s.event_hub.hub} if s.event_hub else None,
            "types": sorted(t.value for t in s.types), "buildingId": s.building_id, "paused": s.paused,
            "disabledReason": s.disabled_reason, "disabledAt": iso(s.disabled_at), "createdAt": iso(s.created_at),
            # The secrets sign the requests, so they are kept as they are (Cosmos encrypts data at rest); they
            # are never returned by the API after the answer that created or rotated them.
            "secrets": [{"value": x.value, "createdAt": iso(x.created_at), "expiresAt": iso(x.expires_at)}
                        for x in s.secrets]}


def subscription_from_doc(doc: dict[str, Any]) -> Subscription:
    hub = doc.get("eventHub")
    return Subscription(
        tenant_id=doc["tenantId"], subscription_id=doc["id"], sink=SinkKind(doc["sink"]),
        created_at=require_time(doc, "createdAt"), url=doc.get("url"),
        event_hub=EventHubTarget(hub["namespace"], hub["hub"]) if hub else None,
        types=frozenset(EventType(t) for t in doc.get("types") or ()), building_id=doc.get("buildingId"),
        paused=bool(doc.get("paused")), disabled_reason=doc.get("disabledReason"),
        disabled_at=parse_time(doc.get("disabledAt")),
        secrets=tuple(SigningSecret(x["value"], require_time(x, "createdAt"), parse_time(x.get("expiresAt")))
                      for x in doc.get("secrets") or ()),
        etag=doc.get("_etag"))


def delivery_to_doc(d: Delivery) -> dict[str, Any]:
    return {"id": d.event_id, "subscriptionKey": d.subscription_key, "tenantId": d.tenant_id,
            "subscriptionId": d.subscription_id, "subject": d.event.subject, "sequence": d.event.sequence_number,
            "eventTime": iso(d.event.time), "event": d.event.to_json(), "status": d.status.value,
            "nextAttemptAt": iso(d.next_attempt_at), "attempts": d.attempts,
            "firstAttemptAt": iso(d.first_attempt_at), "deliveredAt": iso(d.delivered_at),
            "log": [{"at": iso(r.at), "statusCode": r.status_code, "latencyMs": r.latency_ms, "error": r.error}
                    for r in d.log]}


def delivery_from_doc(doc: dict[str, Any]) -> Delivery:
    return Delivery(
        tenant_id=doc["tenantId"], subscription_id=doc["subscriptionId"], event=parse_event(doc["event"]),
        status=DeliveryStatus(doc["status"]), next_attempt_at=require_time(doc, "nextAttemptAt"),
        attempts=int(doc.get("attempts") or 0), first_attempt_at=parse_time(doc.get("firstAttemptAt")),
        delivered_at=parse_time(doc.get("deliveredAt")),
        log=tuple(AttemptRecord(require_time(r, "at"), r.get("statusCode"), float(r.get("latencyMs") or 0.0),
                                r.get("error")) for r in doc.get("log") or ()),
        etag=doc.get("_etag"))


def event_log_to_doc(e: CloudEvent) -> dict[str, Any]:
    building = e.building
    return {"id": e.id, PARTITION_KEY_FIELD: building.key, "tenantId": building.tenant_id,
            "buildingId": building.building_id, "time": iso(e.time), "event": e.to_json()}


# Bookings (docs/bookings.md): documents beside the spaces in their building's partition of the spaces container,
# so a no-show and its event go into one transactional batch with the outbox.
BOOKING_KIND = "booking"
BOOKING_SETTINGS_KIND = "booking-settings"
BOOKING_SETTINGS_ID = "booking-settings"


def booking_id(space_id: str, booking_id_: str) -> str:
    return f"booking:{space_id}:{booking_id_}"


def booking_to_doc(b: Booking) -> dict[str, Any]:
    return {"id": booking_id(b.space_id, b.booking_id), PARTITION_KEY_FIELD: b.building.key,
            "tenantId": b.tenant_id, "buildingId": b.building_id, KIND_FIELD: BOOKING_KIND, "spaceId": b.space_id,
            "bookingId": b.booking_id, "start": iso(b.start), "end": iso(b.end), "source": b.source.value,
            "sourceEventId": b.source_event_id, "released": b.released, "checkedInAt": iso(b.checked_in_at),
            "noShowAt": iso(b.no_show_at), "eventSeq": b.event_seq,
            # queried across buildings by the no-show timer and the releaser: plain flags, indexed
            "checkOpen": not b.decided, "releaseState": b.release_state.value,
            "releaseClaimedUntil": iso(b.release_claimed_until), "releaseError": b.release_error}


# What BookingStore.list_running reads of a booking document (a Cosmos projection; `end` is a reserved word there).
BOOKING_HOLD_SELECT = "c.spaceId, c.bookingId, c.start, c['end'] AS ends, c.released, c.noShowAt"


def booking_hold_projection(doc: dict[str, Any]) -> dict[str, Any]:
    """A booking document as BOOKING_HOLD_SELECT projects it."""
    return {"spaceId": doc["spaceId"], "bookingId": doc["bookingId"], "start": doc["start"], "ends": doc["end"],
            "released": doc.get("released"), "noShowAt": doc.get("noShowAt")}


def booking_hold_from_doc(doc: dict[str, Any]) -> BookingHold:
    return BookingHold(space_id=doc["spaceId"], booking_id=doc["bookingId"], start=require_time(doc, "start"),
                       end=require_time(doc, "ends"),
                       gives_room_back=bool(doc.get("released")) or doc.get("noShowAt") is not None)


def booking_from_doc(doc: dict[str, Any]) -> Booking:
    return Booking(tenant_id=doc["tenantId"], building_id=doc["buildingId"], space_id=doc["spaceId"],
                   booking_id=doc["bookingId"], start=require_time(doc, "start"), end=require_time(doc, "end"),
                   source=BookingSourceKind(doc.get("source") or "api"), source_event_id=doc.get("sourceEventId"),
                   released=bool(doc.get("released")), checked_in_at=parse_time(doc.get("checkedInAt")),
                   no_show_at=parse_time(doc.get("noShowAt")), event_seq=int(doc.get("eventSeq") or 0),
                   release_state=ReleaseState(doc.get("releaseState") or "none"),
                   release_claimed_until=parse_time(doc.get("releaseClaimedUntil")),
                   release_error=doc.get("releaseError"), etag=doc.get("_etag"))


def booking_settings_to_doc(s: BookingSettings) -> dict[str, Any]:
    return {"id": BOOKING_SETTINGS_ID, PARTITION_KEY_FIELD: s.building.key, "tenantId": s.tenant_id,
            "buildingId": s.building_id, KIND_FIELD: BOOKING_SETTINGS_KIND, "releaseNoShows": s.release_no_shows}


def booking_settings_from_doc(doc: dict[str, Any]) -> BookingSettings:
    return BookingSettings(tenant_id=doc["tenantId"], building_id=doc["buildingId"],
                           release_no_shows=bool(doc.get("releaseNoShows")), etag=doc.get("_etag"))


CALENDAR_KIND = "calendar"


def calendar_id(space_id: str) -> str:
    return f"calendar:{space_id}"


def calendar_to_doc(c: CalendarSource) -> dict[str, Any]:
    # clientState signs Graph's notifications to us: kept as it is, like webhook secrets (Cosmos encrypts at rest)
    return {"id": calendar_id(c.space_id), PARTITION_KEY_FIELD: c.building.key, "tenantId": c.tenant_id,
            "buildingId": c.building_id, KIND_FIELD: CALENDAR_KIND, "spaceId": c.space_id,
            "sourceKind": c.kind.value, "url": c.url, "mailbox": c.mailbox, "cursor": c.cursor,
            "windowStart": iso(c.window_start), "windowEnd": iso(c.window_end),
            "subscriptionId": c.subscription_id, "clientState": c.client_state,
            "subscriptionExpiresAt": iso(c.subscription_expires_at), "syncRequested": c.sync_requested,
            "lastSyncAt": iso(c.last_sync_at), "lastError": c.last_error}


def calendar_from_doc(doc: dict[str, Any]) -> CalendarSource:
    return CalendarSource(tenant_id=doc["tenantId"], building_id=doc["buildingId"], space_id=doc["spaceId"],
                          kind=BookingSourceKind(doc["sourceKind"]), url=doc.get("url"), mailbox=doc.get("mailbox"),
                          cursor=doc.get("cursor"), window_start=parse_time(doc.get("windowStart")),
                          window_end=parse_time(doc.get("windowEnd")), subscription_id=doc.get("subscriptionId"),
                          client_state=doc.get("clientState"),
                          subscription_expires_at=parse_time(doc.get("subscriptionExpiresAt")),
                          sync_requested=bool(doc.get("syncRequested")),
                          last_sync_at=parse_time(doc.get("lastSyncAt")), last_error=doc.get("lastError"),
                          etag=doc.get("_etag"))


# Floor summaries (docs/data-model.md): two documents per floor beside the space documents in the building's
# partition of the spaces container, written in the same transactional batch as the spaces they summarise: the
# counts (what free rooms and occupancy read) and the sinces (what the live streams and the writer read too).
FLOOR_SUMMARY_KIND = "floor-summary"
FLOOR_SINCES_KIND = "floor-sinces"
_SINCES = re.compile(r"(?:-?[0-9a-z]{1,14})?(?:,(?:-?[0-9a-z]{1,14})?)*")


def floor_summary_id(floor_id: str) -> str:
    return f"floor:{floor_id}"  # no space id has a ':'


def floor_sinces_id(floor_id: str) -> str:
    return f"floor-sinces:{floor_id}"


def floor_summary_to_doc(s: FloorSummary) -> dict[str, Any]:
    """The counts document: the floor's lock (every batch writes it over its etag)."""
    return {"id": floor_summary_id(s.floor_id), PARTITION_KEY_FIELD: s.building.key, "tenantId": s.tenant_id,
            "buildingId": s.building_id, KIND_FIELD: FLOOR_SUMMARY_KIND, "floor": s.floor_id, "order": s.order,
            "counts": encode_counts(s.counts)}


def floor_sinces_to_doc(s: FloorSummary) -> dict[str, Any]:
    if s.sinces is None:
        raise ValueError(f"summary of floor {s.floor_id} has no sinces to write")
    return {"id": floor_sinces_id(s.floor_id), PARTITION_KEY_FIELD: s.building.key, "tenantId": s.tenant_id,
            "buildingId": s.building_id, KIND_FIELD: FLOOR_SINCES_KIND, "floor": s.floor_id, "order": s.order,
            "base": s.base, "sinces": ",".join(s.sinces)}


def floor_summary_from_docs(counts: dict[str, Any], sinces: dict[str, Any] | None = None) -> FloorSummary:
    """The summary of a counts document and, when read, its sinces document. A counts document that cannot be
    read (from before the counts, or damaged) is a summary that fits no floor, so it is rebuilt over its etag;
    a sinces document that is not the counts' (another order, another length, damaged) is as if not read."""
    tenant_id, building_id, floor_id = counts["tenantId"], counts["buildingId"], counts["floor"]
    order, text = counts.get("order"), counts.get("counts")
    try:
        if not isinstance(order, str) or not isinstance(text, str):
            raise BadSummary("no order and counts")
        values = decode_counts(text)
    except BadSummary:
        return FloorSummary(tenant_id, building_id, floor_id, "", (), etag=counts.get("_etag"))
    base, codes = 0, None
    if sinces is not None and sinces.get("order") == order and isinstance(sinces.get("base"), int):
        text = sinces.get("sinces")
        if isinstance(text, str) and _SINCES.fullmatch(text):
            split = tuple(text.split(","))
            if len(split) == len(values):
                base, codes = sinces["base"], split
    return FloorSummary(tenant_id, building_id, floor_id, order, values, base, codes, counts.get("_etag"))


# Queries have no documented size rule; what the read estimate above charges for the same bytes is taken as their
# cost (index lookups and compilation not counted): `read` is the rule per size, so both models can be compared.
def estimated_query_ru(sizes: Sequence[int], read: Callable[[int], float] = estimated_read_ru) -> float:
    return read(sum(sizes))


def documented_read_ru(size_bytes: int) -> float:
    """A point read as Azure documents it ("Optimize request cost in Azure Cosmos DB",
    learn.microsoft.com/azure/cosmos-db/optimize-cost-reads-writes: a 1 KB item 1 RU, a 100 KB item 10 RU), linear
    between and beyond those two points, at least 1 RU. `estimated_read_ru` (1 RU per KB) agrees up to 1 KB and
    charges 100 RU for the 100 KB item."""
    return max(1.0, 1.0 + 9.0 * (size_bytes / 1024 - 1.0) / 99.0)
