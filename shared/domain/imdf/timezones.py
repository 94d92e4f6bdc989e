"""An IANA time zone for an IMDF address: IMDF gives a country (ISO 3166) but no zone, so take the zone of that
country whose principal city is nearest the venue (the tz database's zone.tab, read from the local copy)."""
from __future__ import annotations

import functools
import math
import re
from importlib import resources
from pathlib import Path
from zoneinfo import TZPATH

_COORD = re.compile(r"^([+-])(\d{2})(\d{2})(\d{2})?([+-])(\d{3})(\d{2})(\d{2})?$")
_TABLES = ("zone.tab", "zone1970.tab")


def zone_for(country: str, latitude: float, longitude: float, province: str | None = None) -> str | None:
    """The zone of the country whose principal city is nearest the point, None for a country the table lacks.

    The nearest city alone misleads where a country has small regional zones (Seattle is nearer Boise than Los
    Angeles), so: a province (ISO 3166-2, `US-ID`) that a zone's description names picks among those zones;
    otherwise zones described as a part of a region ("Mountain - ID (south)") and enclaves next to a zone for
    "most" of the country (Busingen) are left out before the nearest is taken.
    """
    zones = _zones_by_country().get(country.strip().upper())
    if not zones:
        return None
    candidates = list(zones)
    code = (province or "").strip().upper().rsplit("-", 1)[-1]
    named = [z for z in candidates if code and re.search(rf"\b{re.escape(code)}\b", z[3])] if code else []
    if named:
        candidates = named
    else:
        principal = [z for z in candidates if " - " not in z[3]]
        if any("most" in z[3] for z in principal):
            principal = [z for z in principal if z[3] != z[0].rsplit("/", 1)[-1].replace("_", " ")]
        candidates = principal or candidates
    return min(candidates, key=lambda z: (_haversine(latitude, longitude, z[1], z[2]), z[0]))[0]


def country_of_zone(zone: str) -> str | None:
    """The (first, alphabetically) country whose table entry lists this zone."""
    countries = sorted(c for c, zones in _zones_by_country().items() if any(z[0] == zone for z in zones))
    return countries[0] if countries else None


@functools.cache
def _zones_by_country() -> dict[str, tuple[tuple[str, float, float, str], ...]]:
    text = _read_table()
    table: dict[str, list[tuple[str, float, float, str]]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            continue
        coordinate = _parse_coordinate(fields[1])
        if coordinate is None:
            continue
        for country in fields[0].split(","):
            comment = fields[3] if len(fields) > 3 else ""
            table.setdefault(country, []).append((fields[2], *coordinate, comment))
    return {c: tuple(zones) for c, zones in table.items()}


def _read_table() -> str:
    # zone.tab names one zone per country and place (Europe/Amsterdam for NL); zone1970.tab merges countries.
    for name in _TABLES:
        for base in TZPATH:
            path = Path(base) / name
            if path.is_file():
                return path.read_text(encoding="utf-8")
        try:
            return (resources.files("tzdata") / "zoneinfo" / name).read_text(encoding="utf-8")
        except (ModuleNotFoundError, FileNotFoundError, OSError):
            continue
    return ""


def _parse_coordinate(text: str) -> tuple[float, float] | None:
    match = _COORD.match(text)
    if match is None:
        return None
    s1, d1, m1, sec1, s2, d2, m2, sec2 = match.groups()
    lat = int(d1) + int(m1) / 60 + int(sec1 or 0) / 3600
    lon = int(d2) + int(m2) / 60 + int(sec2 or 0) / 3600
    return (-lat if s1 == "-" else lat, -lon if s2 == "-" else lon)


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * math.asin(min(1.0, math.sqrt(a)))
