"""A synthetic but realistic IMDF venue (office floors) for benchmarks and HTTP tests: seeded, fast.

Each level: a spine walkway, bays of corridors (walkway units) with rooms of varied sizes on both sides (offices,
meeting rooms, kitchens, restrooms) opening onto the corridor, an elevator core and two stair cores stacked on
every level. The elevator is one IMDF relationship; the stairs are left for the importer to find as stacked units.
Importing it gives exactly `units` spaces over `levels` levels.

    python -m devkit.imdf_venue --units 2000 --levels 3 > venue.zip
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import uuid
from typing import Any

import numpy as np

from shared.domain.imdf import zip_archive
from shared.domain.imdf.projection import Projection

DISPLAY_POINT = (47.6205, -122.3493)  # latitude, longitude (Seattle)
ROOM_DEPTH = 8.0
CORRIDOR = 3.0
SPINE = 3.0
CORE = 6.0
ROOM_KINDS = ("office", "office", "office", "office", "conferenceroom", "conferenceroom", "huddleroom",
              "phoneroom", "storage", "lounge")
FIXED_PER_LEVEL = 4  # spine, elevator, two stairs


def generate_venue(units: int = 2000, levels: int = 3, seed: int = 1, openings: bool = True) -> dict[str, bytes]:
    """The feature files and manifest.json of the venue (zip them with shared.domain.imdf.zip_archive)."""
    if levels < 1 or units < levels * (FIXED_PER_LEVEL + 3):
        raise ValueError(f"need at least {FIXED_PER_LEVEL + 3} units per level")
    rng = np.random.default_rng(seed)
    ns = uuid.uuid5(uuid.NAMESPACE_URL, f"https://spaceflow.dev/devkit/imdf-venue/{seed}")

    def fid(name: str) -> str:
        return str(uuid.uuid5(ns, name))

    per_level = [units // levels + (1 if i < units % levels else 0) for i in range(levels)]
    most_rooms = max(per_level) - FIXED_PER_LEVEL
    bays = max(1, min(round(math.sqrt(most_rooms * 6.5 / 38)), (min(per_level) - FIXED_PER_LEVEL) // 3))
    length = SPINE + 6.5 * math.ceil((most_rooms - bays) / (2 * bays))
    bay_height = 2 * ROOM_DEPTH + CORRIDOR
    height = bays * bay_height
    projection = Projection(*DISPLAY_POINT)

    def ring(x0: float, y0: float, x1: float, y1: float) -> list[list[list[float]]]:
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)
        return [[[float(a), float(b)] for a, b in projection.to_lonlat(np.round(pts, 2))]]

    def line(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
        pts = np.round(np.array([[x0, y0], [x1, y1]], dtype=float), 2)
        return [[float(a), float(b)] for a, b in projection.to_lonlat(pts)]

    def point(x: float, y: float) -> dict[str, Any]:
        lon, lat = projection.to_lonlat(np.array([[x, y]], dtype=float))[0]
        return {"type": "Point", "coordinates": [float(lon), float(lat)]}

    def feature(ident: str, kind: str, geometry: dict[str, Any] | None, props: dict[str, Any]) -> dict[str, Any]:
        return {"type": "Feature", "id": ident, "feature_type": kind, "geometry": geometry, "properties": props}

    venue_id, building_id, address_id = fid("venue"), fid("building"), fid("address")
    outline = {"type": "Polygon", "coordinates": ring(-CORE, 0, length, height)}
    files: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "venue", "address", "building", "footprint", "level", "unit", "opening", "amenity", "fixture",
        "relationship")}
    files["address"].append(feature(address_id, "address", None, {
        "address": "400 Broad St", "unit": None, "locality": "Seattle", "province": "US-WA", "country": "US",
        "postal_code": "98109", "postal_code_ext": None, "postal_code_vanity": None}))
    files["venue"].append(feature(venue_id, "venue", outline, {
        "category": "businesscampus", "restriction": None, "name": {"en": "Synthetic Office"}, "alt_name": None,
        "hours": None, "phone": None, "website": None,
        "display_point": {"type": "Point", "coordinates": [DISPLAY_POINT[1], DISPLAY_POINT[0]]},
        "address_id": address_id}))
    files["building"].append(feature(building_id, "building", None, {
        "name": {"en": "Synthetic Office"}, "alt_name": None, "category": "unspecified", "restriction": None,
        "display_point": None, "address_id": address_id}))
    files["footprint"].append(feature(fid("footprint"), "footprint", outline, {
        "category": "ground", "name": None, "building_ids": [building_id]}))
    elevators: list[str] = []
    for lv in range(levels):
        level_id = fid(f"level/{lv}")
        files["level"].append(feature(level_id, "level", outline, {
            "category": "unspecified", "restriction": None, "outdoor": False, "ordinal": lv,
            "name": {"en": f"Level {lv}"}, "short_name": {"en": str(lv)}, "display_point": None,
            "address_id": None, "building_ids": [building_id]}))

        def unit(name: str, kind: str, box: tuple[float, float, float, float], label: str | None,
                 lv: int = lv, level_id: str = level_id) -> str:
            ident = fid(f"unit/{lv}/{name}")
            files["unit"].append(feature(ident, "unit", {"type": "Polygon", "coordinates": ring(*box)}, {
                "category": kind, "restriction": None, "accessibility": None,
                "name": {"en": label} if label else None, "alt_name": None, "level_id": level_id,
                "display_point": None}))
            return ident

        def opening(name: str, x0: float, y0: float, x1: float, y1: float, lv: int = lv,
                    level_id: str = level_id) -> None:
            if openings:
                files["opening"].append(feature(fid(f"opening/{lv}/{name}"), "opening", {
                    "type": "LineString", "coordinates": line(x0, y0, x1, y1)}, {
                    "category": "pedestrian", "accessibility": None, "access_control": None,
                    "door": {"type": "hinged", "automatic": False, "material": "wood"}, "name": None,
                    "alt_name": None, "display_point": None, "level_id": level_id}))

        unit("spine", "walkway", (0, 0, SPINE, height), f"Main corridor {lv}")
        elevators.append(unit("elevator", "elevator", (-CORE, 0, 0, 5), f"Elevator {lv}"))
        unit("stairs-a", "stairs", (-CORE, 5, 0, 11), f"Stairs A {lv}")
        unit("stairs-b", "stairs", (-CORE, height - 6, 0, height), f"Stairs B {lv}")
        opening("elevator", 0, 1.9, 0, 3.1)
        opening("stairs-a", 0, 7.4, 0, 8.6)
        opening("stairs-b", 0, height - 3.6, 0, height - 2.4)
        rooms = per_level[lv] - FIXED_PER_LEVEL - bays
        sides = 2 * bays
        number = 0
        for b in range(bays):
            y0 = b * bay_height
            unit(f"corridor-{b}", "walkway", (SPINE, y0 + ROOM_DEPTH, length, y0 + ROOM_DEPTH + CORRIDOR), None)
            for side in range(2):
                s = 2 * b + side
                count = rooms // sides + (1 if s < rooms % sides else 0)
                widths = rng.uniform(3.0, 10.0, size=count)
                edges = np.round(SPINE + np.concatenate([[0.0], np.cumsum(widths)]) * (length - SPINE)
                                 / widths.sum(), 2)
                ry0, ry1 = (y0, y0 + ROOM_DEPTH) if side == 0 else (y0 + ROOM_DEPTH + CORRIDOR, y0 + bay_height)
                door_y = ry1 if side == 0 else ry0
                for x0, x1 in itertools.pairwise(edges):
                    number += 1
                    slot = number % 23
                    kind = ("kitchen" if slot == 1 else "restroom.female" if slot == 11 else
                            "restroom.male" if slot == 12 else str(rng.choice(ROOM_KINDS)))
                    name = f"room-{number}"
                    ident = unit(name, kind, (float(x0), ry0, float(x1), ry1), f"{kind.title()} {lv}.{number:03d}")
                    mid, half = (x0 + x1) / 2, min(0.45, (x1 - x0) / 2 - 0.2)
                    opening(name, mid - half, door_y, mid + half, door_y)
                    if kind == "kitchen":
                        cx, cy = (x0 + x1) / 2, (ry0 + ry1) / 2
                        files["amenity"].append(feature(fid(f"amenity/{lv}/{name}"), "amenity", point(cx, cy), {
                            "category": "drinkingfountain", "accessibility": None, "name": None,
                            "alt_name": None, "hours": None, "phone": None, "website": None,
                            "unit_ids": [ident], "address_id": None, "correlation_id": None}))
                        files["fixture"].append(feature(fid(f"fixture/{lv}/{name}"), "fixture", {
                            "type": "Polygon", "coordinates": ring(cx - 0.5, cy - 1.5, cx + 0.5, cy - 0.9)}, {
                            "category": "furniture", "name": {"en": "Counter"}, "alt_name": None,
                            "anchor_id": None, "level_id": level_id, "display_point": None}))
    if len(elevators) > 1:
        refs = [{"id": e, "feature_type": "unit"} for e in elevators]
        files["relationship"].append(feature(fid("relationship/elevator"), "relationship", None, {
            "category": "elevator", "direction": "undirected", "origin": refs[0],
            "intermediary": refs[1:-1] or None, "destination": refs[-1], "hours": None}))
    out = {f"{kind}.geojson": json.dumps({"type": "FeatureCollection", "features": features},
                                         separators=(",", ":")).encode() for kind, features in files.items()}
    out["manifest.json"] = json.dumps({"version": "1.0.0", "created": "2024-01-01T00:00:00Z",
                                       "generated_by": "spaceflow devkit", "language": "en"}).encode()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devkit.imdf_venue")
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-openings", action="store_true")
    args = parser.parse_args(argv)
    files = generate_venue(args.units, args.levels, args.seed, openings=not args.no_openings)
    sys.stdout.buffer.write(zip_archive(files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
