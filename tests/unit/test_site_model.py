"""The site model: a valid building passes; every kind of bad input is refused naming the field at fault."""
from __future__ import annotations

import pytest

from shared.domain.errors import ContractViolation
from shared.domain.site import SpaceKind, parse_site_model
from tests.support.sites import small_site


def errors_of(data: dict) -> dict[str, str]:
    with pytest.raises(ContractViolation) as error:
        parse_site_model(data)
    return {e.field: e.message for e in error.value.errors}


def test_a_valid_site_parses_with_normalised_ids():
    data = small_site()
    data["beacons"][0]["id"] = data["beacons"][0]["id"].upper().replace("E:", "e:")
    site = parse_site_model(data)
    assert [f.id for f in site.floors] == ["f0", "f1"]
    assert site.spaces[0].kind is SpaceKind.conferenceroom
    assert site.beacons[0].id == "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1"
    assert site.navigation.edges[0].from_node == "d-oak"


def test_beacon_outside_every_floor_is_named():
    data = small_site()
    data["beacons"][1]["x"] = 95
    errors = errors_of(data)
    assert "outside floor 'f0' and every other floor" in errors["beacons[1]"]


def test_self_intersecting_polygon_is_named_with_its_edges():
    data = small_site()
    data["spaces"][0]["polygon"] = [[0, 0], [10, 8], [10, 0], [0, 8]]
    errors = errors_of(data)
    assert "self-intersecting" in errors["spaces[0].polygon"]
    assert "edge 0 crosses edge 2" in errors["spaces[0].polygon"]


def test_unknown_space_kind_names_imdf():
    data = small_site()
    data["spaces"][1]["kind"] = "cafeteria"
    assert "unknown space kind 'cafeteria'" in errors_of(data)["spaces[1].kind"]


def test_disconnected_navigation_graph_lists_the_unreachable_nodes():
    data = small_site()
    data["navigation"]["edges"] = [e for e in data["navigation"]["edges"] if e["to"] != "c1"]
    message = errors_of(data)["navigation"]
    assert "disconnected" in message and "c1" in message


def test_every_cross_reference_problem_is_reported_at_once():
    data = small_site()
    data["spaces"][2]["floor"] = "f9"
    data["beacons"][2]["floor"] = "f7"
    data["navigation"]["nodes"][0]["spaceId"] = "nowhere"
    data["navigation"]["edges"].append({"from": "c0", "to": "ghost"})
    data["floors"][1]["ordinal"] = 0
    errors = errors_of(data)
    assert errors["spaces[2].floor"] == "unknown floor 'f9'"
    assert errors["beacons[2].floor"] == "unknown floor 'f7'"
    assert errors["navigation.nodes[0].spaceId"] == "unknown space 'nowhere'"
    assert errors["navigation.edges[8].to"] == "unknown node 'ghost'"
    assert "ordinal 0 is also used" in errors["floors[1].ordinal"]


def test_duplicate_ids_and_walk_edges_between_floors_are_refused():
    data = small_site()
    data["spaces"].append(dict(data["spaces"][0]))
    data["navigation"]["edges"].append({"from": "c0", "to": "c1"})
    errors = errors_of(data)
    assert errors["spaces[3].id"] == "duplicate id 'r-oak'"
    assert "different floors" in errors["navigation.edges[8].kind"]


def test_stairs_cannot_be_marked_accessible():
    data = small_site()
    data["navigation"]["edges"][4]["accessible"] = True
    assert "stairs cannot be accessible" in errors_of(data)["navigation.edges[4].accessible"]


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.update(timeZone="Mars/Olympus"), "timeZone"),
        (lambda d: d["beacons"][0].update(id="not-a-beacon"), "beacons[0].id"),
        (lambda d: d["beacons"][0].update(measuredPower=12), "beacons[0].measuredPower"),
        (lambda d: d["spaces"][0].update(capacity=-1), "spaces[0].capacity"),
        (lambda d: d["spaces"][0].update(polygon=[[0, 0], [1, 1]]), "spaces[0].polygon"),
        (lambda d: d["floors"][0].update(outline=[[0, 0], [1, 0], [2, 0]]), "floors[0].outline"),
        (lambda d: d.update(floors=[]), "floors"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d.update(businessHours={"start": "18:00", "end": "08:00"}), "businessHours"),
    ],
)
def test_field_level_errors_name_the_field(mutate, field):
    data = small_site()
    mutate(data)
    assert field in errors_of(data)


def _mutations():
    from hypothesis import strategies as st

    from tests.support.strategies import json_values

    paths = [("name",), ("timeZone",), ("floors",), ("floors", 0, "outline"), ("floors", 1, "ordinal"),
             ("spaces", 0, "polygon"), ("spaces", 1, "kind"), ("spaces", 2, "floor"), ("beacons", 0, "x"),
             ("beacons", 1, "id"), ("navigation", "edges"), ("navigation", "nodes", 0, "floor"), ("businessHours",)]
    return st.lists(st.tuples(st.sampled_from(paths), json_values), max_size=4)


def _apply(data: dict, mutations) -> dict:
    for path, value in mutations:
        try:
            target = data
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed the place this one would change
    return data


from hypothesis import given, settings


@settings(max_examples=300, deadline=None)
@given(_mutations())
def test_any_mutated_site_either_validates_or_names_fields(mutations):
    data = _apply(small_site(), mutations)
    try:
        parse_site_model(data)
    except ContractViolation as violation:
        assert violation.errors and all(e.field and e.message for e in violation.errors)
