"""export_imdf: the inverse of import_imdf; the demo-office fixture stays what the exporter writes."""
from __future__ import annotations

import json
import pathlib
import uuid

import pytest

from devkit.imdf_venue import generate_venue
from devkit.simulator import BuildingSpec, generate_building
from shared.domain.imdf import export_imdf, import_imdf, read_archive, zip_archive

FIXTURE = pathlib.Path(__file__).parent.parent / "fixtures" / "imdf" / "demo-office"


def _demo() -> object:
    return generate_building(BuildingSpec(floors=2), seed=1)


def test_fixture_is_the_export_of_the_demo_building() -> None:
    """If this fails after a deliberate exporter change, rewrite the folder from export_imdf of the demo."""
    exported = export_imdf(generate_building(BuildingSpec(floors=2), seed=1))
    on_disk = {p.name: p.read_bytes() for p in FIXTURE.iterdir()}
    assert exported == on_disk


def test_export_files_are_imdf_feature_collections() -> None:
    files = export_imdf(generate_building(BuildingSpec(floors=2), seed=1))
    assert set(files) == {"manifest.json"} | {f"{k}.geojson" for k in (
        "venue", "address", "building", "footprint", "level", "unit", "opening", "amenity", "fixture",
        "relationship")}
    for name, data in files.items():
        doc = json.loads(data)
        if name == "manifest.json":
            assert doc["version"] == "1.0.0"
            continue
        assert doc["type"] == "FeatureCollection"
        for feature in doc["features"]:
            assert str(uuid.UUID(feature["id"])) == feature["id"]
            assert feature["feature_type"] == name.removesuffix(".geojson")


def test_demo_fixture_imports_like_the_demo() -> None:
    demo = generate_building(BuildingSpec(floors=2), seed=1)
    files = {p.name: p.read_bytes() for p in FIXTURE.iterdir()}
    result = import_imdf(files, demo.building_id)
    site = result.site
    assert len(site.spaces) == len(demo.spaces) and len(site.floors) == 2
    assert sorted(s.name for s in site.spaces) == sorted(s.name for s in demo.spaces)
    assert site.time_zone == demo.time_zone  # through the address written from the time zone
    for original, imported in zip(demo.spaces, site.spaces):
        assert imported.name == original.name and imported.kind == original.kind
        for (ax, ay), (bx, by) in zip(original.polygon, imported.polygon):
            assert abs(ax - bx) < 0.001 and abs(ay - by) < 0.001
    # the lift and stair cores stacked over each other are found as connectors
    assert sorted(c.kind.value for c in site.connectors) == ["elevator", "stairs"]


def test_round_trip_of_the_fixture_is_exact() -> None:
    files = read_archive(zip_archive({p.name: p.read_bytes() for p in FIXTURE.iterdir()}))
    first = import_imdf(files, "hq").site
    again = export_imdf(first)
    second = import_imdf(again, "hq").site
    assert second == first
    assert export_imdf(second) == again


@pytest.mark.parametrize("openings", [True, False])
def test_round_trip_of_a_generated_venue(openings: bool) -> None:
    files = generate_venue(units=300, levels=3, seed=5, openings=openings)
    first = import_imdf(files, "venue")
    assert len(first.site.spaces) == 300 and len(first.site.floors) == 3
    assert (len(first.site.doors) > 0) == openings
    second = import_imdf(export_imdf(first.site), "venue")
    assert second.site == first.site
    # imported ids are kept as they are
    unit_ids = {f["id"] for f in json.loads(files["unit.geojson"])["features"]}
    assert {s.id for s in second.site.spaces} == unit_ids


def test_generated_venue_is_a_realistic_office() -> None:
    site = import_imdf(generate_venue(units=400, levels=2, seed=3), "venue").site
    kinds = [s.kind.value for s in site.spaces]
    assert kinds.count("elevator") == 2 and kinds.count("stairs") == 4
    assert "kitchen" in kinds and "restroom.female" in kinds and "walkway" in kinds
    assert sorted(c.kind.value for c in site.connectors) == ["elevator", "stairs", "stairs"]
    rooms = {s.id for s in site.spaces if s.kind.value not in ("walkway", "elevator", "stairs")}
    opened = {sid for d in site.doors for sid in d.spaces}
    assert rooms <= opened
    assert all(len(d.spaces) == 2 for d in site.doors)
    assert site.time_zone == "America/Los_Angeles"


def test_export_keeps_doors_without_a_unit_side_and_amenities() -> None:
    files = generate_venue(units=60, levels=2, seed=2)
    site = import_imdf(files, "venue").site
    lonely = site.doors[0].model_copy(update={"segment": [(-30.0, -30.0), (-29.0, -30.0)], "spaces": []})
    patched = site.model_copy(update={"doors": [*site.doors[1:], lonely]})
    back = import_imdf(export_imdf(patched), "venue").site
    assert back.doors[-1].id == lonely.id and back.doors[-1].spaces == [] and back.doors[-1].segment == lonely.segment
    assert back.amenities == site.amenities and back.obstacles == site.obstacles
