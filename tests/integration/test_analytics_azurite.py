"""Analytics against the emulators: the port contracts the rollups added (blob delete, teams, every building), the
Parquet written to Azurite read back with DuckDB, and a write dying half way through a window in Azurite."""
from __future__ import annotations

from datetime import date

import duckdb
import pytest
from azure.storage.blob.aio import BlobServiceClient

from shared.adapters.blob import AzureBlobStore, ensure_blob_containers
from shared.adapters.cosmos import CosmosSiteModelStore
from shared.adapters.cosmos_teams import CosmosTeamDirectory
from shared.adapters.memory import (
    InMemoryLiveStateStore,
    InMemorySiteModelStore,
    InMemoryTeamDirectory,
)
from shared.domain.analytics import Grain
from shared.domain.presence import Visit
from shared.domain.teams import Team
from shared.domain.tenancy import BuildingRef
from shared.services.rollups import AnalyticsReader, RollupService
from tests.conftest import unique_name
from tests.integration.conftest import emulator_database
from tests.support.analytics import at, site
from tests.support.sites import store_site

THURSDAY = date(2026, 11, 26)


@pytest.fixture(params=["memory", "cosmos"])
async def cosmos_stores(request):
    if request.param == "memory":
        yield InMemorySiteModelStore(), InMemoryTeamDirectory()
        return
    async with emulator_database(request, "analytics") as database:
        yield CosmosSiteModelStore(database), CosmosTeamDirectory(database)


async def test_blob_store_delete(blob_store):
    store, container = blob_store
    await store.put(container, "a/x.parquet", b"1")
    await store.put(container, "a/y.parquet", b"2")
    assert await store.delete(container, "a/x.parquet") is True
    assert await store.delete(container, "a/x.parquet") is False
    assert await store.list_names(container, "a/") == ["a/y.parquet"]


async def test_team_directory_contract(cosmos_stores):
    _, teams = cosmos_stores
    await teams.put_team(Team("tenant-a", "sales", ("u3",), "Sales"))
    await teams.put_team(Team("tenant-a", "design", ("u1", "u2"), "Design"))
    await teams.put_team(Team("tenant-b", "design", ("x",)))
    await teams.put_team(Team("tenant-a", "design", ("u1", "u4"), "Design"))  # replaces
    assert await teams.get_team("tenant-a", "design") == Team("tenant-a", "design", ("u1", "u4"), "Design")
    assert [t.team_id for t in await teams.list_teams("tenant-a")] == ["design", "sales"]
    assert await teams.get_team("tenant-c", "design") is None and await teams.list_teams("tenant-c") == []
    assert await teams.delete_team("tenant-a", "sales") is True
    assert await teams.delete_team("tenant-a", "sales") is False
    assert [t.team_id for t in await teams.list_teams("tenant-a")] == ["design"]


async def test_site_store_lists_every_building_of_every_tenant(cosmos_stores):
    sites, teams = cosmos_stores
    await store_site(sites, "tenant-b", site(building_id="b1"))
    await store_site(sites, "tenant-a", site(building_id="b2"))
    await store_site(sites, "tenant-a", site(building_id="b1"))
    await teams.put_team(Team("tenant-a", "design", ("u1",)))  # other documents of a tenant do not get in the way
    assert await sites.list_all() == [BuildingRef("tenant-a", "b1"), BuildingRef("tenant-a", "b2"),
                                      BuildingRef("tenant-b", "b1")]


class HalfFailingBlobStore:
    """The real Azurite store whose n-th put fails."""

    def __init__(self, inner: AzureBlobStore) -> None:
        self.inner, self.fail_at, self.puts = inner, None, 0

    async def put(self, container, name, data, content_type="application/octet-stream"):
        self.puts += 1
        if self.fail_at == self.puts:
            raise ConnectionError("network went away")
        await self.inner.put(container, name, data, content_type)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
async def azurite_rollups(azurite, tmp_path):
    container = unique_name("analytics")
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        await ensure_blob_containers(service, [container])
        sites, live, teams = InMemorySiteModelStore(), InMemoryLiveStateStore(), InMemoryTeamDirectory()
        await store_site(sites, "tenant-a", site())
        blobs = HalfFailingBlobStore(AzureBlobStore(service))
        yield RollupService(sites, live, blobs, teams, container, 5), live, blobs, teams, container
        await service.delete_container(container)


async def download(blobs, container, root):
    for name in await blobs.list_names(container):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(await blobs.get(container, name))


async def test_rollups_in_azurite_read_with_duckdb(azurite_rollups, tmp_path):
    service, live, blobs, teams, container = azurite_rollups
    await teams.put_team(Team("tenant-a", "design", ("u0", "u1", "u2")))
    await teams.put_team(Team("tenant-a", "sales", ("u3", "u4")))
    for i in range(5):  # 5 people in r-oak 09:00-10:30, opted in; 8 in the kitchen 12:00-12:45
        await live.save_visit(Visit("tenant-a", "hq", "r-oak", f"m{i}", at(26, 9), at(26, 10, 30), f"u{i}"))
    for i in range(8):
        await live.save_visit(Visit("tenant-a", "hq", "k-0", f"k{i}", at(26, 12), at(26, 12, 45)))
    await service.roll_day("tenant-a", site(), THURSDAY, at(27, 6))
    await download(blobs, container, tmp_path)
    glob = (tmp_path / "tenant=*/building=*/grain=*/date=*/spaces-*.parquet").as_posix()
    rows = duckdb.sql(
        f"SELECT grain, space_id, round(sum(occupied_s)) AS occupied, max(peak_headcount) AS peak, "
        f"count(*) AS windows FROM read_parquet('{glob}', hive_partitioning = true) "
        f"WHERE tenant = 'tenant-a' AND building = 'hq' AND date = '2026-11-26' GROUP BY ALL ORDER BY ALL").fetchall()
    assert rows == [("day", "k-0", 2700, 8, 1), ("day", "o-1", 0, 0, 1), ("day", "r-oak", 5400, 5, 1),
                    ("hour", "k-0", 2700, 8, 10), ("hour", "o-1", 0, 0, 10), ("hour", "r-oak", 5400, 5, 10)]
    collaboration = (tmp_path / "tenant=*/building=*/grain=day/date=*/collaboration-*.parquet").as_posix()
    assert duckdb.sql(f"SELECT team_a, team_b, copresence_minutes, suppressed FROM '{collaboration}'").fetchall() == [
        ("design", "sales", 6 * 90.0, False)]  # 3 x 2 pairs x 90 minutes
    types = {row[0]: row[1] for row in duckdb.sql(f"DESCRIBE SELECT * FROM '{glob}'").fetchall()}
    assert types["window_start"] == "TIMESTAMP WITH TIME ZONE" and types["local_date"] == "DATE"


async def test_a_write_failing_half_way_in_azurite_leaves_no_window_visible_and_the_next_run_completes(
        azurite_rollups):
    service, live, blobs, _, container = azurite_rollups
    reader = AnalyticsReader(blobs, container, 5)
    for i in range(6):
        await live.save_visit(Visit("tenant-a", "hq", "o-1", f"d{i}", at(26, 9), at(26, 11)))
    blobs.fail_at = 2  # the day's spaces file is written, its zones file is not
    with pytest.raises(ConnectionError):
        await service.roll_day("tenant-a", site(), THURSDAY, at(27, 6))
    names = await blobs.list_names(container)
    assert len(names) == 1 and "/spaces-" in names[0]  # a data file, but no manifest: not a window yet
    assert (await reader.read("tenant-a", site(), Grain.day, THURSDAY, THURSDAY)).windows == []
    blobs.fail_at = None
    written = await service.roll_day("tenant-a", site(), THURSDAY, at(27, 6))
    assert len(written) == 25 and all(w.final for w in written)
    answer = await reader.read("tenant-a", site(), Grain.day, THURSDAY, THURSDAY, "o-1", ["unique_visitors"])
    assert [r["value"] for r in answer.rows] == [6]
    assert len([n for n in await blobs.list_names(container) if "grain=day" in n]) == 3  # spaces, zones, manifest
