"""`sightings/v1`: envelope errors refuse the batch naming each field; bad readings are dropped, good ones kept."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.domain.errors import ContractViolation, json_path
from shared.domain.sightings import MAX_SIGHTINGS_PER_BATCH, ParsedBatch, parse_sightings_batch
from tests.support.strategies import json_values

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
BEACON = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1"
EDDYSTONE = "EDD1EBEAC04E5DEFA017:0000000000A1"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def batch(**overrides) -> dict:
    data = {
        "schema": "sightings/v1", "batchId": str(uuid.uuid4()), "deviceId": "install-7f3a9c", "sentAt": iso(NOW),
        "platform": "ios", "model": "iPhone15,2", "sdkVersion": "2.3.1",
        "sightings": [
            {"beacon": BEACON, "rssi": -71, "ts": iso(NOW - timedelta(seconds=5)), "txPower": -59},
            {"beacon": EDDYSTONE, "rssi": -80, "ts": iso(NOW - timedelta(seconds=4))},
        ],
        "beaconTelemetry": [{"beacon": BEACON, "ts": iso(NOW - timedelta(minutes=1)), "batteryMv": 2900,
                             "solarLux": 340, "temperatureC": 22.5}],
    }
    data.update(overrides)
    return data


def envelope_errors(data: object) -> dict[str, str]:
    with pytest.raises(ContractViolation) as error:
        parse_sightings_batch(data, NOW)
    return {e.field: e.message for e in error.value.errors}


def test_a_valid_batch_keeps_every_reading_and_normalises_ids():
    parsed = parse_sightings_batch(batch(userId="alice@example.com"), NOW)
    assert parsed.rejected == []
    assert [s.beacon for s in parsed.batch.sightings] == [BEACON, EDDYSTONE.lower()]
    assert parsed.batch.sightings[0].tx_power == -59
    assert parsed.batch.beacon_telemetry[0].battery_mv == 2900
    assert parsed.batch.user_id == "alice@example.com"


def test_envelope_errors_name_every_field():
    errors = envelope_errors(batch(schema="sightings/v2", batchId="nope", platform="windows", sdkVersion="two",
                                   deviceId="x", sentAt="yesterday"))
    assert set(errors) == {"schema", "batchId", "platform", "sdkVersion", "deviceId", "sentAt"}


def test_missing_fields_and_unknown_fields_are_named():
    data = batch(extra="x")
    del data["deviceId"]
    errors = envelope_errors(data)
    assert errors["deviceId"] == "Field required"
    assert "extra" in errors


@pytest.mark.parametrize("sent_at", [NOW - timedelta(hours=25), NOW + timedelta(minutes=6)])
def test_a_batch_sent_outside_the_time_window_is_refused(sent_at):
    assert "sentAt" in envelope_errors(batch(sentAt=iso(sent_at)))


def test_timestamps_must_carry_an_offset():
    assert "sentAt" in envelope_errors(batch(sentAt="2026-11-26T09:00:00"))


def test_bad_readings_are_dropped_with_reasons_and_the_rest_kept():
    good = {"beacon": BEACON, "rssi": -60, "ts": iso(NOW)}
    readings = [
        good,
        {"beacon": BEACON, "rssi": -121, "ts": iso(NOW)},                               # out of range
        {"beacon": BEACON, "rssi": -70, "ts": iso(NOW - timedelta(hours=24, seconds=1))},  # stale
        {"beacon": BEACON, "rssi": -70, "ts": iso(NOW + timedelta(minutes=5, seconds=1))},  # future
        {"beacon": "kitchen-1", "rssi": -70, "ts": iso(NOW)},                           # bad id
        dict(good),                                                                     # duplicate
        "not an object",
        {"beacon": BEACON, "rssi": -50, "ts": iso(NOW - timedelta(seconds=1)), "txPower": -59},
    ]
    parsed = parse_sightings_batch(batch(sightings=readings), NOW)
    assert [s.rssi for s in parsed.batch.sightings] == [-60, -50]
    reasons = {r.index: r.reason for r in parsed.rejected_sightings}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6]
    assert "rssi" in reasons[1]
    assert "stale" in reasons[2]
    assert "future" in reasons[3]
    assert "beacon" in reasons[4] and "uuid:major:minor" in reasons[4]
    assert "duplicate" in reasons[5]


def test_bad_telemetry_is_dropped_on_its_own():
    telemetry = [{"beacon": BEACON, "ts": iso(NOW), "batteryMv": 99999}, {"beacon": BEACON, "ts": iso(NOW), "solarLux": 5}]
    parsed = parse_sightings_batch(batch(beaconTelemetry=telemetry), NOW)
    assert len(parsed.batch.beacon_telemetry) == 1
    assert parsed.rejected[0].field == "beaconTelemetry" and "batteryMv" in parsed.rejected[0].reason


def test_too_many_sightings_refuse_the_batch():
    readings = [{"beacon": BEACON, "rssi": -60, "ts": iso(NOW - timedelta(milliseconds=i))}
                for i in range(MAX_SIGHTINGS_PER_BATCH + 1)]
    assert "sightings" in envelope_errors(batch(sightings=readings))


def test_ibeacon_major_minor_over_16_bits_is_refused():
    parsed = parse_sightings_batch(batch(sightings=[{"beacon": BEACON.replace(":100:", ":65536:"), "rssi": -60,
                                                     "ts": iso(NOW)}]), NOW)
    assert parsed.batch.sightings == [] and len(parsed.rejected) == 1


@pytest.mark.parametrize("data", [None, [], "batch", 3, True])
def test_a_body_that_is_not_an_object_is_refused(data):
    assert envelope_errors(data) == {"$": "the batch must be a JSON object"}


field_values = {
    "schema": st.sampled_from(["sightings/v1", "sightings/v2"]) | json_values,
    "batchId": st.uuids().map(str) | json_values,
    "deviceId": st.from_regex(r"[A-Za-z0-9]{8,20}", fullmatch=True) | json_values,
    "sentAt": st.datetimes(timezones=st.just(UTC)).map(iso) | st.just(iso(NOW)) | json_values,
    "platform": st.sampled_from(["ios", "android"]) | json_values,
    "model": st.text(max_size=70) | json_values,
    "sdkVersion": st.sampled_from(["2.3.1", "1.0.0-beta.1"]) | json_values,
    "userId": st.text(max_size=3) | json_values,
    "sightings": st.lists(
        st.fixed_dictionaries({"beacon": st.sampled_from([BEACON, EDDYSTONE]) | json_values,
                               "rssi": st.integers(-130, 10) | json_values,
                               "ts": st.just(iso(NOW)) | json_values}) | json_values, max_size=6) | json_values,
}
batch_like = st.fixed_dictionaries({}, optional=field_values) | json_values


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch_like)
def test_any_json_either_validates_or_names_the_offending_fields(data):
    json.dumps(data)  # only JSON-representable inputs (NaN is allowed by Python's json too)
    try:
        parsed = parse_sightings_batch(data, NOW)
    except ContractViolation as violation:
        assert violation.errors
        assert all(e.field and e.message for e in violation.errors)
        if isinstance(data, dict):
            # every error points into a field the input had, or names a required one it lacked
            roots = {json_path((key,)) for key in set(data) | set(field_values) | {"beaconTelemetry"}}
            for error in violation.errors:
                assert any(error.field == r or error.field.startswith((r + ".", r + "[")) for r in roots), error
        return
    assert isinstance(parsed, ParsedBatch)
    raw = data.get("sightings", [])
    assert len(parsed.batch.sightings) + len(parsed.rejected_sightings) == len(raw)
