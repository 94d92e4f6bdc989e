"""Beacon identifiers as the SDK reports them: iBeacon `uuid:major:minor` or Eddystone `namespace:instance`."""
from __future__ import annotations

import re

_IBEACON = re.compile(
    r"^(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r":(?P<major>\d{1,5}):(?P<minor>\d{1,5})$"
)
_EDDYSTONE = re.compile(r"^(?P<namespace>[0-9a-fA-F]{20}):(?P<instance>[0-9a-fA-F]{12})$")

BEACON_ID_HELP = "a beacon id is 'uuid:major:minor' (iBeacon, major/minor 0-65535) or 'namespace:instance' (Eddystone, 20 and 12 hex digits)"


def normalize_beacon_id(raw: str) -> str:
    """Canonical (lower-case) beacon id, or ValueError naming the expected formats."""
    match = _IBEACON.match(raw)
    if match:
        major, minor = int(match["major"]), int(match["minor"])
        if major > 65535 or minor > 65535:
            raise ValueError(BEACON_ID_HELP)
        return f"{match['uuid'].lower()}:{major}:{minor}"
    match = _EDDYSTONE.match(raw)
    if match:
        return f"{match['namespace'].lower()}:{match['instance'].lower()}"
    raise ValueError(BEACON_ID_HELP)
