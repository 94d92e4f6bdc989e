"""Fixtures the contract suites share: each runs a suite against the in-memory fake and the real adapter."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from azure.storage.blob.aio import BlobServiceClient

from devkit.emulators.launcher import cosmos_aio_client
from shared.adapters.blob import AzureBlobStore, ensure_blob_containers
from shared.adapters.cosmos_schema import CosmosSchema
from shared.adapters.memory import InMemoryBlobStore
from tests.conftest import unique_name


@contextlib.asynccontextmanager
async def emulator_database(request, prefix: str) -> AsyncIterator[object]:
    """A bootstrapped database of the test's own on the session's Cosmos server, deleted afterwards. The adapters
    get it through the schema guard, as in the app, so the contract suites also prove the guard transparent."""
    emulator = request.getfixturevalue("cosmos")  # a sync session fixture: fine to fetch from an async one
    async with cosmos_aio_client(emulator.port) as client:
        name = unique_name(prefix)
        schema = CosmosSchema(client, name)
        await schema.ensure()
        try:
            yield schema.database
        finally:
            await client.delete_database(name)


@pytest.fixture(params=["memory", "azurite"])
async def blob_store(request):
    """(store, container): the in-memory fake, then Azurite with a container of the test's own."""
    container = unique_name("blobs")
    if request.param == "memory":
        yield InMemoryBlobStore(), container
        return
    emulator = request.getfixturevalue("azurite")
    async with BlobServiceClient.from_connection_string(emulator.connection_string) as service:
        await ensure_blob_containers(service, [container])
        yield AzureBlobStore(service), container
        await service.delete_container(container)
