"""The real wiring against the emulators: bootstrap, health, and in-process delivery into dead letters in Azurite."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from devkit.emulators.launcher import start_azurite
from devkit.local_settings import devkit_environment, load_local_settings
from shared.domain.ports import OutboundEvent
from shared.settings import load_settings
from shared.wiring import build_context
from tests.conftest import unique_name


def environment(azurite_port: int, cosmos_port: int) -> dict[str, str]:
    env = devkit_environment(load_local_settings(), azurite_port, cosmos_port)
    env["COSMOS_DATABASE"] = unique_name("wiring")
    env["DEADLETTER_CONTAINER"] = unique_name("deadletter")
    env["ANALYTICS_CONTAINER"] = unique_name("analytics")
    return env


async def test_context_bootstraps_and_reports_healthy(azurite, cosmos):
    settings = load_settings(environment(azurite.port, cosmos.port))
    context = await build_context(settings)
    try:
        statuses = {s.name: s for s in await context.health.check()}
        assert all(s.ok for s in statuses.values()), statuses
        assert set(statuses) == {"cosmos", "blob", "eventHub"}
    finally:
        await context.close()


async def test_in_process_delivery_dead_letters_bad_events_into_blob(azurite, cosmos):
    settings = load_settings(environment(azurite.port, cosmos.port))
    context = await build_context(settings)
    try:
        await context.publisher.publish([OutboundEvent("install-0001", b"not json at all")])
        await context.publisher.drain()
        [name] = await context.blobs.list_names(settings.deadletter_container)
        letter = json.loads(await context.blobs.get(settings.deadletter_container, name))
        assert letter["partitionKey"] == "install-0001" and letter["reason"] == "invalid"
        assert name.startswith(f"{datetime.now(UTC):%Y/%m/%d}/")
    finally:
        await context.close()


async def test_health_reports_a_stopped_emulator_as_down(cosmos, tmp_path):
    own_azurite = start_azurite(log_dir=tmp_path)
    settings = load_settings(environment(own_azurite.port, cosmos.port))
    context = await build_context(settings)
    try:
        own_azurite.stop()
        statuses = {s.name: s for s in await context.health.check()}
        assert not statuses["blob"].ok and statuses["blob"].detail
        assert statuses["cosmos"].ok
    finally:
        own_azurite.stop()
        await context.close()
