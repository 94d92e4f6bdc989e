"""The tracker's per-device state as plain data: the stored `tracking/v1` form, old documents included."""
from __future__ import annotations

import copy
import json

import pytest

from shared.domain.positioning import SiteIndex
from shared.domain.positioning.tracking import Sighting, TrackingState, track
from shared.domain.site import parse_site_model
from tests.support.pipeline import KITCHEN_BEACON, OAK_BEACON
from tests.support.sites import small_site

# Written by the pydantic TrackingState (before issue #15): `model_dump(mode="json", by_alias=True)` of a phone in
# r-oak of the small site, as stored in a device document.
STORED_V1 = json.loads("""{"schema": "tracking/v1", "ts": 1795000011.0, "beacons": {
  "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1": [-58.73, 10.21, 1795000010.0, -59.0],
  "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:2": [-88.0, 10.21, 1795000010.5, -59.0]},
  "x": 5.91, "y": 4.01, "floor": "f0", "uncertainty_m": 2.92, "floor_candidate": null,
  "floor_candidate_since": null, "space": "r-oak", "space_confidence": 1.0, "space_candidate": null,
  "space_candidate_since": null, "space_evidence": 0.0, "offset": [0.0, 27.0], "rooms": {"r-oak": 1.0}}""")


@pytest.fixture(scope="module")
def small_index() -> SiteIndex:
    return SiteIndex.from_site_model(parse_site_model(small_site("hq")))


def test_an_old_stored_state_loads_and_is_written_back_unchanged():
    state = TrackingState.from_json(STORED_V1)
    assert state.beacons[OAK_BEACON] == (-58.73, 10.21, 1795000010.0, -59.0)
    assert (state.space, state.floor, state.offset, state.rooms) == ("r-oak", "f0", (0.0, 27.0), {"r-oak": 1.0})
    assert state.to_json() == STORED_V1
    assert json.loads(json.dumps(state.to_json())) == STORED_V1  # JSON-serialisable as it is


def test_tracking_goes_on_from_an_old_stored_state(small_index):
    state = TrackingState.from_json(STORED_V1)
    new, estimate = track(state, [Sighting(OAK_BEACON, -59, 1795000012.0), Sighting(KITCHEN_BEACON, -87, 1795000012.5)],
                          small_index, 1795000013.0)
    assert estimate is not None and estimate.space_id == "r-oak" and new.ts == 1795000013.0
    assert TrackingState.from_json(STORED_V1) == state  # the tracker works on a copy


def test_a_state_missing_optional_fields_loads_with_their_defaults():
    state = TrackingState.from_json({"schema": "tracking/v1", "ts": 5, "beacons": {}})
    assert state == TrackingState(ts=5.0)
    assert TrackingState.from_json({}) == TrackingState()


@pytest.mark.parametrize("change", [
    {"schema": "tracking/v2"},
    {"unexpected": 1},
    {"beacons": {"b": [1.0, 2.0]}},
    {"beacons": ["b"]},
    {"ts": "soon"},
    {"ts": [1]},
    {"floor": 3},
    {"offset": [1.0]},
    {"rooms": {"r-oak": "high"}},
])
def test_a_state_that_is_not_tracking_v1_is_refused(change):
    data = {**copy.deepcopy(STORED_V1), **change}
    with pytest.raises(ValueError):
        TrackingState.from_json(data)
