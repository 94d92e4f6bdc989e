"""WGS84 <-> building metres: azimuthal equidistant around the venue's display point (x east, y north)."""
from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pyproj import Transformer

IMPORT_DECIMALS = 3  # metres: 1 mm
EXPORT_DECIMALS = 9  # degrees: ~0.1 mm, so an import of an export lands on the same millimetre


class Projection:
    """Both directions, each Transformer built once (they are slow to create)."""

    def __init__(self, latitude: float, longitude: float) -> None:
        self.latitude = latitude
        self.longitude = longitude
        aeqd = f"+proj=aeqd +lat_0={latitude!r} +lon_0={longitude!r} +datum=WGS84 +units=m +no_defs"
        self._forward = Transformer.from_crs("EPSG:4326", aeqd, always_xy=True)
        self._inverse = Transformer.from_crs(aeqd, "EPSG:4326", always_xy=True)

    def to_metres(self, lonlat: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, 2) longitude/latitude -> (N, 2) metres, rounded to the millimetre."""
        if len(lonlat) == 0:
            return np.zeros((0, 2))
        x, y = self._forward.transform(lonlat[:, 0], lonlat[:, 1])
        out: NDArray[np.float64] = np.round(np.column_stack([x, y]), IMPORT_DECIMALS) + 0.0  # no -0.0
        return out

    def to_lonlat(self, xy: NDArray[np.float64]) -> NDArray[np.float64]:
        """(N, 2) metres -> (N, 2) longitude/latitude, rounded to 1e-9 degree."""
        if len(xy) == 0:
            return np.zeros((0, 2))
        lon, lat = self._inverse.transform(xy[:, 0], xy[:, 1])
        out: NDArray[np.float64] = np.round(np.column_stack([lon, lat]), EXPORT_DECIMALS) + 0.0
        return out
