"""The fault proxy of the outage tests: forwards, refuses or resets, cuts open connections, and comes back."""
from __future__ import annotations

import asyncio

import pytest

from devkit.emulators.fault_proxy import FaultProxy


@pytest.fixture
async def echo_port():
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def round_trip(port: int, payload: bytes = b"ping") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(1024), 5)
    finally:
        writer.close()


async def test_forwards_then_refuses_then_forwards_again_on_the_same_port(echo_port):
    async with FaultProxy(echo_port) as proxy:
        port = proxy.port
        assert await round_trip(port) == b"ping"
        await proxy.fail("refuse")
        with pytest.raises(ConnectionRefusedError):
            await round_trip(port)
        await proxy.restore()
        assert proxy.port == port and await round_trip(port, b"back") == b"back"


async def test_reset_mode_accepts_and_resets_and_open_connections_are_cut(echo_port):
    async with FaultProxy(echo_port) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"pooled")
        await writer.drain()
        assert await reader.read(1024) == b"pooled"  # a connection an SDK would keep in its pool
        await proxy.fail("reset")
        with pytest.raises(ConnectionError):
            writer.write(b"still there?")
            await writer.drain()
            if not await asyncio.wait_for(reader.read(1024), 5):
                raise ConnectionResetError("closed")
        writer.close()
        with pytest.raises(ConnectionError):
            if not await round_trip(proxy.port):
                raise ConnectionResetError("closed")
        assert proxy.rejected >= 1
        await proxy.restore()
        assert await round_trip(proxy.port) == b"ping"


def test_listens_on_loopback_only():
    with pytest.raises(ValueError):
        FaultProxy(1234, host="0.0.0.0")
