"""IMDF (OGC Community Standard 20-094, IMDF 1.0) in and out of `site/v1`: pure domain code, bytes in, objects
out. read_archive unpacks a zip with every size limit enforced; import_imdf maps the feature files to a validated
SiteModel (warnings for what was repaired or left out); export_imdf is the inverse."""
from shared.domain.imdf.archive import MAX_ARCHIVE_BYTES, read_archive, zip_archive
from shared.domain.imdf.errors import ArchiveTooLarge, ImdfError
from shared.domain.imdf.exporter import export_imdf
from shared.domain.imdf.importer import ImdfImport, import_imdf
from shared.domain.imdf.overlay import SpaceOverlay, parse_overlay

__all__ = [
    "MAX_ARCHIVE_BYTES",
    "ArchiveTooLarge",
    "ImdfError",
    "ImdfImport",
    "SpaceOverlay",
    "export_imdf",
    "import_imdf",
    "parse_overlay",
    "read_archive",
    "zip_archive",
]
