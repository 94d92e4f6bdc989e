"""read_archive / zip_archive / parse_overlay: what an uploaded zip may and may not be."""
from __future__ import annotations

import io
import json
import zipfile

import pytest

from shared.domain.imdf import (
    MAX_ARCHIVE_BYTES,
    ArchiveTooLarge,
    ImdfError,
    SpaceOverlay,
    parse_overlay,
    read_archive,
    zip_archive,
)
from shared.domain.imdf import archive as archive_module
from tests.support.imdf import VenueBuilder

MANIFEST = b'{"version": "1.0.0", "created": "2024-01-01T00:00:00Z", "language": "en"}'


def _zip(entries: dict[str, bytes], **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_root_files_are_read_and_junk_ignored() -> None:
    data = _zip({"manifest.json": MANIFEST, "unit.geojson": b"{}", "__MACOSX/._unit.geojson": b"x",
                 ".DS_Store": b"x", "docs/readme.txt": b"x", "notes.txt": b"x", "overlay.csv": b"spaceId\n"})
    files = read_archive(data)
    assert set(files) == {"manifest.json", "unit.geojson", "overlay.csv"}
    assert files["manifest.json"] == MANIFEST


def test_one_top_folder_is_stripped() -> None:
    files = read_archive(_zip({"venue-export/": b"", "venue-export/manifest.json": MANIFEST,
                               "venue-export/level.geojson": b"[1]", "__MACOSX/venue-export/._level.geojson": b""}))
    assert files == {"manifest.json": MANIFEST, "level.geojson": b"[1]"}


def test_two_venue_folders_are_refused() -> None:
    with pytest.raises(ImdfError, match="2 folders"):
        read_archive(_zip({"a/manifest.json": MANIFEST, "b/manifest.json": MANIFEST}))


def test_missing_manifest() -> None:
    with pytest.raises(ImdfError) as info:
        read_archive(_zip({"unit.geojson": b"{}"}))
    assert info.value.file == "manifest.json"


def test_not_a_zip() -> None:
    with pytest.raises(ImdfError, match="not a zip") as info:
        read_archive(b"PK\x03\x04 this is not really a zip")
    assert info.value.file == "archive"
    assert not isinstance(info.value, ArchiveTooLarge)


@pytest.mark.parametrize("name", ["../x.geojson", "a/../../manifest.json", "/etc/manifest.json", "C:/manifest.json",
                                  "..\\manifest.json"])
def test_zip_slip_is_refused(name: str) -> None:
    with pytest.raises(ImdfError) as info:
        read_archive(_zip({"manifest.json": MANIFEST, name: b"{}"}))
    assert info.value.file == name


def test_encrypted_entry_is_refused() -> None:
    data = bytearray(_zip({"manifest.json": MANIFEST}))
    # set the "encrypted" flag bit in the local header and the central directory entry
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature)
        data[at + offset] |= 0x1
    with pytest.raises(ImdfError, match="encrypted"):
        read_archive(bytes(data))


def test_oversized_archive_bytes() -> None:
    with pytest.raises(ArchiveTooLarge):
        read_archive(b"\0" * (MAX_ARCHIVE_BYTES + 1))


def _bomb(size: int) -> bytes:
    """A zip whose unit.geojson inflates to `size` zero bytes, written in chunks (never held in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", MANIFEST)
        with zf.open("unit.geojson", "w", force_zip64=True) as out:
            chunk = b"\0" * (1 << 20)
            for _ in range(size >> 20):
                out.write(chunk)
    return buffer.getvalue()


def test_zip_bomb_is_stopped_while_inflating() -> None:
    data = _bomb(64 << 20)
    assert len(data) < 1 << 20  # small compressed
    with pytest.raises(ArchiveTooLarge, match="zip bomb") as info:
        read_archive(data)
    assert info.value.file == "unit.geojson"


def test_header_sizes_are_not_trusted() -> None:
    """A header that claims a tiny entry does not let a large one through: reading stops at the claimed size and
    the archive is refused (the checksum no longer matches), never truncated silently."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", MANIFEST)
        zf.writestr("unit.geojson", b"\0" * (4 << 20))
    data = bytearray(buffer.getvalue())
    local = data.find(b"PK\x03\x04", 1)  # the second local header: unit.geojson
    central = data.rfind(b"PK\x01\x02")
    data[local + 22:local + 26] = (100).to_bytes(4, "little")
    data[central + 24:central + 28] = (100).to_bytes(4, "little")
    with pytest.raises(ImdfError, match="cannot read the entry") as info:
        read_archive(bytes(data))
    assert info.value.file == "unit.geojson"


def test_entry_cap_is_enforced_while_inflating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_module, "MAX_RATIO", 10**9)
    monkeypatch.setattr(archive_module, "MAX_ENTRY_BYTES", 4 << 20)
    data = _zip({"manifest.json": MANIFEST, "unit.geojson": b"{}"})
    # a header that admits its size is refused before inflating; one that inflates past the cap while reading too
    with pytest.raises(ArchiveTooLarge, match="claims"):
        read_archive(_bomb(8 << 20))
    assert read_archive(data)["unit.geojson"] == b"{}"


def test_uncompressed_total_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_module, "MAX_UNCOMPRESSED_BYTES", 1000)
    with pytest.raises(ArchiveTooLarge, match="in total"):
        read_archive(_zip({"manifest.json": MANIFEST, "unit.geojson": b"x" * 600, "level.geojson": b"y" * 600}))


def test_entry_count_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_module, "MAX_ENTRIES", 3)
    with pytest.raises(ArchiveTooLarge, match="entries"):
        read_archive(_zip({f"f{i}.geojson": b"{}" for i in range(4)} | {"manifest.json": MANIFEST}))


def test_zip_archive_is_deterministic_and_reads_back() -> None:
    files = VenueBuilder().files()
    a, b = zip_archive(files), zip_archive(dict(reversed(list(files.items()))))
    assert a == b
    assert read_archive(a) == files
    assert zipfile.ZipFile(io.BytesIO(a)).namelist() == sorted(files)


# -- overlay ---------------------------------------------------------------------------------------------------


def test_overlay_csv() -> None:
    data = ("\ufeffspaceId,capacity,bookable,amenities\n"
            "r1,8,true,screen; whiteboard\n"
            "r2,,no,\n"
            "r3,0,,\n").encode()
    overlay = parse_overlay(data, "csv")
    assert overlay == {
        "r1": SpaceOverlay(capacity=8, bookable=True, amenities=("screen", "whiteboard")),
        "r2": SpaceOverlay(capacity=None, bookable=False, amenities=None),
        "r3": SpaceOverlay(capacity=0, bookable=None, amenities=None),
    }


@pytest.mark.parametrize(("csv_text", "where"), [
    ("spaceId,capacity\nr1,lots\n", "row 2, field capacity"),
    ("spaceId,capacity\nr1,1\nr2,-3\n", "row 3, field capacity"),
    ("spaceId,bookable\nr1,maybe\n", "row 2, field bookable"),
    ("spaceId,capcity\nr1,1\n", "row 1: unknown column 'capcity'"),
    ("capacity\n1\n", "row 1: the header needs a spaceId"),
    ("spaceId,capacity\nr1,1\nr1,2\n", "row 3, field spaceId"),
    ("spaceId,capacity\n,1\n", "row 2, field spaceId"),
])
def test_overlay_csv_errors_name_row_and_field(csv_text: str, where: str) -> None:
    with pytest.raises(ImdfError) as info:
        parse_overlay(csv_text.encode(), "csv")
    assert info.value.file == "overlay.csv"
    assert where in str(info.value)


def test_overlay_json_both_shapes() -> None:
    mapping = {"spaces": {"r1": {"capacity": 4, "bookable": True, "amenities": ["tv"]}}}
    listed = [{"spaceId": "r1", "capacity": 4, "bookable": True, "amenities": ["tv"]}]
    expected = {"r1": SpaceOverlay(4, True, ("tv",))}
    assert parse_overlay(json.dumps(mapping).encode(), "json") == expected
    assert parse_overlay(json.dumps(listed).encode(), "json") == expected


@pytest.mark.parametrize(("doc", "where"), [
    ({"spaces": {"r1": {"capacity": 1.5}}}, 'spaces["r1"], field capacity'),
    ([{"spaceId": "r1"}, {"capacity": 3}], "[1], field spaceId"),
    ([{"spaceId": "r1", "bookable": "sometimes"}], "[0], field bookable"),
    ([{"spaceId": "r1", "amenities": [1, 2]}], "[0], field amenities"),
    ({"rooms": []}, "expected"),
])
def test_overlay_json_errors(doc: object, where: str) -> None:
    with pytest.raises(ImdfError) as info:
        parse_overlay(json.dumps(doc).encode(), "json")
    assert info.value.file == "overlay.json"
    assert where in str(info.value)


def test_overlay_json_rejects_nan() -> None:
    with pytest.raises(ImdfError, match="not valid JSON"):
        parse_overlay(b'{"spaces": {"r1": {"capacity": NaN}}}', "json")
