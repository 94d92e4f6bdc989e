"""SDK batches and the ingest events built from them, for tests."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from shared.domain.ingest_event import encode_ingest_event
from shared.domain.sightings import parse_sightings_batch

BEACON_A = "f7826da6-4fa2-4e98-8024-bc5b71e0893e:100:1"


def sdk_batch(now: datetime, device: str = "install-0001", readings: list[tuple[str, int]] | None = None,
              batch_id: str | None = None, **overrides) -> dict:
    """A valid `sightings/v1` batch sent at `now`; readings are (beacon, rssi), one a second before `now`."""
    readings = readings if readings is not None else [(BEACON_A, -70)]
    data = {
        "schema": "sightings/v1", "batchId": batch_id or str(uuid.uuid4()), "deviceId": device,
        "sentAt": now.isoformat(), "platform": "android", "model": "Pixel 8", "sdkVersion": "2.3.1",
        "sightings": [{"beacon": beacon, "rssi": rssi, "ts": (now - timedelta(seconds=len(readings) - i)).isoformat()}
                      for i, (beacon, rssi) in enumerate(readings)],
    }
    data.update(overrides)
    return data


def ingest_event_body(now: datetime, tenant_id: str = "tenant-a", **batch_args) -> bytes:
    parsed = parse_sightings_batch(sdk_batch(now, **batch_args), now)
    return encode_ingest_event(tenant_id, now, parsed.batch)
