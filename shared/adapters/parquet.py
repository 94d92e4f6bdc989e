"""Analytics tables <-> Parquet bytes, deterministically: a fixed schema per table, rows in the order given, fixed
writer options and no wall-clock time anywhere in the file, so the same rows always give the same bytes."""
from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.domain.analytics import Window

_WINDOW_FIELDS = [
    pa.field("tenant_id", pa.string(), nullable=False),
    pa.field("building_id", pa.string(), nullable=False),
    pa.field("grain", pa.string(), nullable=False),
    pa.field("window_start", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("window_end", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("local_date", pa.date32(), nullable=False),
    pa.field("local_hour", pa.int8()),
    pa.field("utc_offset_minutes", pa.int16(), nullable=False),
]

SCHEMAS: dict[str, pa.Schema] = {
    "spaces": pa.schema(_WINDOW_FIELDS + [
        pa.field("space_id", pa.string(), nullable=False),
        pa.field("floor_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("capacity", pa.int32(), nullable=False),
        pa.field("business_s", pa.float64(), nullable=False),
        pa.field("occupied_s", pa.float64(), nullable=False),
        pa.field("occupancy_rate", pa.float64(), nullable=False),
        pa.field("utilization", pa.float64()),
        pa.field("right_sizing", pa.float64()),
        pa.field("peak_headcount", pa.int32()),
        pa.field("unique_visitors", pa.int32()),
        pa.field("visits", pa.int32()),
        pa.field("mean_dwell_s", pa.float64()),
        pa.field("booked_s", pa.float64()),
        pa.field("booked_empty_s", pa.float64()),
        pa.field("unbooked_use_s", pa.float64()),
        pa.field("bookings", pa.int32()),
        pa.field("no_shows", pa.int32()),
        pa.field("suppressed", pa.bool_(), nullable=False),
    ]),
    "zones": pa.schema(_WINDOW_FIELDS + [
        pa.field("level", pa.string(), nullable=False),
        pa.field("zone_id", pa.string(), nullable=False),
        pa.field("business_s", pa.float64(), nullable=False),
        pa.field("peak_headcount", pa.int32()),
        pa.field("mean_headcount", pa.float64()),
        pa.field("unique_visitors", pa.int32()),
        pa.field("bookings", pa.int32(), nullable=False),
        pa.field("no_shows", pa.int32(), nullable=False),
        pa.field("no_show_rate", pa.float64()),
        pa.field("suppressed", pa.bool_(), nullable=False),
    ]),
    "collaboration": pa.schema(_WINDOW_FIELDS + [
        pa.field("team_a", pa.string(), nullable=False),
        pa.field("team_b", pa.string(), nullable=False),
        pa.field("copresence_minutes", pa.float64()),
        pa.field("suppressed", pa.bool_(), nullable=False),
    ]),
}

_WRITER_OPTIONS: dict[str, Any] = {
    "compression": "zstd", "compression_level": 3, "use_dictionary": False, "write_statistics": True,
    "version": "2.6", "data_page_version": "1.0", "row_group_size": 1_000_000,
}


def encode_table(name: str, tenant_id: str, building_id: str, window: Window, columns: dict[str, list[Any]]) -> bytes:
    """One window's table as Parquet bytes (window columns first, then the table's own)."""
    schema = SCHEMAS[name]
    rows = len(next(iter(columns.values()))) if columns else 0
    window_values = {
        "tenant_id": [tenant_id] * rows, "building_id": [building_id] * rows, "grain": [window.grain.value] * rows,
        "window_start": [window.start] * rows, "window_end": [window.end] * rows,
        "local_date": [window.local_date] * rows, "local_hour": [window.local_hour] * rows,
        "utc_offset_minutes": [window.utc_offset_minutes] * rows,
    }
    arrays = [pa.array({**window_values, **columns}[f.name], type=f.type) for f in schema]
    table = pa.Table.from_arrays(arrays, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink, **_WRITER_OPTIONS)
    return sink.getvalue()


def decode_table(data: bytes) -> list[dict[str, Any]]:
    """The rows of a Parquet file as dicts (timestamps as aware datetimes, dates as dates)."""
    rows: list[dict[str, Any]] = pq.read_table(io.BytesIO(data)).to_pylist()  # pyarrow has no type hints
    return rows
