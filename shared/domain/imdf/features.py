"""The feature files of an IMDF archive, checked: JSON, a FeatureCollection, features with ids and the feature
type of their file, the geometry their type requires, finite WGS84 coordinates, bounded counts."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from shared.domain.imdf.errors import ImdfError
from shared.domain.tenancy import ID_PATTERN

POLYGONAL: Final = ("Polygon", "MultiPolygon")
# The geometry each feature type must have (None: geometry is null).
GEOMETRY: Final[dict[str, tuple[str | None, ...]]] = {
    "venue": POLYGONAL,
    "address": (None,),
    "building": (None,),
    "footprint": POLYGONAL,
    "level": POLYGONAL,
    "unit": POLYGONAL,
    "opening": ("LineString",),
    "amenity": ("Point",),
    "fixture": POLYGONAL,
    "relationship": (None, "Point", "LineString", "Polygon", "MultiPolygon"),
}
MAX_FEATURES: Final[dict[str, int]] = {"unit": 50_000, "venue": 100, "building": 1_000, "level": 1_000}
DEFAULT_MAX_FEATURES: Final = 100_000
MAX_POSITIONS: Final = 5_000_000  # coordinates in one archive
_ID = re.compile(ID_PATTERN)
_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
MAX_LABEL_LENGTH: Final = 128
MAX_LABELS: Final = 16


@dataclass(frozen=True)
class Feature:
    id: str
    feature_type: str
    geometry: dict[str, Any] | None
    properties: dict[str, Any]
    file: str

    def error(self, message: str) -> ImdfError:
        return ImdfError(message, file=self.file, feature_id=self.id)


class _Budget:
    def __init__(self) -> None:
        self.positions = 0


def load_json(data: bytes, file: str) -> Any:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImdfError(f"not UTF-8 text (byte {exc.start})", file=file) from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ImdfError("the JSON is nested too deeply", file=file) from None
    except ValueError as exc:
        raise ImdfError(f"not valid JSON ({exc})", file=file) from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def load_collections(files: Mapping[str, bytes]) -> dict[str, list[Feature]]:
    """The features of every known feature file, by feature type; ids unique across the archive."""
    budget = _Budget()
    out: dict[str, list[Feature]] = {}
    seen: dict[str, str] = {}
    for feature_type in GEOMETRY:
        file = f"{feature_type}.geojson"
        if file not in files:
            continue
        features = _collection(load_json(files[file], file), feature_type, file, budget)
        for feature in features:
            if feature.id in seen:
                raise feature.error(f"the id is also used in {seen[feature.id]}")
            seen[feature.id] = file
        out[feature_type] = features
    return out


def _collection(doc: Any, feature_type: str, file: str, budget: _Budget) -> list[Feature]:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise ImdfError('expected a GeoJSON FeatureCollection ({"type": "FeatureCollection", "features": [...]})',
                        file=file)
    raw = doc.get("features")
    if not isinstance(raw, list):
        raise ImdfError("`features` must be a list", file=file)
    limit = MAX_FEATURES.get(feature_type, DEFAULT_MAX_FEATURES)
    if len(raw) > limit:
        raise ImdfError(f"{len(raw)} features; at most {limit} are accepted", file=file)
    return [_feature(item, i, feature_type, file, budget) for i, item in enumerate(raw)]


def _feature(item: Any, index: int, feature_type: str, file: str, budget: _Budget) -> Feature:
    if not isinstance(item, dict) or item.get("type") != "Feature":
        raise ImdfError(f"features[{index}] is not a GeoJSON Feature", file=file)
    fid = item.get("id")
    if not isinstance(fid, str) or not fid:
        raise ImdfError(f"features[{index}] has no id (IMDF ids are UUID strings)", file=file)
    if not _ID.fullmatch(fid):
        raise ImdfError("the id must be 1 to 64 letters, digits, '.', '_' or '-' (IMDF ids are UUIDs)",
                        file=file, feature_id=fid[:80])
    kind = item.get("feature_type")
    if kind != feature_type:
        raise ImdfError(f"feature_type must be {feature_type!r} in {file}, not {str(kind)[:40]!r}", file=file,
                        feature_id=fid)
    properties = item.get("properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise ImdfError("properties must be an object", file=file, feature_id=fid)
    geometry = item.get("geometry")
    allowed = GEOMETRY[feature_type]
    actual = geometry.get("type") if isinstance(geometry, dict) else None
    if geometry is not None and not isinstance(geometry, dict):
        raise ImdfError("geometry must be a GeoJSON geometry object or null", file=file, feature_id=fid)
    if actual not in allowed:
        want = " or ".join("null" if a is None else a for a in allowed)
        raise ImdfError(f"geometry must be {want}, not {actual or 'null'}", file=file, feature_id=fid)
    if geometry is not None:
        _check_coordinates(geometry, file, fid, budget)
    return Feature(fid, feature_type, geometry, properties, file)


_DEPTH = {"Point": 0, "LineString": 1, "Polygon": 2, "MultiPolygon": 3}


def _check_coordinates(geometry: dict[str, Any], file: str, fid: str, budget: _Budget) -> None:
    kind = str(geometry["type"])
    coordinates = geometry.get("coordinates")

    def fail(message: str) -> ImdfError:
        return ImdfError(f"{kind} geometry: {message}", file=file, feature_id=fid)

    def position(value: Any) -> None:
        if not isinstance(value, list) or not 2 <= len(value) <= 3:
            raise fail("a position must be [longitude, latitude]")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise fail(f"coordinates must be finite numbers, not {str(v)[:20]}")
        lon, lat = value[0], value[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise fail(f"({lon}, {lat}) is not a WGS84 longitude/latitude")
        budget.positions += 1
        if budget.positions > MAX_POSITIONS:
            raise fail(f"the archive has more than {MAX_POSITIONS} coordinates")

    def line(value: Any, minimum: int) -> None:
        if not isinstance(value, list) or len(value) < minimum:
            raise fail(f"expected a list of at least {minimum} positions")
        for p in value:
            position(p)

    def polygon(value: Any) -> None:
        if not isinstance(value, list) or not value:
            raise fail("a polygon is a list of linear rings")
        for ring in value:
            line(ring, 4)
            if ring[0][:2] != ring[-1][:2]:
                raise fail("a linear ring must end where it starts")

    if kind == "Point":
        position(coordinates)
    elif kind == "LineString":
        line(coordinates, 2)
    elif kind == "Polygon":
        polygon(coordinates)
    elif kind == "MultiPolygon":
        if not isinstance(coordinates, list) or not coordinates:
            raise fail("a MultiPolygon is a non-empty list of polygons")
        for part in coordinates:
            polygon(part)
    else:  # pragma: no cover - GEOMETRY lists only the kinds above
        raise fail("unsupported geometry")


def labels(feature: Feature, key: str, warnings: list[str]) -> dict[str, str]:
    """A LABELS property (language tag -> text) checked; unusable entries dropped with a warning."""
    value = feature.properties.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise feature.error(f"{key} must be a LABELS object (language tag -> text) or null")
    out: dict[str, str] = {}
    for tag, text in value.items():
        if not isinstance(text, str) or not text.strip():
            continue
        if not _LANGUAGE.fullmatch(tag) or len(tag) > 35:
            warnings.append(f"{feature.file}: feature {feature.id}: {key}: language tag {tag[:40]!r} "
                            "is not a valid tag; left out")
            continue
        if len(out) == MAX_LABELS:
            warnings.append(f"{feature.file}: feature {feature.id}: {key}: only the first {MAX_LABELS} "
                            "languages are kept")
            break
        text = text.strip()
        if len(text) > MAX_LABEL_LENGTH:
            warnings.append(f"{feature.file}: feature {feature.id}: {key}: shortened to {MAX_LABEL_LENGTH} "
                            "characters")
            text = text[:MAX_LABEL_LENGTH]
        out[tag] = text
    return out


def pick_label(values: Mapping[str, str]) -> str | None:
    """The English label (`en`, else `en-*`), else the first."""
    if not values:
        return None
    if "en" in values:
        return values["en"]
    for tag, text in values.items():
        if tag.lower().startswith("en-") or tag.lower() == "en":
            return text
    return next(iter(values.values()))


def reference(value: Any) -> tuple[str, str] | None:
    """A feature reference `{"id": ..., "feature_type": ...}` as (feature_type, id)."""
    if isinstance(value, dict) and isinstance(value.get("id"), str) and isinstance(value.get("feature_type"), str):
        return value["feature_type"], value["id"]
    return None
