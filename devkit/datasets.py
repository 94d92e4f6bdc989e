"""Reader of the neutral BLE dataset format (../shared/datasets/README.md): `site.json` + `scans.jsonl`.

Validates the input and fails with a message naming the file, line and field at fault. Builds the positioning
engine's site index (`shared.domain.positioning.SiteIndex`) from a dataset's site.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.domain import geometry

if TYPE_CHECKING:
    from shared.domain.positioning import SiteIndex

# Radiated transmit power (dBm) -> RSSI at 1 m (dBm): the Eddystone convention (0 m -> 1 m is -41 dB).
RADIATED_TO_RSSI_AT_1M_DB = -41.0


class DatasetError(ValueError):
    """A dataset folder that does not follow the neutral format; the message says where and why."""


Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DatasetFloor(_Model):
    id: str = Field(min_length=1)
    ordinal: int = 0


class DatasetBeacon(_Model):
    id: str = Field(min_length=1)
    x: Finite
    y: Finite
    floor: str
    approximate: bool = False


class DatasetZone(_Model):
    id: str = Field(min_length=1)
    floor: str
    polygon: list[tuple[Finite, Finite]] = Field(min_length=3)

    @field_validator("polygon")
    @classmethod
    def _simple(cls, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if geometry.has_repeated_vertices(points):
            raise ValueError("polygon repeats a vertex")
        crossing = geometry.self_intersection(points)
        if crossing is not None:
            raise ValueError(f"polygon is self-intersecting: edge {crossing[0]} crosses edge {crossing[1]}")
        if abs(geometry.polygon_area(points)) < 1e-9:
            raise ValueError("polygon has no area")
        return points


class DatasetSite(_Model):
    name: str = Field(min_length=1)
    units: str = "m"
    floors: list[DatasetFloor] = Field(min_length=1)
    beacons: list[DatasetBeacon] = Field(min_length=1)
    zones: list[DatasetZone] = Field(default_factory=list)

    @field_validator("units")
    @classmethod
    def _metres(cls, value: str) -> str:
        if value != "m":
            raise ValueError("only metres ('m') are supported")
        return value


class Truth(_Model):
    x: Finite | None = None
    y: Finite | None = None
    floor: str | None = None
    zone: str | None = None


class Scan(_Model):
    """One labelled scan: the beacons heard (dBm) and where the phone really was."""

    id: str
    device: str = "device"
    split: str
    beacon_tx_power_dbm: Finite | None = Field(default=None, alias="beaconTxPowerDbm")
    ts: datetime | None = None
    truth: Truth
    rssi: dict[str, Annotated[float, Field(ge=-130, le=20, allow_inf_nan=False)]]

    @field_validator("split")
    @classmethod
    def _split(cls, value: str) -> str:
        if value not in ("train", "test"):
            raise ValueError("split must be 'train' or 'test'")
        return value

    @property
    def timestamp(self) -> float | None:
        return None if self.ts is None else self.ts.timestamp()


@dataclass
class Dataset:
    name: str
    path: Path
    site: DatasetSite
    scans: list[Scan] = field(default_factory=list)

    def split(self, name: str) -> list[Scan]:
        return [s for s in self.scans if s.split == name]

    @property
    def has_zones(self) -> bool:
        return bool(self.site.zones) and any(s.truth.zone is not None for s in self.scans)

    @property
    def has_xy(self) -> bool:
        return any(s.truth.x is not None for s in self.scans)

    @property
    def multi_floor(self) -> bool:
        return len(self.site.floors) > 1


def _problem(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in err["loc"]) or "$"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg'].removeprefix('Value error, ')}{more}"


def load_dataset(path: str | Path) -> Dataset:
    """Read and validate a dataset folder; DatasetError names the file, line and field at fault."""
    folder = Path(path)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder")
    site_path, scans_path = folder / "site.json", folder / "scans.jsonl"
    for required in (site_path, scans_path):
        if not required.is_file():
            raise DatasetError(f"{required}: missing (a dataset folder holds site.json and scans.jsonl)")
    try:
        raw_site = json.loads(site_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{site_path}: not valid JSON ({exc})") from None
    try:
        site = DatasetSite.model_validate(raw_site)
    except ValidationError as exc:
        raise DatasetError(f"{site_path}: {_problem(exc)}") from None
    _check_site(site, site_path)
    floors = {f.id for f in site.floors}
    beacons = {b.id for b in site.beacons}
    zones = {z.id for z in site.zones}
    scans: list[Scan] = []
    seen: set[str] = set()
    with scans_path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{scans_path}:{line_no}"
            try:
                scan = Scan.model_validate_json(line)
            except ValidationError as exc:
                raise DatasetError(f"{where}: {_problem(exc)}") from None
            unknown = sorted(set(scan.rssi) - beacons)
            if unknown:
                raise DatasetError(f"{where}: rssi names unknown beacon(s) {', '.join(unknown[:5])}")
            if scan.truth.floor is not None and scan.truth.floor not in floors:
                raise DatasetError(f"{where}: truth.floor '{scan.truth.floor}' is not a floor of site.json")
            if scan.truth.zone is not None and zones and scan.truth.zone not in zones:
                raise DatasetError(f"{where}: truth.zone '{scan.truth.zone}' is not a zone of site.json")
            if (scan.truth.x is None) != (scan.truth.y is None):
                raise DatasetError(f"{where}: truth needs both x and y, or neither")
            if scan.id in seen:
                raise DatasetError(f"{where}: duplicate scan id '{scan.id}'")
            seen.add(scan.id)
            scans.append(scan)
    if not scans:
        raise DatasetError(f"{scans_path}: no scans")
    if not any(s.split == "test" for s in scans):
        raise DatasetError(f"{scans_path}: no scan has split 'test'")
    return Dataset(name=site.name, path=folder, site=site, scans=scans)


def _check_site(site: DatasetSite, where: Path) -> None:
    floors = {f.id for f in site.floors}
    for kind, items in (("floors", site.floors), ("beacons", site.beacons), ("zones", site.zones)):
        ids = [item.id for item in items]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise DatasetError(f"{where}: {kind} repeat id(s) {', '.join(duplicates[:5])}")
    for i, beacon in enumerate(site.beacons):
        if beacon.floor not in floors:
            raise DatasetError(f"{where}: beacons[{i}] '{beacon.id}' is on unknown floor '{beacon.floor}'")
    for i, zone in enumerate(site.zones):
        if zone.floor not in floors:
            raise DatasetError(f"{where}: zones[{i}] '{zone.id}' is on unknown floor '{zone.floor}'")


def measured_power_of(scan: Scan) -> float | None:
    """The batch's measured power at 1 m derived from the scan's radiated transmit power, when it has one."""
    if scan.beacon_tx_power_dbm is None:
        return None
    return scan.beacon_tx_power_dbm + RADIATED_TO_RSSI_AT_1M_DB


def site_index(dataset: Dataset, *, grid_step_m: float | None = None) -> SiteIndex:
    """The positioning engine's precomputed site for a dataset (outlines: beacons and zones plus a margin)."""
    from shared.domain.positioning import BeaconSpec, FloorSpec, SiteIndex, SpaceSpec

    floors = [FloorSpec(id=f.id, ordinal=f.ordinal) for f in dataset.site.floors]
    beacons = [BeaconSpec(id=b.id, x=b.x, y=b.y, floor=b.floor) for b in dataset.site.beacons]
    spaces = [SpaceSpec(id=z.id, floor=z.floor, polygon=tuple(z.polygon)) for z in dataset.site.zones]
    return SiteIndex.build(floors=floors, beacons=beacons, spaces=spaces, grid_step_m=grid_step_m)


def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
