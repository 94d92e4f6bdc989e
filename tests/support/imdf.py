"""Hand-made IMDF archives for tests: features drawn in metres around an origin, one FeatureCollection per type."""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.domain.imdf import zip_archive
from shared.domain.imdf.projection import Projection

ORIGIN = (52.52, 13.405)  # latitude, longitude (Berlin)
_NS = uuid.UUID("6f1c7d2e-0000-4000-8000-000000000000")
Box = tuple[float, float, float, float]


def uid(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


class VenueBuilder:
    """Collects features; `files()` gives what read_archive would, `zip()` the archive."""

    def __init__(self, origin: tuple[float, float] = ORIGIN, country: str | None = "DE") -> None:
        self.origin = origin
        self.projection = Projection(*origin)
        self.features: dict[str, list[dict[str, Any]]] = {}
        self.venue_id, self.building_id, self.address_id = uid("venue"), uid("building"), uid("address")
        address = self.address_id if country else None
        if country:
            self.add("address", self.address_id, None, {"address": "Teststr. 1", "locality": "Testing",
                                                         "country": country, "province": None})
        self.add("venue", self.venue_id, self.polygon((-50, -50, 150, 150)), {
            "category": "businesscampus", "name": {"en": "Test Venue"},
            "display_point": {"type": "Point", "coordinates": [origin[1], origin[0]]}, "address_id": address})
        self.add("building", self.building_id, None, {"name": {"en": "Test Building"}, "address_id": address})

    def add(self, kind: str, ident: str, geometry: dict[str, Any] | None, props: dict[str, Any]) -> str:
        self.features.setdefault(kind, []).append(
            {"type": "Feature", "id": ident, "feature_type": kind, "geometry": geometry, "properties": props})
        return ident

    def lonlat(self, points: Sequence[tuple[float, float]]) -> list[list[float]]:
        return [[float(a), float(b)] for a, b in self.projection.to_lonlat(np.array(points, dtype=float))]

    def ring(self, box: Box) -> list[list[float]]:
        x0, y0, x1, y1 = box
        return self.lonlat([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)])

    def polygon(self, box: Box, holes: Sequence[Box] = ()) -> dict[str, Any]:
        return {"type": "Polygon", "coordinates": [self.ring(box), *(self.ring(h)[::-1] for h in holes)]}

    def level(self, name: str, ordinal: int, box: Box = (0, 0, 100, 100), **props: Any) -> str:
        return self.add("level", uid(f"level/{name}"), props.pop("geometry", None) or self.polygon(box), {
            "category": "unspecified", "outdoor": False, "ordinal": ordinal, "name": {"en": name},
            "short_name": {"en": str(ordinal)}, "building_ids": [self.building_id], **props})

    def unit(self, name: str, level: str, box: Box, category: str = "office", **props: Any) -> str:
        geometry = props.pop("geometry", None) or self.polygon(box)
        return self.add("unit", uid(f"unit/{name}"), geometry, {
            "category": category, "name": props.pop("labels", {"en": name}), "level_id": level, **props})

    def opening(self, name: str, level: str, a: tuple[float, float], b: tuple[float, float], **props: Any) -> str:
        return self.add("opening", uid(f"opening/{name}"), {"type": "LineString", "coordinates": self.lonlat([a, b])},
                        {"category": "pedestrian", "level_id": level, **props})

    def relationship(self, name: str, category: str, refs: Sequence[tuple[str, str]]) -> str:
        items = [{"id": i, "feature_type": t} for t, i in refs]
        return self.add("relationship", uid(f"rel/{name}"), None, {
            "category": category, "direction": "undirected", "origin": items[0],
            "intermediary": items[1:-1] or None, "destination": items[-1]})

    def files(self, manifest: bool = True) -> dict[str, bytes]:
        out = {f"{kind}.geojson": json.dumps({"type": "FeatureCollection", "features": items}).encode()
               for kind, items in self.features.items()}
        if manifest:
            out["manifest.json"] = json.dumps({"version": "1.0.0", "created": "2024-01-01T00:00:00Z",
                                               "language": "en"}).encode()
        return out

    def zip(self) -> bytes:
        return zip_archive(self.files())


def feature_collection(*features: dict[str, Any]) -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": list(features)}).encode()
