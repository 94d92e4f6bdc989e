"""The fixes devkit/emulators/cosmos_server.js applies to @vercel/cosmosdb-server, through the Python SDK (aio).

Each test fails against the stock server: 500 on a missing point read, batches without a per-operation partition
key, Patch in a batch, atomic rollback, keep-alive, case-preserving patch filter predicates, 404 with sub-status
1003 for document operations under a missing container or database.
"""
from __future__ import annotations

import asyncio
import json
import ssl
import urllib.request

import pytest
from azure.core import MatchConditions
from azure.cosmos import PartitionKey
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosBatchOperationError,
    CosmosResourceNotFoundError,
)

from tests.conftest import unique_name


async def _container(database, path: str = "/pk"):
    return await database.create_container(unique_name("c"), partition_key=PartitionKey(path))


def _statuses(results) -> list[int]:
    return [int(result["statusCode"]) for result in results]


async def test_point_read_of_a_missing_item_raises_not_found(cosmos_database):
    container = await _container(cosmos_database)
    await container.create_item({"id": "present", "pk": "a"})

    with pytest.raises(CosmosResourceNotFoundError) as missing:
        await container.read_item("absent", partition_key="a")
    assert missing.value.status_code == 404
    # An existing id under another partition key is a different item: also 404, not the item.
    with pytest.raises(CosmosResourceNotFoundError):
        await container.read_item("present", partition_key="b")
    assert (await container.read_item("present", partition_key="a"))["id"] == "present"


async def test_point_read_with_a_nested_partition_key_path(cosmos_database):
    # The stock handler compares data["site/id"] (never defined) with the key, so every read was a 404.
    container = await _container(cosmos_database, "/site/id")
    await container.create_item({"id": "s1", "site": {"id": "kourou"}, "n": 3})
    assert (await container.read_item("s1", partition_key="kourou"))["n"] == 3
    with pytest.raises(CosmosResourceNotFoundError):
        await container.read_item("s1", partition_key="other")


async def test_batch_takes_the_partition_key_from_the_header(cosmos_database):
    container = await _container(cosmos_database)
    for item_id in ("to-read", "to-replace", "to-delete", "to-patch"):
        await container.create_item({"id": item_id, "pk": "a", "n": 1})
    # The same ids in another partition must not be touched.
    await container.create_item({"id": "to-delete", "pk": "b", "n": 1})

    results = await container.execute_item_batch(
        batch_operations=[
            ("create", ({"id": "new", "pk": "a", "n": 1},)),
            ("upsert", ({"id": "upserted", "pk": "a", "n": 2},)),
            ("read", ("to-read",)),
            ("replace", ("to-replace", {"id": "to-replace", "pk": "a", "n": 5})),
            ("delete", ("to-delete",)),
            ("patch", ("to-patch", [{"op": "set", "path": "/tag", "value": "x"}])),
        ],
        partition_key="a",
    )

    assert _statuses(results) == [201, 201, 200, 200, 204, 200]
    assert results[2]["resourceBody"]["id"] == "to-read"
    assert results[5]["resourceBody"]["tag"] == "x"
    assert (await container.read_item("new", partition_key="a"))["n"] == 1
    assert (await container.read_item("upserted", partition_key="a"))["n"] == 2
    assert (await container.read_item("to-replace", partition_key="a"))["n"] == 5
    assert (await container.read_item("to-patch", partition_key="a"))["tag"] == "x"
    with pytest.raises(CosmosResourceNotFoundError):
        await container.read_item("to-delete", partition_key="a")
    assert (await container.read_item("to-delete", partition_key="b"))["n"] == 1


async def test_batch_rejects_a_body_of_another_partition(cosmos_database):
    container = await _container(cosmos_database)
    with pytest.raises(CosmosBatchOperationError) as error:
        await container.execute_item_batch(
            batch_operations=[("create", ({"id": "x", "pk": "a"},)), ("create", ({"id": "y", "pk": "b"},))],
            partition_key="a",
        )
    assert (error.value.error_index, error.value.status_code) == (1, 400)
    with pytest.raises(CosmosResourceNotFoundError):
        await container.read_item("x", partition_key="a")


async def test_patch_operations_in_a_batch(cosmos_database):
    container = await _container(cosmos_database)
    created = await container.create_item({"id": "counter", "pk": "a", "n": 1})

    results = await container.execute_item_batch(
        batch_operations=[
            ("patch", ("counter", [{"op": "incr", "path": "/n", "value": 1}]), {"filter_predicate": "from c where c.n = 1"}),
            ("patch", ("counter", [{"op": "incr", "path": "/n", "value": 10}, {"op": "add", "path": "/seen", "value": True}])),
        ],
        partition_key="a",
    )
    assert _statuses(results) == [200, 200]
    assert results[1]["resourceBody"]["n"] == 12
    stored = await container.read_item("counter", partition_key="a")
    assert (stored["n"], stored["seen"]) == (12, True)

    # A false filter predicate and a stale etag fail the batch with 412 at the index of that operation.
    with pytest.raises(CosmosBatchOperationError) as false_predicate:
        await container.execute_item_batch(
            batch_operations=[
                ("patch", ("counter", [{"op": "incr", "path": "/n", "value": 1}])),
                ("patch", ("counter", [{"op": "incr", "path": "/n", "value": 1}]), {"filter_predicate": "from c where c.n = 1"}),
            ],
            partition_key="a",
        )
    assert (false_predicate.value.error_index, false_predicate.value.status_code) == (1, 412)
    with pytest.raises(CosmosBatchOperationError) as stale:
        await container.execute_item_batch(
            batch_operations=[("patch", ("counter", [{"op": "incr", "path": "/n", "value": 1}]), {"if_match_etag": created["_etag"]})],
            partition_key="a",
        )
    assert (stale.value.error_index, stale.value.status_code) == (0, 412)
    assert (await container.read_item("counter", partition_key="a"))["n"] == 12


async def test_a_failed_atomic_batch_rolls_back_every_operation(cosmos_database):
    container = await _container(cosmos_database)
    existing = await container.create_item({"id": "existing", "pk": "a", "n": 1})
    updated = await container.create_item({"id": "updated", "pk": "a", "n": 1})

    with pytest.raises(CosmosBatchOperationError) as error:
        await container.execute_item_batch(
            batch_operations=[
                ("upsert", ({"id": "updated", "pk": "a", "n": 2},)),
                ("create", ({"id": "fresh", "pk": "a", "n": 1},)),
                ("create", ({"id": "existing", "pk": "a", "n": 99},)),  # 409: the id exists
                ("delete", ("updated",)),
            ],
            partition_key="a",
        )

    assert error.value.error_index == 2
    assert error.value.status_code == 409
    assert _statuses(error.value.operation_responses) == [424, 424, 409, 424]
    with pytest.raises(CosmosResourceNotFoundError):
        await container.read_item("fresh", partition_key="a")
    after = await container.read_item("updated", partition_key="a")
    assert (after["n"], after["_etag"]) == (1, updated["_etag"])
    assert (await container.read_item("existing", partition_key="a"))["_etag"] == existing["_etag"]
    ids = [item["id"] async for item in container.query_items("SELECT c.id FROM c WHERE c.pk = 'a'", partition_key="a")]
    assert sorted(ids) == ["existing", "updated"]


async def test_a_rollback_restores_deleted_and_replaced_items(cosmos_database):
    container = await _container(cosmos_database)
    gone = await container.create_item({"id": "gone", "pk": "a", "n": 1})
    await container.create_item({"id": "other", "pk": "a", "n": 1})

    with pytest.raises(CosmosBatchOperationError) as error:
        await container.execute_item_batch(
            batch_operations=[
                ("delete", ("gone",)),
                ("create", ({"id": "gone", "pk": "a", "n": 2},)),  # recreated within the batch
                ("replace", ("other", {"id": "other", "pk": "a", "n": 3})),
                ("read", ("never-there",)),  # 404
            ],
            partition_key="a",
        )
    assert (error.value.error_index, error.value.status_code) == (3, 404)
    restored = await container.read_item("gone", partition_key="a")
    assert (restored["n"], restored["_etag"], restored["_rid"]) == (1, gone["_etag"], gone["_rid"])
    assert (await container.read_item("other", partition_key="a"))["n"] == 1
    # The restored item is fully usable afterwards.
    await container.replace_item("gone", {"id": "gone", "pk": "a", "n": 4})
    assert (await container.read_item("gone", partition_key="a"))["n"] == 4


def _server_stats(port: int) -> dict:
    context = ssl._create_unverified_context()  # the emulator's certificate is self-signed and expired
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/__spaceflow/stats", context=context, timeout=5) as reply:
        return json.load(reply)


async def test_the_sdk_reuses_keep_alive_connections(cosmos, cosmos_database):
    container = await _container(cosmos_database)
    await container.create_item({"id": "hot", "pk": "a", "n": 1})
    before = await asyncio.to_thread(_server_stats, cosmos.port)

    for _ in range(50):
        await container.read_item("hot", partition_key="a")

    after = await asyncio.to_thread(_server_stats, cosmos.port)
    assert after["requests"] - before["requests"] >= 50
    # Without keep-alive every read opens a connection (>= 50); the stats call itself opens one.
    assert after["connections"] - before["connections"] <= 3


async def test_patch_with_a_filter_predicate(cosmos_database):
    container = await _container(cosmos_database)
    await container.create_item({"id": "p", "pk": "a", "n": 1, "sensorState": "Active"})

    patched = await container.patch_item(
        "p", "a", patch_operations=[{"op": "incr", "path": "/n", "value": 1}], filter_predicate="from c where c.n = 1"
    )
    assert patched["n"] == 2
    with pytest.raises(CosmosAccessConditionFailedError) as failed:
        await container.patch_item(
            "p", "a", patch_operations=[{"op": "incr", "path": "/n", "value": 1}], filter_predicate="from c where c.n = 1"
        )
    assert failed.value.status_code == 412
    assert (await container.read_item("p", partition_key="a"))["n"] == 2
    # Predicates keep their case: camelCase properties and string literals (the stock server lower-cased both).
    patched = await container.patch_item(
        "p", "a", patch_operations=[{"op": "set", "path": "/seen", "value": True}],
        filter_predicate="FROM c WHERE c.sensorState = 'Active'",
    )
    assert patched["seen"] is True


async def test_patch_filter_predicate_only_sees_the_addressed_partition(cosmos_database):
    container = await _container(cosmos_database)
    await container.create_item({"id": "same", "pk": "a", "n": 1})
    await container.create_item({"id": "same", "pk": "b", "n": 7})
    with pytest.raises(CosmosAccessConditionFailedError):
        await container.patch_item(
            "same", "a", patch_operations=[{"op": "incr", "path": "/n", "value": 1}], filter_predicate="from c where c.n = 7"
        )
    assert (await container.read_item("same", partition_key="a"))["n"] == 1


async def test_replace_and_patch_with_a_stale_etag_fail_with_412(cosmos_database):
    container = await _container(cosmos_database)
    first = await container.create_item({"id": "e", "pk": "a", "n": 1})
    second = await container.replace_item(
        "e", {"id": "e", "pk": "a", "n": 2}, etag=first["_etag"], match_condition=MatchConditions.IfNotModified
    )
    assert second["_etag"] != first["_etag"]

    with pytest.raises(CosmosAccessConditionFailedError) as stale:
        await container.replace_item(
            "e", {"id": "e", "pk": "a", "n": 3}, etag=first["_etag"], match_condition=MatchConditions.IfNotModified
        )
    assert stale.value.status_code == 412
    with pytest.raises(CosmosAccessConditionFailedError):
        await container.patch_item(
            "e", "a", patch_operations=[{"op": "incr", "path": "/n", "value": 1}],
            etag=first["_etag"], match_condition=MatchConditions.IfNotModified,
        )
    assert (await container.read_item("e", partition_key="a"))["n"] == 2


async def test_document_operations_under_a_missing_container_or_database_answer_404_with_substatus_1003(
        cosmos_client, cosmos_database):
    from azure.cosmos.exceptions import CosmosHttpResponseError

    container = await _container(cosmos_database)
    await container.create_item({"id": "present", "pk": "a"})
    with pytest.raises(CosmosResourceNotFoundError) as item_missing:
        await container.read_item("absent", partition_key="a")
    assert item_missing.value.sub_status in (None, 0)  # a missing item is not a missing owner
    await cosmos_database.delete_container(container.id)
    operations = {
        "read": lambda: container.read_item("present", partition_key="a"),
        "create": lambda: container.create_item({"id": "new", "pk": "a"}),
        "upsert": lambda: container.upsert_item({"id": "present", "pk": "a"}),
        "replace": lambda: container.replace_item("present", {"id": "present", "pk": "a"}),
        "delete": lambda: container.delete_item("present", partition_key="a"),
        "query": lambda: _drain(container.query_items("SELECT * FROM c WHERE c.pk = 'a'", partition_key="a")),
    }
    for name, operation in operations.items():
        with pytest.raises(CosmosHttpResponseError) as owner_missing:
            await operation()
        assert (owner_missing.value.status_code, owner_missing.value.sub_status) == (404, 1003), name
    other = await _container(cosmos_database)
    await cosmos_client.delete_database(cosmos_database.id)
    with pytest.raises(CosmosHttpResponseError) as database_missing:
        await other.upsert_item({"id": "x", "pk": "a"})
    assert (database_missing.value.status_code, database_missing.value.sub_status) == (404, 1003)
    await cosmos_client.create_database(cosmos_database.id)  # for the fixture's clean-up


async def _drain(items) -> list:
    return [item async for item in items]
