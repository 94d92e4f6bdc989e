"""Buildings brought in from outside and drawn for maps: IMDF import and export, GeoJSON per floor, beacons placed
after the map, and a beacon plan with the room accuracy it predicts.

Every write goes through `AdminService.save_site`, so an imported building gets the same checks, the same
generated navigation graph and the same ETag rules as a `PUT` of a site model.
"""
from __future__ import annotations

import asyncio
import csv
import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.domain import imdf, space_kinds
from shared.domain.errors import ContractViolation, FieldError, NotFound
from shared.domain.imdf.projection import Projection
from shared.domain.positioning import BeaconPlan, plan_beacons
from shared.domain.site import SiteModel, Space, parse_site_model
from shared.domain.tenancy import BuildingRef
from shared.services.admin import AdminService, SavedSite

logger = logging.getLogger(__name__)

BEACON_CSV_FIELDS = ("id", "x", "y", "floor", "measuredPower")
MAX_PLAN_BEACONS_PER_ROOM = 8


@dataclass(frozen=True)
class ImportedBuilding:
    saved: SavedSite
    warnings: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        site = self.saved.site
        return {"buildingId": site.building_id, "floors": len(site.floors), "spaces": len(site.spaces),
                "doors": len(site.doors), "beacons": len(site.beacons),
                "navigation": {"nodes": len(site.navigation.nodes), "edges": len(site.navigation.edges),
                               "generated": site.navigation.generated},
                "unreachableSpaces": list(self.saved.unreachable_spaces), "warnings": list(self.warnings)}


@dataclass(frozen=True)
class PlanRequest:
    min_beacons_per_room: int = 3
    min_rssi_dbm: float = -85.0
    measured_power_dbm: int = -59
    max_beacons: int | None = None


class FloorPlanService:
    def __init__(self, admin: AdminService) -> None:
        self._admin = admin

    async def import_imdf(self, building: BuildingRef, archive: bytes, if_match: str | None,
                          if_none_match: str | None = None) -> ImportedBuilding:
        """Create or replace the building from an IMDF archive (zip bytes). Beacons already placed in the
        building are kept where their floor is still there."""
        await self._admin.tenant(building.tenant_id)
        files = await asyncio.to_thread(imdf.read_archive, archive)
        imported = await asyncio.to_thread(imdf.import_imdf, files, building.building_id)
        site, kept = await self._keep_beacons(building, imported.site)
        saved = await self._admin.save_site(building, site, if_match, if_none_match)
        logger.info("building %s of tenant %s imported from IMDF: %d floors, %d spaces, %d warnings",
                    building.building_id, building.tenant_id, len(site.floors), len(site.spaces),
                    len(imported.warnings))
        return ImportedBuilding(saved, imported.warnings + kept)

    async def export_imdf(self, building: BuildingRef) -> tuple[bytes, str]:
        """The building as an IMDF archive (zip bytes) and the version it was made from."""
        found = await self._admin.get_site(building)
        files = await asyncio.to_thread(imdf.export_imdf, found.site)
        return await asyncio.to_thread(imdf.zip_archive, files), found.etag

    async def geojson(self, building: BuildingRef, floor: str | None,
                      wgs84: bool = False) -> tuple[dict[str, Any], str]:
        """One floor (or every floor) as a GeoJSON FeatureCollection, and the version: in building metres, or in
        WGS84 longitude/latitude (RFC 7946) for a building placed on Earth (an `origin`)."""
        found = await self._admin.get_site(building)
        site = found.site
        if floor is not None and floor not in site.floor_by_id():
            raise ContractViolation([FieldError("query.floor", f"building '{site.building_id}' has no floor '{floor}'")],
                                    title="Unknown floor")
        if wgs84 and site.origin is None:
            raise ContractViolation([FieldError("query.coordinates", f"building '{site.building_id}' has no geographic "
                                                               "origin (import it from IMDF, or set `origin`)")],
                                    title="Not placed on Earth")
        collection = floor_geojson(site, floor)
        if wgs84 and site.origin is not None:
            collection = await asyncio.to_thread(_to_wgs84, collection, site.origin.latitude, site.origin.longitude)
        return collection, found.etag

    async def put_beacons(self, building: BuildingRef, beacons: object, if_match: str | None) -> SavedSite:
        """Place or replace every beacon of an existing building (the JSON list, or CSV rows already split)."""
        found = await self._admin.get_site(building)
        data = found.site.model_dump(mode="json", by_alias=True)
        data["beacons"] = beacons
        site = parse_site_model(data)
        return await self._admin.save_site(building, site, if_match if if_match is not None else found.etag)

    async def beacon_plan(self, building: BuildingRef, request: PlanRequest) -> BeaconPlan:
        found = await self._admin.get_site(building)
        if not any(_occupiable(s) for s in found.site.spaces):
            raise ContractViolation([FieldError("spaces", "the building has no rooms to plan beacons for")],
                                    title="Nothing to plan")
        return await asyncio.to_thread(
            plan_beacons, found.site, min_beacons_per_room=request.min_beacons_per_room,
            min_rssi_dbm=request.min_rssi_dbm, measured_power_dbm=request.measured_power_dbm,
            max_beacons=request.max_beacons)

    async def _keep_beacons(self, building: BuildingRef, site: SiteModel) -> tuple[SiteModel, tuple[str, ...]]:
        try:
            current = await self._admin.get_site(building)
        except NotFound:
            return site, ()
        floors = site.floor_by_id()
        kept = [b for b in current.site.beacons if b.floor in floors]
        dropped = len(current.site.beacons) - len(kept)
        warnings = (f"{dropped} beacons were on floors the import no longer has and were removed",) if dropped else ()
        if not kept:
            return site, warnings
        data = site.model_dump(mode="json", by_alias=True)
        data["beacons"] = [b.model_dump(mode="json", by_alias=True) for b in kept]
        return parse_site_model(data), warnings


def beacons_from_csv(text: str) -> list[dict[str, Any]]:
    """CSV rows (header id,x,y,floor,measuredPower) as beacon objects; the site model then validates them."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [f for f in BEACON_CSV_FIELDS if f not in header]
    if missing:
        raise ContractViolation([FieldError("$", f"the CSV header must name {', '.join(BEACON_CSV_FIELDS)}; "
                                                 f"missing: {', '.join(missing)}")], title="The CSV is invalid")
    rows: list[dict[str, Any]] = []
    for line, row in enumerate(reader, start=2):
        values = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        if not any(values.values()):
            continue
        try:
            rows.append({"id": values["id"], "x": float(values["x"]), "y": float(values["y"]),
                         "floor": values["floor"], "measuredPower": int(values["measuredPower"])})
        except ValueError as exc:
            raise ContractViolation([FieldError(f"line {line}", f"x and y must be numbers and measuredPower an "
                                                                f"integer: {exc}")],
                                    title="The CSV is invalid") from None
    return rows


def floor_geojson(site: SiteModel, floor: str | None) -> dict[str, Any]:
    """Spaces, doors, amenities, obstacles, beacons and the navigation graph of a floor (all floors when None) as
    GeoJSON features in building metres (x east, y north); each feature names its `featureType` and `floor`."""
    def on(f: str) -> bool:
        return floor is None or f == floor

    features: list[dict[str, Any]] = []
    for f in site.floors:
        if on(f.id):
            features.append(_feature("floor", f.id, f.id, _polygon(f.outline, []),
                                     {"name": f.name, "shortName": f.short_name, "ordinal": f.ordinal}))
    for s in site.spaces:
        if on(s.floor):
            features.append(_feature("space", s.id, s.floor, _space_geometry(s),
                                     {"name": s.name, "kind": s.kind.value, "capacity": s.capacity,
                                      "bookable": s.bookable, "amenities": list(s.amenities)}))
    for d in site.doors:
        if on(d.floor):
            features.append(_feature("door", d.id, d.floor, {"type": "LineString", "coordinates": _ring(d.segment)},
                                     {"category": d.category, "accessible": d.accessible, "spaces": list(d.spaces)}))
    for a in site.amenities:
        if on(a.floor):
            features.append(_feature("amenity", a.id, a.floor, _point(a.x, a.y),
                                     {"category": a.category, "name": a.name, "spaces": list(a.spaces)}))
    for o in site.obstacles:
        if on(o.floor):
            features.append(_feature("obstacle", o.id, o.floor, _polygon(o.polygon, o.holes),
                                     {"category": o.category}))
    for b in site.beacons:
        if on(b.floor):
            features.append(_feature("beacon", b.id, b.floor, _point(b.x, b.y), {"measuredPower": b.measured_power}))
    nodes = {n.id: n for n in site.navigation.nodes}
    for n in site.navigation.nodes:
        if on(n.floor):
            features.append(_feature("navNode", n.id, n.floor, _point(n.x, n.y),
                                     {"kind": n.kind.value, "spaceId": n.space_id}))
    for e in site.navigation.edges:
        a_node, b_node = nodes[e.from_node], nodes[e.to_node]
        if a_node.floor == b_node.floor and on(a_node.floor):
            features.append(_feature("navEdge", f"{e.from_node}>{e.to_node}", a_node.floor,
                                     {"type": "LineString", "coordinates": _ring([(a_node.x, a_node.y),
                                                                                 (b_node.x, b_node.y)])},
                                     {"kind": e.kind.value, "accessible": e.accessible}))
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features,
                                  "properties": {"buildingId": site.building_id, "units": "m", "floor": floor}}
    if site.origin is not None:
        collection["properties"]["origin"] = {"latitude": site.origin.latitude, "longitude": site.origin.longitude}
    return collection


def _to_wgs84(collection: dict[str, Any], latitude: float, longitude: float) -> dict[str, Any]:
    projection = Projection(latitude, longitude)

    def convert(coordinates: Any) -> Any:
        if coordinates and isinstance(coordinates[0], (int, float)):  # a position
            return projection.to_lonlat(np.array([coordinates], dtype=float))[0].tolist()
        if coordinates and isinstance(coordinates[0], list) and coordinates[0] and \
                isinstance(coordinates[0][0], (int, float)):  # a ring or a line: one call for all its positions
            return projection.to_lonlat(np.array(coordinates, dtype=float)).tolist()
        return [convert(part) for part in coordinates]

    for feature in collection["features"]:
        feature["geometry"]["coordinates"] = convert(feature["geometry"]["coordinates"])
    collection["properties"]["units"] = "degrees"
    return collection


def _occupiable(space: Space) -> bool:
    return space.kind.value not in space_kinds.NOT_OCCUPIABLE and space.kind.value not in space_kinds.WALKABLE


def _feature(kind: str, ident: str, floor: str, geometry: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": ident, "geometry": geometry,
            "properties": {"featureType": kind, "floor": floor, **props}}


def _ring(points: Any) -> list[list[float]]:
    return [[float(x), float(y)] for x, y in points]


def _closed(points: Any) -> list[list[float]]:
    ring = _ring(points)
    return ring + ring[:1] if ring and ring[0] != ring[-1] else ring


def _polygon(outer: Any, holes: Any) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": [_closed(outer)] + [_closed(h) for h in holes]}


def _space_geometry(space: Space) -> dict[str, Any]:
    if not space.parts:
        return _polygon(space.polygon, space.holes)
    rings = [[_closed(space.polygon)] + [_closed(h) for h in space.holes]]
    rings += [[_closed(p.polygon)] + [_closed(h) for h in p.holes] for p in space.parts]
    return {"type": "MultiPolygon", "coordinates": rings}


def _point(x: float, y: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [float(x), float(y)]}


def planned_beacons_out(plan: BeaconPlan) -> dict[str, Any]:
    def report(r: Any) -> dict[str, Any] | None:
        if r is None:
            return None
        short = [c.space_id for c in r.rooms if not c.meets_target]
        return {"rooms": len(r.rooms), "roomsMeetingTarget": r.rooms_meeting_target, "roomsShort": short,
                "predictedRoomAccuracy": r.predicted_room_accuracy}

    return {"beacons": [{"floor": b.floor, "x": round(b.x, 2), "y": round(b.y, 2), "spaceId": b.space_id}
                        for b in plan.beacons],
            "planned": report(plan.planned), "existing": report(plan.existing)}


__all__ = ["FloorPlanService", "ImportedBuilding", "PlanRequest", "beacons_from_csv", "floor_geojson",
           "planned_beacons_out"]
