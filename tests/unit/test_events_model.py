"""The event model: which transition makes which CloudEvent, with ids that never change and no personal data."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event

from shared.domain.events import (
    BATTERY_LOW_MV,
    BATTERY_RECOVERED_MV,
    BeaconAlerts,
    BeaconFacts,
    EventType,
    SpaceFacts,
    building_of_source,
    due_headcount_event,
    events_json_schema,
    parse_event,
    silence_event,
    space_events,
)
from shared.domain.events import battery_event as battery_transition
from shared.domain.presence import BeaconHealth, OccupancyChange, SpaceState, apply_occupancy
from shared.domain.tenancy import BuildingRef

HQ = BuildingRef("tenant-a", "hq")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OAK = SpaceFacts(name="Oak", kind="conferenceroom", floor="f0", capacity=6, amenities=("display",), bookable=True)


def enter(space: SpaceState, device: str, at: datetime) -> SpaceState:
    return apply_occupancy(space, OccupancyChange(HQ, space.space_id, device, "enter", at)) or space


def leave(space: SpaceState, device: str, at: datetime) -> SpaceState:
    return apply_occupancy(space, OccupancyChange(HQ, space.space_id, device, "leave", at)) or space


def step(space: SpaceState, after: SpaceState) -> tuple[SpaceState, list]:
    return space_events(space, after, OAK)


def test_a_room_becoming_occupied_and_free_makes_one_event_each_with_the_space_api_fields():
    empty = SpaceState.empty(HQ, "r-oak")
    occupied, events = step(empty, enter(empty, "phone-secret-1", T0))
    assert [e.type for e in events] == [EventType.space_occupied]
    event = events[0]
    assert (event.source, event.subject, event.time, event.sequence) == (
        "/tenants/tenant-a/buildings/hq", "spaces/r-oak", T0, "000000000001")
    assert event.data.model_dump(mode="json") == {
        "id": "r-oak", "name": "Oak", "kind": "conferenceroom", "floor": "f0", "capacity": 6,
        "amenities": ["display"], "bookable": True, "status": "occupied", "headcount": 1,
        "since": "2026-03-02T09:00:00Z"}
    free, events = step(occupied, leave(occupied, "phone-secret-1", T0 + timedelta(minutes=30)))
    assert [(e.type, e.time, e.sequence_number) for e in events] == [
        (EventType.space_vacated, T0 + timedelta(minutes=30), 2)]
    assert events[0].data.headcount == 0 and free.event_seq == 2


def test_no_event_carries_a_device_or_user_id():
    empty = SpaceState.empty(HQ, "r-oak")
    _, events = step(empty, enter(empty, "phone-secret-1", T0))
    assert "phone-secret-1" not in json.dumps(events[0].to_json())


def test_headcount_events_are_at_most_one_a_minute_and_the_held_back_one_follows():
    space = SpaceState.empty(HQ, "r-oak")
    space, _ = step(space, enter(space, "a", T0))
    # a second person 10 s later: the first headcount event of this space goes at once
    space, events = step(space, enter(space, "b", T0 + timedelta(seconds=10)))
    assert [(e.type, e.data.headcount) for e in events] == [(EventType.space_headcount, 2)]
    # a third 20 s later: held back until a minute after the last one
    space, events = step(space, enter(space, "c", T0 + timedelta(seconds=30)))
    assert events == [] and space.headcount_due_at == T0 + timedelta(seconds=70)
    assert due_headcount_event(space, OAK, T0 + timedelta(seconds=69)) is None
    flushed = due_headcount_event(space, OAK, T0 + timedelta(seconds=71))
    assert flushed is not None
    space, event = flushed
    assert event is not None and (event.type, event.data.headcount, event.time) == (
        EventType.space_headcount, 3, T0 + timedelta(seconds=30))
    assert space.headcount_due_at is None and space.headcount_reported == 3
    assert due_headcount_event(space, OAK, T0 + timedelta(hours=1)) is None


def test_a_held_back_headcount_that_returned_to_the_reported_one_says_nothing():
    space = SpaceState.empty(HQ, "r-oak")
    space, _ = step(space, enter(space, "a", T0))
    space, _ = step(space, enter(space, "b", T0 + timedelta(seconds=5)))
    space, events = step(space, enter(space, "c", T0 + timedelta(seconds=10)))
    assert events == [] and space.headcount_due_at is not None
    space, events = step(space, leave(space, "c", T0 + timedelta(seconds=20)))
    assert events == [] and space.headcount_due_at is None


def test_event_ids_are_the_same_for_the_same_transition_and_differ_between_transitions():
    empty = SpaceState.empty(HQ, "r-oak")
    _, first = step(empty, enter(empty, "a", T0))
    _, again = step(empty, enter(empty, "a", T0))
    _, other_room = space_events(SpaceState.empty(HQ, "r-elm"), enter(SpaceState.empty(HQ, "r-elm"), "a", T0), OAK)
    other_tenant_space = SpaceState.empty(BuildingRef("tenant-b", "hq"), "r-oak")
    _, other_tenant = space_events(other_tenant_space, replace(enter(empty, "a", T0), tenant_id="tenant-b"), OAK)
    assert first[0].id == again[0].id
    assert len({first[0].id, other_room[0].id, other_tenant[0].id}) == 3


def test_the_events_are_valid_cloudevents_for_the_cloudevents_sdk():
    empty = SpaceState.empty(HQ, "r-oak")
    _, events = step(empty, enter(empty, "a", T0))
    body = json.dumps(events[0].to_json()).encode()
    parsed = from_structured_event(HTTPMessage(headers={"content-type": "application/cloudevents+json"}, body=body))
    assert (parsed.get_type(), parsed.get_id(), parsed.get_source(), parsed.get_subject()) == (
        "dev.spaceflow.space.occupied", events[0].id, "/tenants/tenant-a/buildings/hq", "spaces/r-oak")
    assert parse_event(events[0].to_json()) == events[0]
    assert building_of_source(events[0].source) == HQ
    with pytest.raises(ValueError):
        building_of_source("/tenants/a/rooms/b")


BEACON = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1"
WALL = BeaconFacts(floor="f0", x=1.5, y=2.0)


def health(battery: int | None, heard: datetime = T0) -> BeaconHealth:
    return BeaconHealth("tenant-a", "hq", BEACON, heard, battery_mv=battery, telemetry_at=heard)


def test_battery_low_is_raised_once_and_again_only_after_recovering():
    alerts = BeaconAlerts.none(HQ, BEACON)
    assert battery_transition(alerts, health(BATTERY_LOW_MV + 100), WALL) is None
    raised = battery_transition(alerts, health(BATTERY_LOW_MV - 1), WALL)
    assert raised is not None and raised[1] is not None
    alerts, event = raised
    assert (event.type, event.subject, event.data.battery_mv, event.data.floor) == (
        EventType.beacon_battery_low, f"beacons/{BEACON}", BATTERY_LOW_MV - 1, "f0")
    assert battery_transition(alerts, health(BATTERY_LOW_MV - 50), WALL) is None
    assert battery_transition(alerts, health(BATTERY_RECOVERED_MV - 1), WALL) is None  # hysteresis
    recovered = battery_transition(alerts, health(BATTERY_RECOVERED_MV), WALL)
    assert recovered is not None and recovered[1] is None
    again = battery_transition(recovered[0], health(BATTERY_LOW_MV - 1, T0 + timedelta(days=1)), WALL)
    assert again is not None and again[1] is not None and again[1].sequence_number == 2


def test_a_beacon_goes_silent_once_per_silence():
    alerts = BeaconAlerts.none(HQ, BEACON)
    assert silence_event(alerts, health(3000), WALL, T0 + timedelta(hours=23)) is None
    raised = silence_event(alerts, health(3000), WALL, T0 + timedelta(hours=25))
    assert raised is not None
    alerts, event = raised
    assert (event.type, event.time, event.data.silent) == (EventType.beacon_silent, T0 + timedelta(hours=24), True)
    assert silence_event(alerts, health(3000), WALL, T0 + timedelta(hours=30)) is None
    heard_again = health(3000, T0 + timedelta(days=2))
    again = silence_event(alerts, heard_again, WALL, T0 + timedelta(days=3, hours=1))
    assert again is not None and again[1].id != event.id


def test_the_published_schema_covers_both_kinds_of_event():
    schema = events_json_schema()
    text = json.dumps(schema)
    for event_type in EventType:
        assert event_type.value in text
    assert {"SpaceEventData", "BeaconEventData"} <= set(schema["$defs"])
