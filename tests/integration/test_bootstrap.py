"""The bootstrap creates what is missing, twice in a row changes nothing, and never touches existing data."""
from __future__ import annotations

from azure.cosmos import PartitionKey

from shared.adapters.blob import ensure_blob_containers
from shared.adapters.cosmos import COSMOS_CONTAINERS, DEVICES, VISITS, ensure_cosmos_schema
from tests.conftest import unique_name


async def test_cosmos_schema_bootstrap_is_idempotent_and_keeps_data(cosmos_client):
    name = unique_name("boot")
    try:
        database = await ensure_cosmos_schema(cosmos_client, name)
        devices = database.get_container_client(DEVICES)
        await devices.upsert_item({"id": "phone-1", "buildingKey": "tenant-a|hq", "spaceId": "r-oak"})
        await ensure_cosmos_schema(cosmos_client, name)  # second run: nothing to create, nothing lost

        found = {c["id"]: c async for c in database.list_containers()}
        assert set(found) == {spec.name for spec in COSMOS_CONTAINERS}
        for spec in COSMOS_CONTAINERS:
            assert found[spec.name]["partitionKey"]["paths"] == [spec.partition_key]
            excluded = [p["path"] for p in found[spec.name]["indexingPolicy"]["excludedPaths"]]
            assert "/*" in excluded  # only the listed paths are indexed
        assert (await devices.read_item("phone-1", partition_key="tenant-a|hq"))["spaceId"] == "r-oak"
    finally:
        await cosmos_client.delete_database(name)


async def test_blob_bootstrap_is_idempotent_and_keeps_blobs(blob_service):
    names = [unique_name("analytics"), unique_name("deadletter")]
    await ensure_blob_containers(blob_service, names)
    await blob_service.get_blob_client(names[0], "keep.txt").upload_blob(b"data")
    await ensure_blob_containers(blob_service, names)
    listed = {c.name async for c in blob_service.list_containers()}
    assert set(names) <= listed
    assert await (await blob_service.get_blob_client(names[0], "keep.txt").download_blob()).readall() == b"data"
    for name in names:
        await blob_service.delete_container(name)


async def test_existing_container_with_other_settings_is_left_alone(cosmos_client):
    # Bootstrap never recreates or replaces a container (replace would drop documents on the local server), even
    # one keyed the way containers were before (data-model.md: the migration copies, it never re-keys in place).
    name = unique_name("boot")
    try:
        database = await cosmos_client.create_database(name)
        visits = await database.create_container(VISITS, partition_key=PartitionKey("/buildingId"))
        await visits.upsert_item({"id": "v1", "buildingId": "hq"})
        await ensure_cosmos_schema(cosmos_client, name)
        assert (await visits.read_item("v1", partition_key="hq"))["id"] == "v1"
    finally:
        await cosmos_client.delete_database(name)
