"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation on loopback, and slow clients
that trickle a body (the slowloris attack the request gate defends against).

httpx spends ~1 ms of CPU a request: on a 2-core machine shared with the server and the emulators, the load
generator itself would be the bottleneck. Requests are pre-serialised bytes; responses are read just enough to
know the status, the Retry-After header, the content type and a small JSON body.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Reply:
    status: int
    retry_after: bool
    body: bytes
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class LoadClient:
    def __init__(self, host: str, port: int, max_connections: int) -> None:
        if host not in LOOPBACK_HOSTS:
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
        return await read_reply(reader)

    async def close(self) -> None:
        for writer in self._all:
            writer.close()


async def read_reply(reader: asyncio.StreamReader) -> tuple[Reply, bool]:
    """One response from the stream, and whether the connection stays open after it."""
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
    return Reply(status, "retry-after" in headers, body, headers.get("content-type", ""), headers), keep


@dataclass(frozen=True)
class SlowOutcome:
    """How one slow request ended: the answer (None when the connection closed without one, or the attack
    stopped first), after how long from its headers, and how many body bytes had been sent by then."""

    reply: Reply | None
    answered_after_s: float | None
    bytes_sent: int


async def trickle(host: str, port: int, head: bytes, body_length: int, *, byte_every_s: float = 1.0,
                  stop_at: float | None = None) -> SlowOutcome:
    """Send `head` (request line and headers announcing `body_length` bytes), then the body one byte every
    `byte_every_s`, until the server answers or closes, or `stop_at` (time.monotonic) passes."""
    if host not in LOOPBACK_HOSTS:
        raise ValueError("slow clients only talk to loopback")
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError:
        return SlowOutcome(None, None, 0)
    sent = 0
    answer = asyncio.ensure_future(read_reply(reader))
    try:
        writer.write(head)
        while sent < body_length:
            wait = byte_every_s if stop_at is None else min(byte_every_s, stop_at - time.monotonic())
            if wait <= 0:
                break
            done, _ = await asyncio.wait({answer}, timeout=wait)
            if done:
                break
            writer.write(b" ")
            await writer.drain()
            sent += 1
        if not answer.done() and stop_at is not None and time.monotonic() < stop_at:
            await asyncio.wait({answer}, timeout=stop_at - time.monotonic())
    except (ConnectionError, OSError):
        pass  # the server closed on us: what it answered, if anything, is in `answer`
    finally:
        writer.close()
    if not answer.done():  # the attack ended first
        answer.cancel()
        await asyncio.gather(answer, return_exceptions=True)
        return SlowOutcome(None, None, sent)
    if answer.cancelled() or answer.exception() is not None:  # closed without an answer
        return SlowOutcome(None, None, sent)
    return SlowOutcome(answer.result()[0], time.monotonic() - started, sent)


@dataclass
class SlowClients:
    """`count` slow clients, each trickling one request after another until `stop_at`: what a slowloris attack
    does. `connected` counts the requests whose headers were sent (the attack is on once it reaches `count`)."""

    host: str
    port: int
    count: int
    head: bytes
    body_length: int
    byte_every_s: float = 1.0
    reconnect_after_s: float = 1.0  # the attacker's own cadence: it comes back, but does not flood
    outcomes: list[SlowOutcome] = field(default_factory=list)
    connected: int = 0

    async def run(self, stop_at: float) -> list[SlowOutcome]:
        await asyncio.gather(*(self._one(stop_at) for _ in range(self.count)))
        return self.outcomes

    async def _one(self, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            self.connected += 1
            outcome = await trickle(self.host, self.port, self.head, self.body_length,
                                    byte_every_s=self.byte_every_s, stop_at=stop_at)
            self.outcomes.append(outcome)
            await asyncio.sleep(min(self.reconnect_after_s, max(0.0, stop_at - time.monotonic())))
