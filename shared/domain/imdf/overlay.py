"""The overlay: what IMDF does not carry about a space (capacity, bookable, amenities), as CSV or JSON by space id."""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Final, Literal

from shared.domain.imdf.errors import ImdfError

MAX_OVERLAY_ROWS: Final = 50_000
MAX_CAPACITY: Final = 100_000
_COLUMNS: Final = ("spaceId", "capacity", "bookable", "amenities")
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})


@dataclass(frozen=True)
class SpaceOverlay:
    """Values to set on one space; None leaves the imported value."""

    capacity: int | None = None
    bookable: bool | None = None
    amenities: tuple[str, ...] | None = None


def parse_overlay(data: bytes, kind: Literal["csv", "json"]) -> dict[str, SpaceOverlay]:
    """Overlay rows by space id. CSV: header `spaceId,capacity,bookable,amenities` (amenities `;`-separated);
    JSON: `{"spaces": {id: {...}}}` or a list of objects with `spaceId`. Errors name the row and the field."""
    if kind == "csv":
        return _parse_csv(data)
    return _parse_json(data)


def _text(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImdfError(f"not UTF-8 text (byte {exc.start})", file=file) from None


def _parse_csv(data: bytes) -> dict[str, SpaceOverlay]:
    file = "overlay.csv"
    reader = csv.reader(io.StringIO(_text(data, file), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ImdfError("the overlay is empty: it needs the header spaceId,capacity,bookable,amenities",
                        file=file) from None
    except csv.Error as exc:
        raise ImdfError(f"row 1: {exc}", file=file) from None
    unknown = [h for h in header if h not in _COLUMNS]
    if unknown:
        raise ImdfError(f"row 1: unknown column {unknown[0]!r}; the columns are {', '.join(_COLUMNS)}", file=file)
    if "spaceId" not in header:
        raise ImdfError("row 1: the header needs a spaceId column", file=file)
    if len(set(header)) != len(header):
        raise ImdfError("row 1: a column is named twice", file=file)
    out: dict[str, SpaceOverlay] = {}
    try:
        for number, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise ImdfError(f"row {number}: {len(row)} values for {len(header)} columns", file=file)
            values = dict(zip(header, (cell.strip() for cell in row)))
            where = f"row {number}"
            space_id = values.get("spaceId", "")
            if not space_id:
                raise ImdfError(f"{where}, field spaceId: a space id is required", file=file)
            amenities = values.get("amenities", "")
            record = {
                "capacity": values.get("capacity") or None,
                "bookable": values.get("bookable") or None,
                "amenities": [a.strip() for a in amenities.split(";") if a.strip()] if amenities else None,
            }
            _add(out, space_id, record, where, file)
    except csv.Error as exc:
        raise ImdfError(f"row {reader.line_num}: {exc}", file=file) from None
    return out


def _parse_json(data: bytes) -> dict[str, SpaceOverlay]:
    file = "overlay.json"
    try:
        doc = json.loads(_text(data, file), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise ImdfError(f"not valid JSON ({exc})", file=file) from None
    out: dict[str, SpaceOverlay] = {}
    if isinstance(doc, dict) and isinstance(doc.get("spaces"), dict):
        for space_id, record in doc["spaces"].items():
            _add(out, space_id, record, f"spaces[{json.dumps(space_id)}]", file)
    elif isinstance(doc, dict) and isinstance(doc.get("spaces"), list):
        _add_list(out, doc["spaces"], "spaces", file)
    elif isinstance(doc, list):
        _add_list(out, doc, "", file)
    else:
        raise ImdfError('expected {"spaces": {spaceId: {...}}} or a list of objects with "spaceId"', file=file)
    return out


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _add_list(out: dict[str, SpaceOverlay], rows: list[object], prefix: str, file: str) -> None:
    for i, row in enumerate(rows):
        where = f"{prefix}[{i}]"
        if not isinstance(row, dict):
            raise ImdfError(f"{where}: expected an object with spaceId", file=file)
        space_id = row.get("spaceId")
        if not isinstance(space_id, str) or not space_id:
            raise ImdfError(f"{where}, field spaceId: a space id (string) is required", file=file)
        _add(out, space_id, {k: v for k, v in row.items() if k != "spaceId"}, where, file)


def _add(out: dict[str, SpaceOverlay], space_id: str, record: object, where: str, file: str) -> None:
    if len(out) >= MAX_OVERLAY_ROWS:
        raise ImdfError(f"{where}: at most {MAX_OVERLAY_ROWS} spaces per overlay", file=file)
    if space_id in out:
        raise ImdfError(f"{where}, field spaceId: space {space_id!r} is listed twice", file=file,
                        feature_id=None)
    if not isinstance(record, dict):
        raise ImdfError(f"{where}: expected an object", file=file)
    unknown = [k for k in record if k not in _COLUMNS[1:]]
    if unknown:
        raise ImdfError(f"{where}: unknown field {str(unknown[0])!r}; the fields are capacity, bookable, amenities",
                        file=file)
    out[space_id] = SpaceOverlay(
        capacity=_capacity(record.get("capacity"), where, file),
        bookable=_bookable(record.get("bookable"), where, file),
        amenities=_amenities(record.get("amenities"), where, file),
    )


def _capacity(value: object, where: str, file: str) -> int | None:
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None or not 0 <= number <= MAX_CAPACITY:
        raise ImdfError(f"{where}, field capacity: expected a whole number from 0 to {MAX_CAPACITY}, "
                        f"not {str(value)[:40]!r}", file=file)
    return number


def _bookable(value: object, where: str, file: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ImdfError(f"{where}, field bookable: expected true or false, not {str(value)[:40]!r}", file=file)


def _amenities(value: object, where: str, file: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [a.strip() for a in value.split(";") if a.strip()]
    if not isinstance(value, list) or not all(isinstance(a, str) and 0 < len(a) <= 64 for a in value):
        raise ImdfError(f"{where}, field amenities: expected a list of names (1 to 64 characters each)", file=file)
    if len(value) > 64:
        raise ImdfError(f"{where}, field amenities: at most 64 amenities", file=file)
    return tuple(dict.fromkeys(value))
