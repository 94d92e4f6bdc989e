"""Session-scoped emulators shared by the integration and e2e tests.

They start on free loopback ports the first time a test asks for them (unit tests never pay for them) and stop
at the end of the session. There is no reset: each test names its own database or containers.
"""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from devkit.emulators.launcher import RunningEmulator, cosmos_aio_client, start_azurite, start_cosmos


def unique_name(prefix: str) -> str:
    """A name no other test uses: lower-case letters, digits and dashes (valid for Cosmos and Blob)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def azurite() -> Iterator[RunningEmulator]:
    emulator = start_azurite()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def cosmos() -> Iterator[RunningEmulator]:
    emulator = start_cosmos()
    yield emulator
    emulator.stop()


@pytest.fixture
async def cosmos_client(cosmos: RunningEmulator) -> AsyncIterator[object]:
    async with cosmos_aio_client(cosmos.port) as client:
        yield client


@pytest.fixture
async def cosmos_database(cosmos_client) -> AsyncIterator[object]:
    """A database of this test's own, deleted afterwards."""
    name = unique_name("db")
    database = await cosmos_client.create_database(name)
    yield database
    await cosmos_client.delete_database(name)


@pytest.fixture
async def blob_service(azurite: RunningEmulator) -> AsyncIterator[object]:
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(azurite.connection_string) as client:
        yield client
