"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation on loopback.

httpx spends ~1 ms of CPU a request: on a 2-core machine shared with the server and the emulators, the load
generator itself would be the bottleneck. Requests are pre-serialised bytes; responses are read just enough to
know the status, the Retry-After header and a small JSON body.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass(frozen=True)
class Reply:
    status: int
    retry_after: bool
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class LoadClient:
    def __init__(self, host: str, port: int, max_connections: int) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the load client only talks to loopback")
        self.host, self.port = host, port
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()
        self._slots = asyncio.Semaphore(max_connections)
        self._all: list[asyncio.StreamWriter] = []

    @staticmethod
    def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        if body:
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    async def send(self, raw: bytes) -> Reply:
        async with self._slots:
            reader, writer = await self._connection()
            try:
                writer.write(raw)
                reply, keep = await self._read(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                raise
            if keep:
                self._idle.put_nowait((reader, writer))
            else:
                writer.close()
            return reply

    async def _connection(self) -> Connection:
        if not self._idle.empty():
            return self._idle.get_nowait()
        connection = await asyncio.open_connection(self.host, self.port)
        self._all.append(connection[1])
        return connection

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[Reply, bool]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length) if length else b""
        keep = headers.get("connection", "keep-alive").lower() != "close"
        return Reply(status, "retry-after" in headers, body), keep

    async def close(self) -> None:
        for writer in self._all:
            writer.close()
