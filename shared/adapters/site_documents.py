"""How a site model is laid out in storage: gzip-compressed JSON in Blob storage, named by the SHA-256 of the JSON
(content-addressed: the same model is the same blob), and a small pointer document in the Cosmos `buildings`
container whose `_etag` is the building's version (docs/data-model.md, "Site models").

Pure functions, no I/O: the Cosmos store (shared/adapters/cosmos.py) does the reads and writes. Anything that
cannot be read back raises ValueError, KeyError or TypeError, the errors SiteDirectory reports as "this building
cannot be loaded".
"""
from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from typing import Any, Final

from shared.domain.site import SiteModel
from shared.domain.tenancy import BuildingRef

POINTER_FORMAT: Final = "site-blob/v1"
BLOB_CONTENT_TYPE: Final = "application/gzip"
GZIP_LEVEL: Final = 6  # 1.7 MB of tower JSON -> 133 KB in ~30 ms; level 9 saves 7 % more at 3x the time
# Cosmos refuses items over 2 MB (2,097,152 bytes, system properties included): a store without Blob storage keeps
# models inline up to this size of JSON and refuses larger ones.
INLINE_LIMIT_BYTES: Final = 1_900_000
# Below this size of JSON a model is decoded on the event loop; larger ones go to a thread (the tower: ~180 ms).
THREAD_THRESHOLD_BYTES: Final = 64 * 1024

# The pointer document's own fields (besides id, tenantId and the system properties).
FORMAT, VERSION, BLOB, PREVIOUS_BLOB = "format", "version", "blob", "previousBlob"
RAW_BYTES, COMPRESSED_BYTES = "rawBytes", "compressedBytes"
INLINE_SITE = "site"  # a document written by older code (or a store without Blob storage): the model itself


class SiteTooLarge(ValueError):
    """The model cannot be kept inline in a Cosmos item and the store has no Blob storage to put it in."""


@dataclass(frozen=True)
class EncodedSite:
    """A model ready to store: its JSON, gzip-compressed, and what the pointer says about it."""

    version: str  # SHA-256 of the JSON, hex
    raw_bytes: int
    compressed: bytes

    def blob_name(self, building: BuildingRef) -> str:
        return blob_name(building, self.version)


def blob_prefix(building: BuildingRef) -> str:
    return f"sites/{building.tenant_id}/{building.building_id}/"


def blob_name(building: BuildingRef, version: str) -> str:
    return f"{blob_prefix(building)}{version}.json.gz"


def site_json(site: SiteModel) -> bytes:
    """The model as stored: the API's JSON (aliases), compact."""
    return site.model_dump_json(by_alias=True).encode()


def encode_site(site: SiteModel) -> EncodedSite:
    raw = site_json(site)
    # mtime=0: the same model compresses to the same bytes (the blob is rewritten identically on a re-save).
    return EncodedSite(hashlib.sha256(raw).hexdigest(), len(raw), gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0))


def decode_site(data: bytes, version: str | None = None) -> SiteModel:
    """The model from its compressed JSON; ValueError when the bytes are no gzip, not the version the pointer
    names, or no valid model."""
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError: not an error family callers expect
        raise ValueError(f"site blob is not gzip-compressed JSON: {exc}") from None
    if version is not None and hashlib.sha256(raw).hexdigest() != version:
        raise ValueError(f"site blob does not hold version {version} (corrupt or overwritten)")
    return SiteModel.model_validate_json(raw)


def pointer_document(building: BuildingRef, site: SiteModel, encoded: EncodedSite,
                     previous_blob: str | None) -> dict[str, Any]:
    """The small Cosmos document of a building whose model is in Blob storage (~400 bytes, whatever the model)."""
    return {
        "id": building.building_id,
        "tenantId": building.tenant_id,
        FORMAT: POINTER_FORMAT,
        VERSION: encoded.version,
        BLOB: encoded.blob_name(building),
        PREVIOUS_BLOB: previous_blob,
        RAW_BYTES: encoded.raw_bytes,
        COMPRESSED_BYTES: len(encoded.compressed),
        "name": site.name,
        "floors": len(site.floors),
        "spaces": len(site.spaces),
        "beacons": len(site.beacons),
    }


def inline_document(building: BuildingRef, site: SiteModel) -> dict[str, Any]:
    """The document of before: the whole model in the item (only for a store without Blob storage)."""
    raw = site_json(site)
    if len(raw) > INLINE_LIMIT_BYTES:
        raise SiteTooLarge(
            f"site model of building '{building.building_id}' is {len(raw):,} bytes of JSON; a Cosmos item holds at "
            f"most {INLINE_LIMIT_BYTES:,} of it inline: give the store Blob storage (CosmosSiteModelStore(blobs=...))"
        )
    return {"id": building.building_id, "tenantId": building.tenant_id,
            INLINE_SITE: site.model_dump(mode="json", by_alias=True)}


def is_inline(document: dict[str, Any]) -> bool:
    return INLINE_SITE in document


def current_blob(document: dict[str, Any] | None) -> str | None:
    """The blob a stored document points at (None for none, or an inline document)."""
    if document is None or is_inline(document):
        return None
    name = document.get(BLOB)
    return name if isinstance(name, str) else None


def previous_blob(document: dict[str, Any] | None) -> str | None:
    if document is None or is_inline(document):
        return None
    name = document.get(PREVIOUS_BLOB)
    return name if isinstance(name, str) else None


def pointed_blob(document: dict[str, Any]) -> tuple[str, str]:
    """(blob name, version) of a pointer document; KeyError/TypeError when the document is neither form."""
    if document.get(FORMAT) != POINTER_FORMAT:
        raise KeyError(f"building document of unknown format {document.get(FORMAT)!r}")
    name, version = document[BLOB], document[VERSION]
    if not isinstance(name, str) or not isinstance(version, str):
        raise TypeError("building document names no blob")
    return name, version
