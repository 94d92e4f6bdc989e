"""IMDF archives: a zip of GeoJSON feature files and manifest.json, read with every size limit enforced while
decompressing (the sizes a zip header claims are never trusted), and written deterministically."""
from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Mapping
from typing import Final

from shared.domain.imdf.errors import ArchiveTooLarge, ImdfError

MAX_ARCHIVE_BYTES: Final = 64 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
MAX_ENTRY_BYTES = 256 * 1024 * 1024
MAX_ENTRIES = 1_000
# Deflate tops out near 1:1000 on runs of one byte; GeoJSON compresses by 10-30. An entry that inflates more
# than this (past the first MiB) is a bomb, stopped before it is inflated further.
MAX_RATIO = 200
_RATIO_GRACE_BYTES = 1024 * 1024
_CHUNK = 256 * 1024
_KEPT_EXTRA = frozenset({"manifest.json", "overlay.csv", "overlay.json"})
_DRIVE = re.compile(r"^[A-Za-z]:")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def read_archive(data: bytes) -> dict[str, bytes]:
    """The files of an IMDF zip by name (`unit.geojson`, `manifest.json`, ...), a single top folder stripped.

    Keeps `*.geojson`, `manifest.json`, `overlay.csv` and `overlay.json`; ignores directories, `__MACOSX/`,
    dotfiles and deeper folders. Raises ImdfError (ArchiveTooLarge for a size limit).
    """
    if len(data) > MAX_ARCHIVE_BYTES:
        raise ArchiveTooLarge(f"the archive is {len(data)} bytes; at most {MAX_ARCHIVE_BYTES} are accepted",
                              file="archive")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError) as exc:
        raise ImdfError(f"not a zip archive ({exc})", file="archive") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise ArchiveTooLarge(f"the archive has {len(infos)} entries; at most {MAX_ENTRIES} are accepted",
                                  file="archive")
        wanted: list[tuple[list[str], zipfile.ZipInfo]] = []
        for info in infos:
            parts = _entry_parts(info.filename)
            if parts is None:
                continue
            wanted.append((parts, info))
        wanted = _strip_top_folder(wanted)
        files: dict[str, bytes] = {}
        total = 0
        for parts, info in wanted:
            name = parts[0]
            if not (name.endswith(".geojson") or name in _KEPT_EXTRA):
                continue
            if name in files:
                raise ImdfError("the archive holds this file twice", file=name)
            if info.flag_bits & 0x1:
                raise ImdfError("encrypted entries are not supported", file=info.filename)
            content = _read_entry(archive, info, MAX_UNCOMPRESSED_BYTES - total)
            total += len(content)
            files[name] = content
    if "manifest.json" not in files:
        raise ImdfError("an IMDF archive must hold manifest.json (at its root or in one top folder)",
                        file="manifest.json")
    return files


def _entry_parts(name: str) -> list[str] | None:
    """The path components of an entry, None to ignore it; refuses paths that escape the archive."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or _DRIVE.match(normalized):
        raise ImdfError("absolute paths are not allowed in an archive", file=name)
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImdfError("'..' is not allowed in an archive path", file=name)
    if normalized.endswith("/") or not parts:
        return None  # a directory
    if parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts):
        return None
    return parts


def _strip_top_folder(
    entries: list[tuple[list[str], zipfile.ZipInfo]],
) -> list[tuple[list[str], zipfile.ZipInfo]]:
    at_root = [e for e in entries if len(e[0]) == 1]
    if not any(parts[0] == "manifest.json" for parts, _ in at_root):
        tops = {parts[0] for parts, _ in entries if len(parts) == 2 and parts[1] == "manifest.json"}
        if len(tops) == 1:
            top = tops.pop()
            return [(parts[1:], info) for parts, info in entries if len(parts) == 2 and parts[0] == top]
        if len(tops) > 1:
            raise ImdfError(f"the archive holds {len(tops)} folders with a manifest.json: "
                            f"{', '.join(sorted(tops))}; put one venue in an archive", file="manifest.json")
    return at_root


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    if info.file_size > MAX_ENTRY_BYTES:  # a header that admits it is too large: refuse without inflating
        raise ArchiveTooLarge(f"the entry claims {info.file_size} bytes; at most {MAX_ENTRY_BYTES} are accepted",
                              file=info.filename)
    out = bytearray()
    compressed = max(info.compress_size, 1)
    try:
        with archive.open(info) as stream:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                out += chunk
                size = len(out)
                if size > MAX_ENTRY_BYTES:
                    raise ArchiveTooLarge(f"the entry inflates past {MAX_ENTRY_BYTES} bytes", file=info.filename)
                if size > budget:
                    raise ArchiveTooLarge(f"the archive inflates past {MAX_UNCOMPRESSED_BYTES} bytes in total",
                                          file=info.filename)
                if size > _RATIO_GRACE_BYTES and size > MAX_RATIO * compressed:
                    raise ArchiveTooLarge(f"the entry inflates more than {MAX_RATIO} times its compressed size "
                                          "(a zip bomb?)", file=info.filename)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise ImdfError(f"cannot read the entry ({exc})", file=info.filename) from None
    return bytes(out)


def zip_archive(files: Mapping[str, bytes]) -> bytes:
    """A zip of the files, byte for byte the same for the same input (sorted names, fixed timestamps)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name], compress_type=zipfile.ZIP_DEFLATED, compresslevel=6)
    return buffer.getvalue()
