"""Errors of the IMDF import: each names the archive file and the feature at fault."""
from __future__ import annotations

from shared.domain.errors import DomainError


class ImdfError(DomainError):
    """An IMDF archive that cannot be imported (HTTP 400). `str()` reads `unit.geojson: feature 8c1e...: ...`."""

    def __init__(self, message: str, *, file: str | None = None, feature_id: str | None = None) -> None:
        self.file = file
        self.feature_id = feature_id
        self.message = message
        where = ""
        if file is not None:
            where += f"{file}: "
        if feature_id is not None:
            where += f"feature {feature_id}: "
        super().__init__(where + message)


class ArchiveTooLarge(ImdfError):
    """An archive over a size limit (HTTP 413): compressed bytes, uncompressed total, entry count or ratio."""
