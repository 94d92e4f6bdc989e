"""IMDF archive files -> a `site/v1` SiteModel (levels -> floors, units -> spaces, openings -> doors, amenities,
fixtures -> obstacles, relationships and stacked elevator/stairs units -> vertical connectors)."""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry import shape
from shapely.geometry.polygon import orient

from shared.domain import geometry as planar
from shared.domain.imdf.errors import ImdfError
from shared.domain.imdf.features import Feature, labels, load_collections, load_json, pick_label, reference
from shared.domain.imdf.overlay import SpaceOverlay, parse_overlay
from shared.domain.imdf.projection import IMPORT_DECIMALS, Projection
from shared.domain.imdf.timezones import zone_for
from shared.domain.site import MAX_POLYGON_VERTICES, SiteModel, SpaceKind, parse_site_model

DOOR_TOLERANCE_M: Final = 0.3
STACK_OVERLAP: Final = 0.3
MAX_PARTS: Final = 64
MAX_HOLES: Final = 64
MAX_DOOR_POINTS: Final = 64
MAX_REFS: Final = 16
MIN_AREA_M2: Final = 1e-4
_GRID: Final = 10.0 ** -IMPORT_DECIMALS
_SPACE_KINDS: Final = frozenset(k.value for k in SpaceKind)
STACKED_KINDS: Final = {"elevator": "elevator", "stairs": "stairs", "escalator": "escalator"}
CONNECTOR_CATEGORIES: Final = frozenset({"elevator", "escalator", "stairs", "ramp"})
TRAVERSAL_KINDS: Final = {"elevator": "elevator", "stairs": "stairs", "steps": "stairs", "escalator": "escalator",
                          "ramp": "ramp", "wheelchairramp": "ramp", "movingwalkway": "escalator"}
# uuid5 namespace of the ids spaceflow makes for IMDF features (stacked-unit connectors, exported features).
ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://spaceflow.dev/imdf")
Ring = list[tuple[float, float]]


@dataclass(frozen=True)
class ImdfImport:
    site: SiteModel
    warnings: tuple[str, ...]


def fallback_space_name(kind: str, space_id: str) -> str:
    """The name of a unit without one: its category and the start of its id."""
    return f"{kind} {space_id[:8]}"


def stack_connector_id(building_id: str, space_ids: Iterable[str]) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{building_id}/stack/{','.join(space_ids)}"))


def import_imdf(
    files: Mapping[str, bytes], building_id: str, overlay: Mapping[str, SpaceOverlay] | None = None
) -> ImdfImport:
    """The site of an IMDF archive's files (see read_archive). Raises ImdfError for what cannot be imported,
    ContractViolation when the result breaks a rule of `site/v1`; everything repaired or left out is a warning.
    Without `overlay`, an `overlay.csv` or `overlay.json` among the files applies."""
    if overlay is None:
        if "overlay.csv" in files:
            overlay = parse_overlay(files["overlay.csv"], "csv")
        elif "overlay.json" in files:
            overlay = parse_overlay(files["overlay.json"], "json")
    return _Importer(files, building_id).run(overlay)


@dataclass
class _Unit:
    feature: Feature
    floor: str
    kind: str
    geom: Any  # shapely Polygon or MultiPolygon in metres
    doc: dict[str, Any]
    index: int


@dataclass
class _Level:
    feature: Feature
    floor_id: str
    ordinal: int
    geom: Any


@dataclass
class _Importer:
    files: Mapping[str, bytes]
    building_id: str
    warnings: list[str] = field(default_factory=list)
    building_count: int = 0

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def run(self, overlay: Mapping[str, SpaceOverlay] | None) -> ImdfImport:
        self._manifest()
        collections = load_collections(self.files)
        venues = collections.get("venue", [])
        if len(venues) != 1:
            raise ImdfError(f"an archive needs exactly one venue, not {len(venues)}", file="venue.geojson")
        venue = venues[0]
        if not collections.get("level"):
            raise ImdfError("the archive has no levels", file="level.geojson")
        origin = self._origin(venue)
        projection = Projection(origin[0], origin[1])
        geoms = self._project(collections, projection)
        building = self._building(collections.get("building", []))
        levels, level_floor = self._levels(collections["level"], building, geoms)
        floors = [self._floor_doc(level) for level in levels]
        outlines = {doc["id"]: doc["outline"] for doc in floors}
        units = self._units(collections.get("unit", []), level_floor, outlines, geoms)
        doors = self._doors(collections.get("opening", []), level_floor, units, geoms)
        amenities = self._amenities(collections.get("amenity", []), units, geoms)
        obstacles = self._obstacles(collections.get("fixture", []), level_floor, geoms)
        ordinals = {level.floor_id: level.ordinal for level in levels}
        connectors = self._relationships(collections.get("relationship", []), units, doors, ordinals)
        connectors += self._stacks(units, connectors, ordinals)
        self._apply_overlay(units, overlay)
        site_labels = (labels(building, "name", self.warnings) if building else {}) or labels(
            venue, "name", self.warnings)
        address_id, address = self._address(venue, building, collections.get("address", []))
        time_zone = self._time_zone(address, origin)
        venue_category = venue.properties.get("category")
        imdf: dict[str, Any] = {"venueId": venue.id, "buildingId": building.id if building else None,
                                "addressId": address_id, "address": address}
        if isinstance(venue_category, str) and venue_category:
            imdf["venueCategory"] = venue_category
        doc = {
            "schema": "site/v1", "buildingId": self.building_id,
            "name": pick_label(site_labels) or fallback_site_name(self.building_id),
            "timeZone": time_zone, "labels": site_labels,
            "origin": {"latitude": origin[0], "longitude": origin[1]}, "imdf": imdf,
            "floors": floors, "spaces": [u.doc for u in units.values()], "doors": [d["doc"] for d in doors],
            "amenities": amenities, "obstacles": obstacles, "connectors": connectors,
        }
        site = parse_site_model(doc)
        return ImdfImport(site=site, warnings=tuple(self.warnings))

    # -- archive level ------------------------------------------------------------------------------------

    def _manifest(self) -> None:
        if "manifest.json" not in self.files:
            raise ImdfError("an IMDF archive must hold manifest.json", file="manifest.json")
        manifest = load_json(self.files["manifest.json"], "manifest.json")
        if not isinstance(manifest, dict):
            raise ImdfError("the manifest must be a JSON object", file="manifest.json")
        version = manifest.get("version")
        if version != "1.0.0":
            self.warn(f"manifest.json: version {str(version)[:20]!r} is not IMDF 1.0.0; imported as 1.0.0")

    def _origin(self, venue: Feature) -> tuple[float, float]:
        point = venue.properties.get("display_point")
        if isinstance(point, dict) and point.get("type") == "Point":
            coords = point.get("coordinates")
            if (isinstance(coords, list) and len(coords) in (2, 3)
                    and all(isinstance(v, int | float) and not isinstance(v, bool) for v in coords)
                    and -180 <= coords[0] <= 180 and -90 <= coords[1] <= 90):
                return float(coords[1]), float(coords[0])
            raise venue.error("display_point must be a Point of [longitude, latitude]")
        if point is not None:
            raise venue.error("display_point must be a GeoJSON Point or null")
        assert venue.geometry is not None
        centroid = shape(venue.geometry).centroid
        return round(float(centroid.y), 9), round(float(centroid.x), 9)

    def _project(self, collections: dict[str, list[Feature]], projection: Projection) -> dict[str, Any]:
        """Every feature geometry in building metres (one projection call for the whole archive)."""
        todo = [f for kind in ("level", "unit", "opening", "amenity", "fixture") for f in collections.get(kind, [])
                if f.geometry is not None]
        lonlat = [shape(f.geometry) for f in todo]
        if not lonlat:
            return {}

        def forward(coords: NDArray[np.float64]) -> NDArray[np.float64]:
            return projection.to_metres(coords)

        metres = shapely.transform(np.array(lonlat, dtype=object), forward)
        return {f.id: g for f, g in zip(todo, metres)}

    def _building(self, buildings: list[Feature]) -> Feature | None:
        if not buildings:
            return None
        self.building_count = len(buildings)
        if len(buildings) > 1:
            others = ", ".join(b.id for b in buildings[1:6])
            self.warn(f"building.geojson: {len(buildings)} buildings; imported the first ({buildings[0].id}) "
                      f"and its levels, left out {others}{' and more' if len(buildings) > 6 else ''}")
        return buildings[0]

    def _address(self, venue: Feature, building: Feature | None,
                 addresses: list[Feature]) -> tuple[str | None, dict[str, str | None] | None]:
        ref = venue.properties.get("address_id") or (building.properties.get("address_id") if building else None)
        if not isinstance(ref, str):
            return None, None
        found = next((a for a in addresses if a.id == ref), None)
        if found is None:
            self.warn(f"venue.geojson: feature {venue.id}: address {ref} is not in address.geojson")
            return None, None
        props = {k: v for k, v in found.properties.items() if isinstance(k, str) and (v is None or isinstance(v, str))}
        kept = dict(sorted(props.items())[:16])
        return found.id, kept

    def _time_zone(self, address: dict[str, str | None] | None, origin: tuple[float, float]) -> str:
        country = (address or {}).get("country")
        if not country:
            self.warn("no address with a country: the time zone is UTC (set timeZone on the site)")
            return "UTC"
        zone = zone_for(country, origin[0], origin[1], (address or {}).get("province"))
        if zone is None:
            self.warn(f"address.geojson: country {country[:8]!r} has no time zone in the tz database: "
                      "the time zone is UTC (set timeZone on the site)")
            return "UTC"
        return zone

    # -- levels -------------------------------------------------------------------------------------------

    def _levels(self, features: list[Feature], building: Feature | None,
                geoms: dict[str, Any]) -> tuple[list[_Level], dict[str, str]]:
        kept: list[_Level] = []
        skipped = 0
        for feature in features:
            ordinal = feature.properties.get("ordinal")
            if isinstance(ordinal, bool) or not isinstance(ordinal, int) or not -50 <= ordinal <= 200:
                raise feature.error("ordinal must be a whole number from -50 to 200")
            building_ids = feature.properties.get("building_ids") or []
            if not isinstance(building_ids, list):
                raise feature.error("building_ids must be a list of building ids")
            outdoor = feature.properties.get("outdoor") is True
            if self.building_count > 1 and building is not None:
                belongs = building.id in building_ids or (not building_ids and not outdoor)
            else:  # one building: every indoor level, and the outdoor levels that name it
                belongs = not outdoor or (building is not None and building.id in building_ids)
            if not belongs:
                skipped += 1
                self.warn(f"level.geojson: feature {feature.id}: left out (it is "
                          f"{'an outdoor level' if outdoor else 'a level of another building'})")
                continue
            kept.append(_Level(feature, feature.id, ordinal, geoms[feature.id]))
        if not kept:
            raise ImdfError("no level belongs to the building", file="level.geojson")
        kept.sort(key=lambda level: level.ordinal)  # stable: the file's order within an ordinal
        merged: list[_Level] = []
        level_floor: dict[str, str] = {}
        for level in kept:
            if merged and merged[-1].ordinal == level.ordinal:
                first = merged[-1]
                self.warn(f"level.geojson: feature {level.feature.id}: ordinal {level.ordinal} is also level "
                          f"{first.feature.id}: merged into one floor '{first.floor_id}' (outlines joined)")
                first.geom = _on_grid(shapely.union(first.geom, level.geom))
                level_floor[level.feature.id] = first.floor_id
                continue
            merged.append(level)
            level_floor[level.feature.id] = level.floor_id
        for level in merged:
            level.geom = self._outline(level)
        return merged, level_floor

    def _outline(self, level: _Level) -> Any:
        geom = level.geom
        if not geom.is_valid:
            geom = _on_grid(shapely.make_valid(geom))
            self.warn(f"level.geojson: feature {level.feature.id}: invalid polygon repaired")
        polygons = _polygons(geom)
        if not polygons:
            raise level.feature.error("the level's polygon has no area")
        if len(polygons) > 1:
            self.warn(f"level.geojson: feature {level.feature.id}: the level is drawn as {len(polygons)} polygons; "
                      "its floor outline is their convex hull")
            outline = _on_grid(shapely.convex_hull(shapely.MultiPolygon(polygons)))
        else:
            outline = shapely.Polygon(polygons[0].exterior)
        return self._vertex_cap(orient(outline, 1.0), level.feature)

    def _floor_doc(self, level: _Level) -> dict[str, Any]:
        names = labels(level.feature, "name", self.warnings)
        short = pick_label(labels(level.feature, "short_name", self.warnings)) or ""
        return {"id": level.floor_id, "name": pick_label(names) or "", "shortName": short[:32], "labels": names,
                "ordinal": level.ordinal, "outline": _ring(level.geom.exterior)}

    # -- units --------------------------------------------------------------------------------------------

    def _units(self, features: list[Feature], level_floor: dict[str, str], outlines: dict[str, Ring],
               geoms: dict[str, Any]) -> dict[str, _Unit]:
        units: dict[str, _Unit] = {}
        outside = 0
        for feature in features:
            floor = self._floor_of(feature, level_floor, "unit.geojson")
            if floor is None:
                continue
            category = feature.properties.get("category")
            kind = category if isinstance(category, str) and category in _SPACE_KINDS else "unspecified"
            if kind != category:
                self.warn(f"unit.geojson: feature {feature.id}: category {str(category)[:40]!r} is not an IMDF "
                          "unit category: imported as unspecified")
            geom = self._clean_polygonal(feature, geoms[feature.id])
            parts = sorted(_polygons(geom), key=lambda p: -p.area)  # stable: ties keep the file's order
            if len(parts) > MAX_PARTS + 1:
                self.warn(f"unit.geojson: feature {feature.id}: {len(parts)} parts; kept the {MAX_PARTS + 1} "
                          "largest")
                parts = parts[:MAX_PARTS + 1]
            main = parts[0]
            polygon = _ring(main.exterior)
            if not planar.point_in_polygon(planar.polygon_centroid(polygon), outlines[floor]):
                outside += 1
                self.warn(f"unit.geojson: feature {feature.id}: left out: it lies outside its level "
                          f"{feature.properties.get('level_id')}")
                continue
            names = labels(feature, "name", self.warnings)
            doc: dict[str, Any] = {
                "id": feature.id, "name": pick_label(names) or fallback_space_name(kind, feature.id), "kind": kind,
                "floor": floor, "polygon": polygon, "holes": self._holes(main, feature),
                "parts": [{"polygon": _ring(p.exterior), "holes": self._holes(p, feature)} for p in parts[1:]],
                "labels": names, "amenities": [],
            }
            units[feature.id] = _Unit(feature, floor, kind, shapely.MultiPolygon(parts) if len(parts) > 1
                                      else main, doc, len(units))
        return units

    def _holes(self, polygon: Any, feature: Feature) -> list[Ring]:
        holes = list(polygon.interiors)
        if len(holes) > MAX_HOLES:
            self.warn(f"{feature.file}: feature {feature.id}: {len(holes)} holes; kept the {MAX_HOLES} largest")
            largest = sorted(range(len(holes)), key=lambda i: -shapely.Polygon(holes[i]).area)[:MAX_HOLES]
            holes = [holes[i] for i in sorted(largest)]
        return [_ring(h) for h in holes]

    def _clean_polygonal(self, feature: Feature, geom: Any) -> Any:
        if not geom.is_valid:
            repaired = _on_grid(shapely.make_valid(geom))
            polygons = _polygons(repaired)
            if len(polygons) != 1 and feature.geometry is not None and feature.geometry["type"] == "Polygon":
                reason = shapely.is_valid_reason(geom)
                raise feature.error(f"the polygon is not valid ({reason}) and does not repair into one polygon")
            if not polygons:
                raise feature.error(f"the polygon is not valid ({shapely.is_valid_reason(geom)})")
            self.warn(f"{feature.file}: feature {feature.id}: invalid polygon ({shapely.is_valid_reason(geom)}) "
                      "repaired")
            geom = polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)
        polygons = _polygons(geom)
        if not polygons:
            raise feature.error("the polygon has no area")
        polygons = [self._vertex_cap(orient(p, 1.0), feature) for p in polygons]
        return polygons[0] if len(polygons) == 1 else shapely.MultiPolygon(polygons)

    def _vertex_cap(self, polygon: Any, feature: Feature) -> Any:
        most = max(len(r.coords) - 1 for r in (polygon.exterior, *polygon.interiors))
        if most <= MAX_POLYGON_VERTICES:
            return polygon
        tolerance = 0.01
        simplified = polygon
        while max(len(r.coords) - 1 for r in (simplified.exterior, *simplified.interiors)) > MAX_POLYGON_VERTICES:
            simplified = _on_grid(shapely.simplify(polygon, tolerance, preserve_topology=True))
            polys = _polygons(simplified)
            simplified = polys[0] if polys else polygon
            tolerance *= 2
        self.warn(f"{feature.file}: feature {feature.id}: {most} vertices simplified to "
                  f"{len(simplified.exterior.coords) - 1} (at most {MAX_POLYGON_VERTICES})")
        return orient(simplified, 1.0)

    # -- openings, amenities, fixtures --------------------------------------------------------------------

    def _doors(self, features: list[Feature], level_floor: dict[str, str], units: dict[str, _Unit],
               geoms: dict[str, Any]) -> list[dict[str, Any]]:
        by_floor: dict[str, list[_Unit]] = {}
        for unit in units.values():
            by_floor.setdefault(unit.floor, []).append(unit)
        trees = {floor: shapely.STRtree([u.geom for u in members]) for floor, members in by_floor.items()}
        doors: list[dict[str, Any]] = []
        for feature in features:
            floor = self._floor_of(feature, level_floor, "opening.geojson")
            if floor is None:
                continue
            line = geoms[feature.id]
            points = _dedupe([(_r(x), _r(y)) for x, y in line.coords])
            if len(points) < 2:
                self.warn(f"opening.geojson: feature {feature.id}: left out: the opening has no length")
                continue
            if len(points) > MAX_DOOR_POINTS:
                line = shapely.simplify(shapely.LineString(points), 0.05)
                points = _dedupe([(_r(x), _r(y)) for x, y in line.coords])[:MAX_DOOR_POINTS]
                self.warn(f"opening.geojson: feature {feature.id}: simplified to {len(points)} points")
            middle = shapely.LineString(points).interpolate(0.5, normalized=True)
            spaces: list[str] = []
            if floor in trees:
                members = by_floor[floor]
                hits = sorted(int(i) for i in trees[floor].query(middle, predicate="dwithin",
                                                                 distance=DOOR_TOLERANCE_M))
                for i in hits:
                    if shapely.distance(middle, members[i].geom.boundary) <= DOOR_TOLERANCE_M + 1e-9:
                        spaces.append(members[i].feature.id)
            names = labels(feature, "name", self.warnings)
            category = feature.properties.get("category")
            doc: dict[str, Any] = {
                "id": feature.id, "floor": floor, "segment": points, "spaces": spaces[:MAX_REFS],
                "category": category if isinstance(category, str) and category else "pedestrian",
                "accessible": _accessible(feature.properties), "name": pick_label(names),
            }
            doors.append({"doc": doc, "feature": feature})
        return doors

    def _amenities(self, features: list[Feature], units: dict[str, _Unit],
                   geoms: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for feature in features:
            refs = feature.properties.get("unit_ids") or []
            if not isinstance(refs, list):
                raise feature.error("unit_ids must be a list of unit ids")
            known = list(dict.fromkeys(r for r in refs if isinstance(r, str) and r in units))
            if len(known) < len(refs):
                self.warn(f"amenity.geojson: feature {feature.id}: {len(refs) - len(known)} of its units are not "
                          "imported units")
            if not known:
                self.warn(f"amenity.geojson: feature {feature.id}: left out: it is in no imported unit")
                continue
            floor = units[known[0]].floor
            known = [k for k in known if units[k].floor == floor][:MAX_REFS]
            category = feature.properties.get("category")
            if not isinstance(category, str) or not category:
                raise feature.error("category is required")
            point = geoms[feature.id]
            for ref in known:
                mine = units[ref].doc["amenities"]
                if category not in mine and len(mine) < 64:
                    mine.append(category)
            out.append({"id": feature.id, "floor": floor, "x": _r(point.x), "y": _r(point.y), "category": category,
                        "name": pick_label(labels(feature, "name", self.warnings)), "spaces": known})
        return out

    def _floor_of(self, feature: Feature, level_floor: dict[str, str], file: str) -> str | None:
        """The floor a feature's `level_id` names; None (with a warning: the feature is left out) otherwise."""
        level_id = feature.properties.get("level_id")
        floor = level_floor.get(level_id) if isinstance(level_id, str) else None
        if floor is None:
            self.warn(f"{file}: feature {feature.id}: left out: level {str(level_id)[:64]!r} "
                      "is not a level of the building")
        return floor

    def _obstacles(self, features: list[Feature], level_floor: dict[str, str],
                   geoms: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for feature in features:
            floor = self._floor_of(feature, level_floor, "fixture.geojson")
            if floor is None:
                continue
            parts = sorted(_polygons(self._clean_polygonal(feature, geoms[feature.id])), key=lambda p: -p.area)
            if len(parts) > 1:
                self.warn(f"fixture.geojson: feature {feature.id}: {len(parts)} parts; kept the largest")
            category = feature.properties.get("category")
            out.append({"id": feature.id, "floor": floor, "polygon": _ring(parts[0].exterior),
                        "holes": self._holes(parts[0], feature),
                        "category": category if isinstance(category, str) and category else "unspecified",
                        "name": pick_label(labels(feature, "name", self.warnings))})
        return out

    # -- vertical connectors ------------------------------------------------------------------------------

    def _relationships(self, features: list[Feature], units: dict[str, _Unit], doors: list[dict[str, Any]],
                       ordinals: dict[str, int]) -> list[dict[str, Any]]:
        door_units = {d["doc"]["id"]: d["doc"]["spaces"] for d in doors}
        out: list[dict[str, Any]] = []
        ignored: dict[str, int] = {}
        for feature in features:
            category = feature.properties.get("category")
            if category not in CONNECTOR_CATEGORIES and category != "traversal":
                ignored[str(category)[:40]] = ignored.get(str(category)[:40], 0) + 1
                continue
            raw = [feature.properties.get("origin"), *(feature.properties.get("intermediary") or []),
                   feature.properties.get("destination")]
            chosen: list[str] = []
            floors: set[str] = set()
            same_floor = False
            for value in raw:
                ref = reference(value)
                if ref is None:
                    continue
                kind, ident = ref
                unit_id: str | None = None
                if kind == "unit" and ident in units:
                    unit_id = ident
                elif kind == "opening" and door_units.get(ident):
                    sides = door_units[ident]
                    vertical = [s for s in sides if units[s].kind in TRAVERSAL_KINDS]
                    unit_id = (vertical or sides)[0]
                if unit_id is None:
                    continue
                if units[unit_id].floor in floors:
                    same_floor = same_floor or unit_id not in chosen
                    continue
                floors.add(units[unit_id].floor)
                chosen.append(unit_id)
            if category == "traversal":
                kinds = [TRAVERSAL_KINDS[units[u].kind] for u in chosen if units[u].kind in TRAVERSAL_KINDS]
                if len(chosen) < 2 or not kinds:
                    self.warn(f"relationship.geojson: feature {feature.id}: traversal ignored: it does not join "
                              "levels through an elevator, stairs, escalator or ramp unit")
                    continue
                connector_kind = kinds[0]
            else:
                connector_kind = str(category)
            if len(chosen) < 2:
                self.warn(f"relationship.geojson: feature {feature.id}: {category} ignored: it does not join "
                          "imported units on different levels")
                continue
            if same_floor:
                self.warn(f"relationship.geojson: feature {feature.id}: several of its units are on one level; "
                          "kept the first on each")
            out.append({"id": feature.id, "kind": connector_kind, "spaces": chosen[:200]})
        for category, count in sorted(ignored.items()):
            self.warn(f"relationship.geojson: {count} relationship(s) of category {category!r} are not vertical "
                      "connectors: ignored")
        return out

    def _stacks(self, units: dict[str, _Unit], connectors: list[dict[str, Any]],
                ordinals: dict[str, int]) -> list[dict[str, Any]]:
        """Elevator, stairs and escalator units over each other on adjacent levels (overlapping by more than 30 %
        of the smaller) that no relationship names: one connector per stack."""
        taken = {s for c in connectors for s in c["spaces"]}
        floor_order = sorted(ordinals, key=lambda f: ordinals[f])
        rank = {floor: i for i, floor in enumerate(floor_order)}
        candidates: dict[str, dict[int, list[_Unit]]] = {}
        for unit in units.values():
            if unit.kind in STACKED_KINDS and unit.feature.id not in taken:
                candidates.setdefault(unit.kind, {}).setdefault(rank[unit.floor], []).append(unit)
        out: list[dict[str, Any]] = []
        for kind in sorted(candidates):
            by_rank = candidates[kind]
            up: dict[str, str] = {}
            down: dict[str, str] = {}
            for r in sorted(by_rank):
                above = by_rank.get(r + 1, [])
                pairs: list[tuple[float, int, int, _Unit, _Unit]] = []
                for lower in by_rank[r]:
                    for upper in above:
                        area = shapely.intersection(lower.geom, upper.geom).area
                        smaller = min(lower.geom.area, upper.geom.area)
                        if smaller > 0 and area > STACK_OVERLAP * smaller:
                            pairs.append((-area / smaller, lower.index, upper.index, lower, upper))
                for _ratio, _li, _ui, lower, upper in sorted(pairs, key=lambda p: p[:3]):
                    if lower.feature.id in up or upper.feature.id in down:
                        continue
                    up[lower.feature.id] = upper.feature.id
                    down[upper.feature.id] = lower.feature.id
            starts = sorted((u for members in by_rank.values() for u in members
                             if u.feature.id in up and u.feature.id not in down), key=lambda u: u.index)
            for start in starts:
                chain = [start.feature.id]
                while chain[-1] in up and len(chain) < 200:
                    chain.append(up[chain[-1]])
                out.append({"id": stack_connector_id(self.building_id, chain), "kind": STACKED_KINDS[kind],
                            "spaces": chain})
        return out

    def _apply_overlay(self, units: dict[str, _Unit], overlay: Mapping[str, SpaceOverlay] | None) -> None:
        if not overlay:
            return
        unknown = [space_id for space_id in overlay if space_id not in units]
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            self.warn(f"overlay: {len(unknown)} space id(s) are not imported spaces: {shown}")
        for space_id, values in overlay.items():
            unit = units.get(space_id)
            if unit is None:
                continue
            if values.capacity is not None:
                unit.doc["capacity"] = values.capacity
            if values.bookable is not None:
                unit.doc["bookable"] = values.bookable
            if values.amenities is not None:
                unit.doc["amenities"] = list(values.amenities)


def fallback_site_name(building_id: str) -> str:
    return f"IMDF venue {building_id}"


def _accessible(properties: dict[str, Any]) -> bool:
    """Step-free unless the opening says otherwise: an `accessibility` list without wheelchair, or a turnstile
    or revolving door."""
    accessibility = properties.get("accessibility")
    if isinstance(accessibility, list):
        return "wheelchair" in accessibility
    door = properties.get("door")
    if isinstance(door, dict) and isinstance(door.get("type"), str):
        return not (door["type"].startswith("turnstile") or door["type"] == "revolving")
    return True


def _polygons(geom: Any) -> list[Any]:
    """The polygons of a geometry with an area (a GeometryCollection's lines and points left out)."""
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        return [geom] if geom.area > MIN_AREA_M2 else []
    if geom.geom_type in ("MultiPolygon", "GeometryCollection"):
        return [p for g in geom.geoms for p in _polygons(g)]
    return []


def _on_grid(geom: Any) -> Any:
    return shapely.set_precision(geom, _GRID)


def _r(value: float) -> float:
    return round(float(value), IMPORT_DECIMALS) + 0.0


def _dedupe(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for p in points:
        if not out or out[-1] != p:
            out.append(p)
    return out


def _ring(ring: Any) -> Ring:
    points = _dedupe([(_r(x), _r(y)) for x, y, *_ in ring.coords])
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()
    return points
