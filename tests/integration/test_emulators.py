"""The launchers start real emulators that answer the SDKs, and report a failed start with the emulator's log."""
from __future__ import annotations

import pytest

from devkit.emulators import launcher
from tests.conftest import unique_name


async def test_azurite_answers_the_blob_sdk(blob_service):
    container = blob_service.get_container_client(unique_name("c"))
    await container.create_container()
    await container.upload_blob("a/b.txt", b"hello")
    downloaded = await (await container.download_blob("a/b.txt")).readall()
    assert downloaded == b"hello"


async def test_cosmos_server_answers_the_sdk(cosmos_database):
    from azure.cosmos import PartitionKey

    container = await cosmos_database.create_container(unique_name("c"), partition_key=PartitionKey("/pk"))
    await container.upsert_item({"id": "1", "pk": "a", "n": 1})
    assert (await container.read_item("1", partition_key="a"))["n"] == 1


def test_a_port_in_use_is_refused_with_a_clear_error(azurite):
    with pytest.raises(launcher.EmulatorStartError, match=f"port {azurite.port} .* already in use"):
        launcher.start_azurite(port=azurite.port)


def test_a_failed_start_prints_the_emulator_log(monkeypatch, tmp_path, capsys):
    # A node script that dies at once stands in for a broken emulator install.
    broken = tmp_path / "broken.js"
    broken.write_text('console.log("cannot open the workspace"); process.exit(3);')
    monkeypatch.setattr(launcher, "REPO_ROOT", tmp_path)
    (tmp_path / "devkit" / "emulators").mkdir(parents=True)
    (tmp_path / "devkit" / "emulators" / "cosmos_server.js").write_text(broken.read_text())
    with pytest.raises(launcher.EmulatorStartError) as error:
        launcher.start_cosmos(timeout=10)
    assert "exited with code 3" in str(error.value)
    assert "cannot open the workspace" in str(error.value)
    assert "cannot open the workspace" in capsys.readouterr().err


def test_stop_ends_the_process_group(tmp_path):
    emulator = launcher.start_azurite(log_dir=tmp_path)
    assert emulator.alive()
    emulator.stop()
    assert not emulator.alive()
    assert not launcher.port_in_use(emulator.port)
