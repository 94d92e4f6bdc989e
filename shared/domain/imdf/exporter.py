"""A `site/v1` SiteModel -> IMDF feature files (WGS84 around the site's origin), the inverse of import_imdf:
an import of the export gives the same site back, coordinates to the millimetre."""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import shapely

from shared.domain import geometry as planar
from shared.domain.imdf.importer import ID_NAMESPACE, fallback_site_name, fallback_space_name
from shared.domain.imdf.projection import Projection
from shared.domain.imdf.timezones import country_of_zone
from shared.domain.site import Floor, SiteModel

DEFAULT_LANGUAGE: Final = "en"
# The manifest's `created`: fixed, so the same site always exports to the same bytes.
CREATED: Final = "2000-01-01T00:00:00Z"
FEATURE_FILES: Final = ("venue", "address", "building", "footprint", "level", "unit", "opening", "amenity",
                        "fixture", "relationship")
Point = tuple[float, float]


def export_imdf(site: SiteModel) -> dict[str, bytes]:
    """manifest.json and one FeatureCollection per feature type. A site without an origin is placed at 0, 0."""
    return _Exporter(site).run()


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except ValueError:
        return False


class _Exporter:
    def __init__(self, site: SiteModel) -> None:
        self.site = site
        origin = site.origin
        self.lat = origin.latitude if origin else 0.0
        self.lon = origin.longitude if origin else 0.0
        self.projection = Projection(self.lat, self.lon)

    def fid(self, kind: str, local_id: str) -> str:
        """Imported (UUID) ids as they are; others a uuid5 of the building id, the kind and the id."""
        if _is_uuid(local_id):
            return local_id
        return str(uuid.uuid5(ID_NAMESPACE, f"{self.site.building_id}/{kind}/{local_id}"))

    def ring(self, points: Sequence[Point], clockwise: bool = False) -> list[list[float]]:
        pts = list(points)
        if (planar.polygon_area(pts) < 0) != clockwise:
            pts = [pts[0], *reversed(pts[1:])]
        lonlat = self.projection.to_lonlat(np.array(pts + [pts[0]], dtype=float))
        return [[float(x), float(y)] for x, y in lonlat]

    def polygon(self, outer: Sequence[Point], holes: Sequence[Sequence[Point]]) -> list[list[list[float]]]:
        return [self.ring(outer), *(self.ring(h, clockwise=True) for h in holes)]

    def point(self, x: float, y: float) -> dict[str, Any]:
        lon, lat = self.projection.to_lonlat(np.array([[x, y]], dtype=float))[0]
        return {"type": "Point", "coordinates": [float(lon), float(lat)]}

    def run(self) -> dict[str, bytes]:
        site = self.site
        imdf = site.imdf
        venue_id = imdf.venue_id if imdf else self.fid("venue", site.building_id)
        building_id = imdf.building_id if imdf and imdf.building_id else self.fid("building", site.building_id)
        address_id, address = self._address()
        display = {"type": "Point", "coordinates": [self.lon, self.lat]}
        name = _labels(site.labels, site.name, site.name == fallback_site_name(site.building_id))
        union = shapely.union_all([shapely.Polygon(f.outline) for f in site.floors])
        outline = self._polygonal(union)
        files: dict[str, list[dict[str, Any]]] = {kind: [] for kind in FEATURE_FILES}
        files["venue"].append(_feature(venue_id, "venue", outline, {
            "category": imdf.venue_category if imdf else "businesscampus", "restriction": None, "name": name,
            "alt_name": None, "hours": None, "phone": None, "website": None, "display_point": display,
            "address_id": address_id}))
        if address is not None and address_id is not None:
            files["address"].append(_feature(address_id, "address", None, address))
        files["building"].append(_feature(building_id, "building", None, {
            "name": name, "alt_name": None, "category": "unspecified", "restriction": None,
            "display_point": display, "address_id": address_id}))
        files["footprint"].append(_feature(self.fid("footprint", site.building_id), "footprint", outline, {
            "category": "ground", "name": None, "building_ids": [building_id]}))
        for floor in site.floors:
            files["level"].append(self._level(floor, building_id))
        for space in site.spaces:
            polygons = [self.polygon(space.polygon, space.holes),
                        *(self.polygon(p.polygon, p.holes) for p in space.parts)]
            geometry = ({"type": "Polygon", "coordinates": polygons[0]} if len(polygons) == 1
                        else {"type": "MultiPolygon", "coordinates": polygons})
            files["unit"].append(_feature(self.fid("unit", space.id), "unit", geometry, {
                "category": space.kind.value, "restriction": None, "accessibility": None,
                "name": _labels(space.labels, space.name, space.name == fallback_space_name(space.kind.value,
                                                                                              space.id)),
                "alt_name": None, "level_id": self.fid("level", space.floor), "display_point": None}))
        for door in site.doors:
            lonlat = self.projection.to_lonlat(np.array(door.segment, dtype=float))
            files["opening"].append(_feature(self.fid("opening", door.id), "opening", {
                "type": "LineString", "coordinates": [[float(x), float(y)] for x, y in lonlat]}, {
                "category": door.category, "accessibility": None if door.accessible else [],
                "access_control": None, "door": None, "name": _labels({}, door.name or "", not door.name),
                "alt_name": None, "display_point": None, "level_id": self.fid("level", door.floor)}))
        for amenity in site.amenities:
            units = amenity.spaces or self._units_at(amenity.floor, amenity.x, amenity.y)
            files["amenity"].append(_feature(self.fid("amenity", amenity.id), "amenity",
                                             self.point(amenity.x, amenity.y), {
                "category": amenity.category, "accessibility": None,
                "name": _labels({}, amenity.name or "", not amenity.name), "alt_name": None, "hours": None,
                "phone": None, "website": None, "unit_ids": [self.fid("unit", u) for u in units],
                "address_id": None, "correlation_id": None}))
        for obstacle in site.obstacles:
            files["fixture"].append(_feature(self.fid("fixture", obstacle.id), "fixture", {
                "type": "Polygon", "coordinates": self.polygon(obstacle.polygon, obstacle.holes)}, {
                "category": obstacle.category, "name": _labels({}, obstacle.name or "", not obstacle.name),
                "alt_name": None, "anchor_id": None, "level_id": self.fid("level", obstacle.floor),
                "display_point": None}))
        for connector in site.connectors:
            refs = [{"id": self.fid("unit", s), "feature_type": "unit"} for s in connector.spaces]
            files["relationship"].append(_feature(self.fid("relationship", connector.id), "relationship", None, {
                "category": connector.kind.value, "direction": "undirected", "origin": refs[0],
                "intermediary": refs[1:-1] or None, "destination": refs[-1], "hours": None}))
        out = {f"{kind}.geojson": _collection(features) for kind, features in files.items()}
        manifest = {"version": "1.0.0", "created": CREATED, "generated_by": "spaceflow",
                    "language": DEFAULT_LANGUAGE, "extensions": None}
        out["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
        return dict(sorted(out.items()))

    def _address(self) -> tuple[str | None, dict[str, Any] | None]:
        imdf = self.site.imdf
        if imdf is not None and imdf.address is not None:
            return imdf.address_id or self.fid("address", self.site.building_id), dict(imdf.address)
        if imdf is not None and imdf.address_id is not None:
            return None, None
        country = country_of_zone(self.site.time_zone)
        if country is None:
            return None, None
        locality = self.site.time_zone.rsplit("/", 1)[-1].replace("_", " ")
        return self.fid("address", self.site.building_id), {
            "address": self.site.name, "unit": None, "locality": locality, "province": None, "country": country,
            "postal_code": None, "postal_code_ext": None, "postal_code_vanity": None}

    def _level(self, floor: Floor, building_id: str) -> dict[str, Any]:
        cx, cy = planar.polygon_centroid(floor.outline)
        return _feature(self.fid("level", floor.id), "level", {
            "type": "Polygon", "coordinates": self.polygon(floor.outline, [])}, {
            "category": "unspecified", "restriction": None, "outdoor": False, "ordinal": floor.ordinal,
            "name": _labels(floor.labels, floor.name, not floor.name),
            "short_name": {_language(floor.labels): floor.short_name} if floor.short_name else None,
            "display_point": self.point(round(cx, 3), round(cy, 3)), "address_id": None,
            "building_ids": [building_id]})

    def _polygonal(self, geom: Any) -> dict[str, Any]:
        polygons = [geom] if geom.geom_type == "Polygon" else [g for g in geom.geoms if g.geom_type == "Polygon"]
        coords = [self.polygon(list(p.exterior.coords)[:-1], [list(r.coords)[:-1] for r in p.interiors])
                  for p in polygons]
        if len(coords) == 1:
            return {"type": "Polygon", "coordinates": coords[0]}
        return {"type": "MultiPolygon", "coordinates": coords}

    def _units(self, floor: str, x: float, y: float) -> list[str]:
        return self._units_at(floor, x, y)

    def _units_at(self, floor: str, x: float, y: float) -> list[str]:
        return [s.id for s in self.site.spaces
                if s.floor == floor and planar.point_in_polygon((x, y), s.polygon)][:16]


def _language(labels: dict[str, str]) -> str:
    return next(iter(labels), DEFAULT_LANGUAGE)


def _labels(labels: dict[str, str], name: str, unnamed: bool) -> dict[str, str] | None:
    if labels:
        return dict(labels)
    if unnamed or not name:
        return None
    return {DEFAULT_LANGUAGE: name}


def _feature(fid: str, feature_type: str, geometry: dict[str, Any] | None,
             properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "id": fid, "feature_type": feature_type, "geometry": geometry,
            "properties": properties}


def _collection(features: list[dict[str, Any]]) -> bytes:
    body = ",\n".join(json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in features)
    return ('{"type":"FeatureCollection","features":[\n' + body + ("\n" if body else "") + "]}\n").encode()
