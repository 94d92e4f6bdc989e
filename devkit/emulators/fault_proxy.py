"""A loopback TCP proxy in front of an emulator, to break and mend the connection on purpose (outage tests).

The emulators keep their data only in memory, so an outage cannot be staged by stopping them. Point the app's
connection settings at a FaultProxy instead: it forwards bytes both ways (TLS passes through untouched) until
told to `fail()`, then refuses new connections (or resets them) and cuts the open ones, SDK connection pools
included, until `restore()`.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Literal, Self

from devkit.emulators.launcher import LOOPBACK

logger = logging.getLogger(__name__)

FailureMode = Literal["refuse", "reset"]


class FaultProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target_port`. Run it in the event loop of the code under test."""

    def __init__(self, target_port: int, port: int = 0, host: str = LOOPBACK) -> None:
        if host not in (LOOPBACK, "localhost", "::1"):
            raise ValueError("the fault proxy listens on loopback only")
        self.host = host
        self.target_port = target_port
        self.port = port  # 0: a free port, known after start()
        self.mode: FailureMode | None = None  # None: forwarding
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted and forwarded
        self.rejected = 0  # reset while failing (connections refused by a closed listener are never seen)

    async def start(self) -> Self:
        await self._listen()
        return self

    async def fail(self, mode: FailureMode = "refuse") -> None:
        """Start the outage: `refuse` closes the listener (connection refused), `reset` accepts and resets each
        connection at once; both cut every open connection."""
        self.mode = mode
        if mode == "refuse" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._links):
            _reset(writer)
        logger.info("fault proxy %s -> %s: failing (%s)", self.port, self.target_port, mode)

    async def restore(self) -> None:
        """End the outage: forward again, on the same port."""
        self.mode = None
        if self._server is None:
            await self._listen()
        logger.info("fault proxy %s -> %s: forwarding", self.port, self.target_port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._links):
            _reset(writer)
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _listen(self) -> None:
        # reuse_address: the port is re-bound at once on restore() although cut connections linger in TIME_WAIT.
        self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.mode is not None:
            self.rejected += 1
            _reset(client_writer)
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            _reset(client_writer)  # the emulator itself is not there: the client sees what it would see
            return
        self.connections += 1
        self._links.update((client_writer, target_writer))
        pipes = [asyncio.create_task(self._pipe(client_reader, target_writer)),
                 asyncio.create_task(self._pipe(target_reader, client_writer))]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._pipes.difference_update(pipes)
            for writer in (client_writer, target_writer):
                self._links.discard(writer)
                if not writer.is_closing():
                    writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode is not None:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if self.mode is not None:
                _reset(writer)
            elif not writer.is_closing():
                with contextlib.suppress(OSError):
                    writer.write_eof()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), like a crashed server or a dropped route, not an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
