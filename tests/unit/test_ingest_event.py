"""Decoding the ingest route's events in the processor: one pass for the events ingest stamped as validated, the
full reading-by-reading check for the others; a malformed event is a ContractViolation naming the field, never
anything else."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.errors import ContractViolation
from shared.domain.ingest_event import VALIDATED_AS, canonical_beacon_id, decode_ingest_event
from tests.support.batches import BEACON_A, ingest_event_body, sdk_batch

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
BEACON_B = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:2"
EDDYSTONE = "EDD1EBEAC04E5DEFA017:0BDB87539B67"


def stamped(**batch_args) -> dict:
    return json.loads(ingest_event_body(NOW, readings=[(BEACON_A, -60), (BEACON_B, -71)], **batch_args))


def body(data: dict) -> bytes:
    return json.dumps(data).encode()


def unstamped(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "validated"}


def test_the_ingest_route_stamps_its_events_and_they_take_the_trusted_path():
    data = stamped(userId="ann@acme.example")
    assert data["validated"] == VALIDATED_AS
    event = decode_ingest_event(body(data))
    assert event.trusted and event.tenant_id == "tenant-a" and event.received_at == NOW
    assert event.batch.batch_id == data["batch"]["batchId"] and event.batch.user_id == "ann@acme.example"
    assert event.sightings.beacon == [BEACON_A, BEACON_B] and event.sightings.rssi == [-60, -71]
    assert event.sightings.ts == [(NOW - timedelta(seconds=2)).timestamp(), (NOW - timedelta(seconds=1)).timestamp()]
    assert event.sightings.tx_power == [None, None]


def test_both_paths_decode_a_good_event_the_same():
    data = stamped(userId="ann@acme.example",
                   beaconTelemetry=[{"beacon": BEACON_A, "ts": (NOW - timedelta(seconds=5)).isoformat(),
                                     "batteryMv": 2900, "solarLux": 120.5}])
    data["batch"]["sightings"][0]["txPower"] = -59
    trusted, full = decode_ingest_event(body(data)), decode_ingest_event(body(unstamped(data)))
    assert trusted.trusted and not full.trusted
    assert (trusted.tenant_id, trusted.received_at, trusted.batch, trusted.sightings) == \
        (full.tenant_id, full.received_at, full.batch, full.sightings)
    assert [t.model_dump() for t in trusted.telemetry] == [t.model_dump() for t in full.telemetry]
    # the models of the batch stay available to callers that want them (tools, tests)
    assert trusted.parsed.batch.model_dump() == full.parsed.batch.model_dump()


@pytest.mark.parametrize("stamp", [None, "sightings/v0", "anything"])
def test_an_event_without_our_stamp_is_judged_reading_by_reading(stamp):
    data = unstamped(stamped())
    if stamp is not None:
        data["validated"] = stamp
    data["batch"]["sightings"].append({"beacon": BEACON_A, "rssi": 7, "ts": NOW.isoformat()})  # rssi out of range
    event = decode_ingest_event(body(data))
    assert not event.trusted and event.sightings.rssi == [-60, -71]
    assert [(r.field, r.index) for r in event.parsed.rejected] == [("sightings", 2)]


@pytest.mark.parametrize(("reading", "reason"), [
    ({"rssi": 7}, "rssi"),
    ({"rssi": "loud"}, "rssi"),
    ({"rssi": -60.5}, "rssi"),
    ({"ts": (NOW - timedelta(days=2)).isoformat()}, "stale"),
    ({"ts": (NOW + timedelta(minutes=10)).isoformat()}, "future"),
    ({"ts": "2026-11-26T08:59:00"}, "ts"),
    ({"beacon": "not-a-beacon"}, "beacon"),
    ({"txPower": 99}, "txPower"),
    ({"extra": True}, "extra"),
])
def test_a_stamped_event_with_a_bad_reading_falls_back_to_the_full_check(reading, reason):
    """The stamp is trusted only as far as the one-pass check confirms it: anything else is judged as before, so
    the bad reading is dropped with its reason and the good ones kept."""
    data = stamped()
    data["batch"]["sightings"][1].update(reading)
    event = decode_ingest_event(body(data))
    assert not event.trusted
    assert event.sightings.beacon == [BEACON_A]
    [rejected] = event.parsed.rejected
    assert rejected.index == 1 and reason in rejected.reason


@pytest.mark.parametrize(("change", "field"), [
    ({"deviceId": 5}, "batch.deviceId"),
    ({"deviceId": "x"}, "batch.deviceId"),
    ({"batchId": "not-a-uuid"}, "batch.batchId"),
    ({"sentAt": (NOW - timedelta(days=2)).isoformat()}, "batch.sentAt"),
    ({"platform": "symbian"}, "batch.platform"),
    ({"sightings": {"beacon": BEACON_A}}, "batch.sightings"),
    ({"sightings": [{"beacon": BEACON_A, "rssi": -60, "ts": NOW.isoformat()}] * 2001}, "batch.sightings"),
])
def test_a_stamped_event_with_a_bad_envelope_is_refused_naming_the_field(change, field):
    data = stamped()
    data["batch"].update(change)
    with pytest.raises(ContractViolation) as refused:
        decode_ingest_event(body(data))
    assert field in {e.field for e in refused.value.errors}


@pytest.mark.parametrize(("raw", "field"), [
    (b"\xff\xfe not json", "$"),
    (b"{", "$"),
    (b"[" * 100_000 + b"]" * 100_000, "$"),  # deeper than the JSON decoders recurse
    (b'{"schema":"ingest/v1","tenantId":"tenant-a","receivedAt":"2026-11-26T09:00:00+00:00","validated":'
     b'"sightings/v1","batch":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}", "$"),
    (b'{"schema":"ingest/v9"}', "schema"),
    (b'"ingest/v1"', "schema"),
    ((b'{"schema":"ingest/v1","tenantId":"../other","receivedAt":"2026-11-26T09:00:00+00:00",'
     b'"validated":"sightings/v1","batch":{}}'), "tenantId"),
    ((b'{"schema":"ingest/v1","tenantId":"tenant-a","receivedAt":"2026-11-26T09:00:00","validated":"sightings/v1",'
     b'"batch":{}}'), "receivedAt"),
])
def test_malformed_events_are_refused_naming_the_field(raw, field):
    with pytest.raises(ContractViolation) as refused:
        decode_ingest_event(raw)
    assert field in {e.field for e in refused.value.errors}


def test_beacon_ids_are_normalised_once_and_shared():
    data = stamped()
    data["batch"]["sightings"][0]["beacon"] = EDDYSTONE
    first, again = decode_ingest_event(body(data)), decode_ingest_event(body(data))
    assert first.trusted and first.sightings.beacon[0] == EDDYSTONE.lower()
    assert first.sightings.beacon[0] is again.sightings.beacon[0] is canonical_beacon_id(EDDYSTONE.lower())
    with pytest.raises(ValueError):
        canonical_beacon_id("f7826da6-4fa2-4e98-8024-bc5b71e0893e:70000:1")


def test_an_sdk_batch_is_not_an_ingest_event():
    with pytest.raises(ContractViolation) as refused:
        decode_ingest_event(body(sdk_batch(NOW)))
    assert [e.field for e in refused.value.errors] == ["schema"]
