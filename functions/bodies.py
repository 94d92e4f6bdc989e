"""Reading request bodies within limits: gzip accepted, sizes checked before and while reading, JSON nesting
bounded.

The request gate (functions/gate.py) has already buffered the body within MAX_REQUEST_BYTES and checked the
nesting of identity-encoded JSON; the per-route limits here are tighter, and a gzip body's nesting can only be
checked once it is decompressed, here.
"""
from __future__ import annotations

import json
import re
import zlib

import numpy as np
from fastapi import HTTPException, Request

from shared.domain.errors import ContractViolation, FieldError

MAX_COMPRESSED_BYTES = 256 * 1024
MAX_UNCOMPRESSED_BYTES = 1024 * 1024
# The gate's cap on any request body, before a route's own limit applies: the largest of those (a site model).
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Routes made for files take more (the gate looks these up by path; each route checks its own limit again).
MAX_IMDF_BYTES = 64 * 1024 * 1024  # an IMDF archive, zipped (shared.domain.imdf bounds what it unpacks to)
MAX_SITE_WIRE_BYTES = 16 * 1024 * 1024  # a site model of a large venue, as sent (gzip or not)
_BUILDING = r"/api/v1/buildings/[^/]+"
LARGE_BODIES: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(_BUILDING + "/imdf"), MAX_IMDF_BYTES),
    (re.compile(_BUILDING), MAX_SITE_WIRE_BYTES),
    (re.compile(_BUILDING + "/beacons"), MAX_SITE_WIRE_BYTES),
)
# The deepest JSON any route accepts. Site models, the deepest contract, nest about 6 levels; the cap keeps
# json.loads and pydantic far from Python's recursion limit (a 100,000-deep array raised RecursionError: 500).
MAX_JSON_DEPTH = 32

# +1 for an opening bracket, -1 for a closing one, 0 for every other byte.
_BRACKETS = np.zeros(256, dtype=np.int8)
_BRACKETS[[ord("["), ord("{")]] = 1
_BRACKETS[[ord("]"), ord("}")]] = -1


async def read_json_body(request: Request, max_compressed: int = MAX_COMPRESSED_BYTES,
                         max_uncompressed: int = MAX_UNCOMPRESSED_BYTES) -> object:
    """The request's JSON; 413 over the limits, 415 for another encoding or media type, 400 for bad JSON."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise HTTPException(415, f"Content-Encoding '{encoding}' is not supported: send gzip or nothing")
    media_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(415, f"Content-Type '{media_type}' is not supported: send application/json")
    wire_limit = max_compressed if encoding == "gzip" else max_uncompressed
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > wire_limit:
        raise HTTPException(413, _too_large(encoding, wire_limit))
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > wire_limit:
            raise HTTPException(413, _too_large(encoding, wire_limit))
    if encoding == "gzip":
        raw = bytearray(_gunzip(bytes(raw), max_uncompressed))
        check_json_depth(raw)  # identity bodies were checked by the gate; this one only now has its JSON
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractViolation([FieldError("$", f"the body is not valid JSON: {exc}")],
                                title="The request body is not JSON") from None
    except RecursionError:  # only without the gate in front (it bounds the depth first); still not a 500
        raise _too_deep(None) from None


def json_depth(raw: bytes | bytearray, *, at_most: int = MAX_JSON_DEPTH) -> int:
    """How deeply the JSON text nests arrays and objects (0 for a scalar), without parsing it: exact when it is
    more than `at_most`, otherwise possibly just a bound no greater than `at_most`. Vectorised, ~15 ms for 4 MB."""
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets <= at_most:
        return brackets  # it cannot nest deeper than it has brackets: the common case, answered in C
    if b"\\" in raw:
        # Drop escape pairs left to right, as a JSON reader does, so the quotes left are the strings' delimiters.
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = np.frombuffer(bytes(raw), dtype=np.uint8)
    in_string = (np.cumsum(text == ord('"'), dtype=np.int64) & 1).astype(bool)
    steps = _BRACKETS[text].astype(np.int32)
    steps[in_string] = 0  # brackets inside strings are text
    return int(np.cumsum(steps).max(initial=0))


def check_json_depth(raw: bytes | bytearray, limit: int = MAX_JSON_DEPTH) -> None:
    """ContractViolation (400 naming `$`) when the JSON nests deeper than `limit`."""
    depth = json_depth(raw, at_most=limit)
    if depth > limit:
        raise _too_deep(depth, limit)


def _too_deep(depth: int | None, limit: int = MAX_JSON_DEPTH) -> ContractViolation:
    how_deep = f"{depth} levels" if depth is not None else f"more than {limit} levels"
    return ContractViolation([FieldError("$", f"the JSON nests {how_deep} deep; at most {limit} are allowed")],
                             title="The request body nests too deeply")


def _gunzip(data: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error:
        raise ContractViolation([FieldError("$", "the body is not valid gzip")], title="The request body is not gzip")
    if len(out) > limit or decompressor.unconsumed_tail:
        raise HTTPException(413, f"the body exceeds {limit // 1024} KB once decompressed")
    if not decompressor.eof:
        raise ContractViolation([FieldError("$", "the gzip body is truncated")], title="The request body is not gzip")
    return out


def _too_large(encoding: str, limit: int) -> str:
    what = "compressed" if encoding == "gzip" else "uncompressed"
    return f"the body exceeds {limit // 1024} KB ({what})"


async def read_raw_body(request: Request, media_types: tuple[str, ...], max_bytes: int) -> bytes:
    """The body as bytes, for routes that take files: 415 unless its media type is one of `media_types`
    (identity coding only: the files are compressed already), 413 over `max_bytes`."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise HTTPException(415, f"Content-Encoding '{encoding}' is not supported here: send the file as it is")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in media_types:
        raise HTTPException(415, f"Content-Type '{media_type or '(none)'}' is not supported: send "
                                 f"{' or '.join(media_types)}")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise HTTPException(413, f"the body exceeds {max_bytes // 1024} KB")
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > max_bytes:
            raise HTTPException(413, f"the body exceeds {max_bytes // 1024} KB")
    return bytes(raw)


def media_type_of(request: Request) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
