"""Reading request bodies within limits: gzip accepted, sizes checked before and while reading."""
from __future__ import annotations

import json
import zlib

from fastapi import HTTPException, Request

from shared.domain.errors import ContractViolation, FieldError

MAX_COMPRESSED_BYTES = 256 * 1024
MAX_UNCOMPRESSED_BYTES = 1024 * 1024


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
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractViolation([FieldError("$", f"the body is not valid JSON: {exc}")],
                                title="The request body is not JSON") from None


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
