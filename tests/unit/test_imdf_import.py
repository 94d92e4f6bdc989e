"""import_imdf: IMDF features -> site/v1, with the edge cases real venues have."""
from __future__ import annotations

import json

import pytest
import shapely

from shared.domain.imdf import ImdfError, SpaceOverlay, import_imdf
from tests.support.imdf import VenueBuilder, uid


def _two_floor_venue() -> tuple[VenueBuilder, str, str]:
    v = VenueBuilder()
    return v, v.level("Ground", 0), v.level("First", 1)


def test_units_become_spaces_in_metres() -> None:
    v, l0, _ = _two_floor_venue()
    room = v.unit("Room", l0, (10, 10, 20, 15), "conferenceroom")
    site = import_imdf(v.files(), "hq").site
    space = next(s for s in site.spaces if s.id == room)
    assert space.kind.value == "conferenceroom" and space.floor == l0
    xs = sorted({p[0] for p in space.polygon})
    ys = sorted({p[1] for p in space.polygon})
    assert xs == [10.0, 20.0] and ys == [10.0, 15.0]  # to the millimetre
    assert site.origin is not None and site.origin.latitude == pytest.approx(52.52)
    assert [f.ordinal for f in site.floors] == [0, 1]
    assert site.imdf is not None and site.imdf.venue_id == v.venue_id


def test_multipolygon_unit_and_holes() -> None:
    v, l0, _ = _two_floor_venue()
    big = v.polygon((10, 10, 30, 30), holes=[(15, 15, 18, 18)])["coordinates"]
    small = v.polygon((40, 10, 45, 15))["coordinates"]
    ident = v.unit("Split", l0, (0, 0, 1, 1), geometry={"type": "MultiPolygon", "coordinates": [small, big]})
    space = next(s for s in import_imdf(v.files(), "hq").site.spaces if s.id == ident)
    assert max(p[0] for p in space.polygon) == 30.0  # the largest part is the polygon
    assert len(space.holes) == 1 and len(space.parts) == 1
    assert shapely.Polygon(space.parts[0].polygon).area == pytest.approx(25.0, abs=0.01)


def test_no_openings_and_non_english_names() -> None:
    v, l0, _ = _two_floor_venue()
    de = v.unit("de", l0, (10, 10, 20, 20), labels={"de": "Küche"}, category="kitchen")
    ja = v.unit("ja", l0, (30, 10, 40, 20), labels={"ja": "会議室", "fr": "Salle"})
    nameless = v.unit("none", l0, (50, 10, 60, 20), labels=None, category="storage")
    site = import_imdf(v.files(), "hq").site
    by_id = {s.id: s for s in site.spaces}
    assert by_id[de].name == "Küche" and by_id[de].labels == {"de": "Küche"}
    assert by_id[ja].name == "会議室"
    assert by_id[nameless].name.startswith("storage ") and nameless[:8] in by_id[nameless].name
    assert site.doors == []


def test_two_levels_with_one_ordinal_merge_into_one_floor() -> None:
    v = VenueBuilder()
    west = v.level("West", 0, (0, 0, 50, 100))
    east = v.level("East", 0, (50, 0, 100, 100))
    room = v.unit("East room", east, (60, 10, 70, 20))
    result = import_imdf(v.files(), "hq")
    assert [f.id for f in result.site.floors] == [west]
    assert shapely.Polygon(result.site.floors[0].outline).area == pytest.approx(10_000, abs=1)
    assert next(s for s in result.site.spaces if s.id == room).floor == west
    assert any(east in w and "merged" in w for w in result.warnings)


def test_unit_outside_every_level_and_unknown_level_are_skipped() -> None:
    v, l0, _ = _two_floor_venue()
    outside = v.unit("Out", l0, (200, 200, 210, 210))
    lost = v.unit("Lost", uid("nowhere"), (10, 10, 20, 20))
    kept = v.unit("In", l0, (10, 10, 20, 20))
    result = import_imdf(v.files(), "hq")
    assert [s.id for s in result.site.spaces] == [kept]
    assert any(outside in w and "outside" in w for w in result.warnings)
    assert any(lost in w for w in result.warnings)


def test_unknown_category_is_unspecified_with_a_warning() -> None:
    v, l0, _ = _two_floor_venue()
    ident = v.unit("Odd", l0, (10, 10, 20, 20), category="ballpit")
    result = import_imdf(v.files(), "hq")
    assert result.site.spaces[0].kind.value == "unspecified"
    assert any(ident in w and "ballpit" in w for w in result.warnings)


def test_self_intersecting_polygon_is_repaired_or_refused() -> None:
    v, l0, _ = _two_floor_venue()
    # a square with a spike folding back over its own edge: repairs into one polygon
    ring = v.lonlat([(10, 10), (20, 10), (20, 20), (10, 20), (10, 15), (12, 15), (10, 15.0001), (10, 10)])
    fixable = v.unit("Spike", l0, (0, 0, 1, 1), geometry={"type": "Polygon", "coordinates": [ring]})
    result = import_imdf(v.files(), "hq")
    assert any(fixable in w and "repaired" in w for w in result.warnings)
    v2, l0b, _ = _two_floor_venue()
    bowtie = v2.lonlat([(10, 10), (20, 20), (20, 10), (10, 20), (10, 10)])
    bad = v2.unit("Bowtie", l0b, (0, 0, 1, 1), geometry={"type": "Polygon", "coordinates": [bowtie]})
    with pytest.raises(ImdfError) as info:
        import_imdf(v2.files(), "hq")
    assert info.value.file == "unit.geojson" and info.value.feature_id == bad


def test_openings_join_the_units_they_sit_between() -> None:
    v, l0, _ = _two_floor_venue()
    room = v.unit("Room", l0, (10, 10, 20, 18))
    hall = v.unit("Hall", l0, (10, 18, 40, 21), "walkway")
    v.unit("Neighbour", l0, (20, 10, 30, 18))
    door = v.opening("Door", l0, (14, 18), (15, 18), accessibility=[])
    exit_ = v.opening("Exit", l0, (40, 19), (40, 20))
    site = import_imdf(v.files(), "hq").site
    doors = {d.id: d for d in site.doors}
    assert doors[door].spaces == [room, hall] and doors[door].accessible is False
    assert doors[exit_].spaces == [hall] and doors[exit_].accessible is True


def test_amenities_mark_their_spaces() -> None:
    v, l0, _ = _two_floor_venue()
    kitchen = v.unit("Kitchen", l0, (10, 10, 20, 20), "kitchen")
    for n in range(2):
        v.add("amenity", uid(f"amenity/{n}"), {"type": "Point", "coordinates": v.lonlat([(15, 15)])[0]},
              {"category": "drinkingfountain", "unit_ids": [kitchen]})
    site = import_imdf(v.files(), "hq").site
    assert site.spaces[0].amenities == ["drinkingfountain"]
    assert [a.spaces for a in site.amenities] == [[kitchen], [kitchen]]
    assert site.amenities[0].x == 15.0


def test_relationship_and_stacked_units_become_connectors() -> None:
    v, l0, l1 = _two_floor_venue()
    l2 = v.level("Second", 2)
    lifts = [v.unit(f"Lift {i}", lv, (0, 0, 3, 3), "elevator") for i, lv in enumerate((l0, l1, l2))]
    stairs = [v.unit(f"Stairs {i}", lv, (90.5, 90, 99, 99), "stairs") for i, lv in enumerate((l0, l1, l2))]
    v.unit("Offset stairs", l1, (50, 50, 55, 55), "stairs")  # not over anything
    rel = v.relationship("lift", "elevator", [("unit", u) for u in lifts])
    site = import_imdf(v.files(), "hq").site
    kinds = {c.kind.value: c for c in site.connectors}
    assert kinds["elevator"].id == rel and kinds["elevator"].spaces == lifts
    assert kinds["stairs"].spaces == stairs and not kinds["stairs"].step_free
    assert len(site.connectors) == 2


def test_traversal_relationship() -> None:
    v, l0, l1 = _two_floor_venue()
    a = v.unit("Ramp 0", l0, (0, 0, 3, 10), "ramp")
    b = v.unit("Ramp 1", l1, (50, 0, 53, 10), "ramp")
    same = v.unit("Hall", l0, (10, 10, 20, 20), "walkway")
    kept = v.relationship("t1", "traversal", [("unit", a), ("unit", b)])
    flat = v.relationship("t2", "traversal", [("unit", a), ("unit", same)])
    result = import_imdf(v.files(), "hq")
    assert [(c.id, c.kind.value) for c in result.site.connectors] == [(kept, "ramp")]
    assert any(flat in w for w in result.warnings)


@pytest.mark.parametrize(("country", "origin", "zone"), [
    ("US", (47.6062, -122.3321), "America/Los_Angeles"),
    ("DE", (52.52, 13.405), "Europe/Berlin"),
    ("JP", (35.68, 139.77), "Asia/Tokyo"),
])
def test_time_zone_from_the_address(country: str, origin: tuple[float, float], zone: str) -> None:
    v = VenueBuilder(origin=origin, country=country)
    v.level("Ground", 0)
    assert import_imdf(v.files(), "hq").site.time_zone == zone


def test_no_address_is_utc_with_a_warning() -> None:
    v = VenueBuilder(country=None)
    v.level("Ground", 0)
    result = import_imdf(v.files(), "hq")
    assert result.site.time_zone == "UTC" and any("UTC" in w for w in result.warnings)


def test_overlay_given_and_from_the_archive() -> None:
    v, l0, _ = _two_floor_venue()
    room = v.unit("Room", l0, (10, 10, 20, 20), "conferenceroom")
    overlay = {room: SpaceOverlay(capacity=12, bookable=True, amenities=("screen",)), "nope": SpaceOverlay(1)}
    result = import_imdf(v.files(), "hq", overlay)
    space = result.site.spaces[0]
    assert (space.capacity, space.bookable, space.amenities) == (12, True, ["screen"])
    assert any("nope" in w for w in result.warnings)
    files = v.files() | {"overlay.csv": f"spaceId,capacity\n{room},7\n".encode()}
    assert import_imdf(files, "hq").site.spaces[0].capacity == 7


@pytest.mark.parametrize(("mutate", "file", "message"), [
    (lambda f: f["unit"][0].update(geometry={"type": "Point", "coordinates": [13.4, 52.5]}),
     "unit.geojson", "geometry must be Polygon or MultiPolygon, not Point"),
    (lambda f: f["unit"][0].update(feature_type="level"), "unit.geojson", "feature_type must be 'unit'"),
    (lambda f: f["unit"][0]["geometry"]["coordinates"][0][1].__setitem__(0, 500.0), "unit.geojson",
     "not a WGS84"),
    (lambda f: f["unit"][0].update(id="not/ok"), "unit.geojson", "the id must be"),
    (lambda f: f["level"][0]["properties"].update(ordinal="one"), "level.geojson", "ordinal"),
    (lambda f: f["unit"][0]["properties"].update(name="Room"), "unit.geojson", "LABELS"),
])
def test_malformed_features_name_file_and_feature(mutate: object, file: str, message: str) -> None:
    v, l0, _ = _two_floor_venue()
    v.unit("Room", l0, (10, 10, 20, 20))
    mutate(v.features)  # type: ignore[operator]
    with pytest.raises(ImdfError) as info:
        import_imdf(v.files(), "hq")
    assert info.value.file == file and message in str(info.value)
    assert info.value.feature_id is not None and info.value.feature_id in str(info.value)


@pytest.mark.parametrize(("content", "message"), [
    (b"not json", "not valid JSON"),
    (b'{"type": "Feature"}', "FeatureCollection"),
    (b'{"type": "FeatureCollection", "features": [{"type": "Feature", "coordinates": NaN}]}', "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
])
def test_malformed_files(content: bytes, message: str) -> None:
    v, _, _ = _two_floor_venue()
    with pytest.raises(ImdfError) as info:
        import_imdf(v.files() | {"unit.geojson": content}, "hq")
    assert info.value.file == "unit.geojson" and message in str(info.value)


def test_too_many_units(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.domain.imdf import features
    monkeypatch.setitem(features.MAX_FEATURES, "unit", 2)
    v, l0, _ = _two_floor_venue()
    for i in range(3):
        v.unit(f"R{i}", l0, (i * 10, 0, i * 10 + 5, 5))
    with pytest.raises(ImdfError, match="at most 2"):
        import_imdf(v.files(), "hq")


def test_vertices_over_the_limit_are_simplified() -> None:
    v, l0, _ = _two_floor_venue()
    import math
    circle = [(50 + 20 * math.cos(2 * math.pi * i / 3000), 50 + 20 * math.sin(2 * math.pi * i / 3000))
              for i in range(3000)]
    ident = v.unit("Round", l0, (0, 0, 1, 1), geometry={"type": "Polygon",
                                                         "coordinates": [v.lonlat([*circle, circle[0]])]})
    result = import_imdf(v.files(), "hq")
    assert len(result.site.spaces[0].polygon) <= 2000
    assert any(ident in w and "simplified" in w for w in result.warnings)


def test_exactly_one_venue() -> None:
    v, _, _ = _two_floor_venue()
    v.features["venue"].append(json.loads(json.dumps(v.features["venue"][0])) | {"id": uid("venue2")})
    with pytest.raises(ImdfError, match="exactly one venue"):
        import_imdf(v.files(), "hq")
