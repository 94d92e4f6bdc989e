"""local.settings.json as the devkit's source of truth: the emulator ports it names are the ones devkit starts."""
from __future__ import annotations

import json
import re
from pathlib import Path

from devkit.emulators.launcher import REPO_ROOT, azurite_connection_string, cosmos_connection_string

LOCAL_SETTINGS = REPO_ROOT / "local.settings.json"


def load_local_settings(path: Path = LOCAL_SETTINGS) -> dict[str, str]:
    return dict(json.loads(path.read_text())["Values"])


def blob_port(values: dict[str, str]) -> int:
    match = re.search(r"BlobEndpoint=https?://[^:/]+:(\d+)/", values["ANALYTICS_STORAGE"])
    if not match:
        raise ValueError("ANALYTICS_STORAGE in local.settings.json has no BlobEndpoint with a port")
    return int(match.group(1))


def cosmos_port(values: dict[str, str]) -> int:
    match = re.search(r"AccountEndpoint=https?://[^:/]+:(\d+)/", values["COSMOS"])
    if not match:
        raise ValueError("COSMOS in local.settings.json has no AccountEndpoint with a port")
    return int(match.group(1))


def devkit_environment(values: dict[str, str], azurite_port: int, cosmos_port_: int) -> dict[str, str]:
    """The app's settings for a devkit run: local.settings.json with the emulators' actual ports and the
    in-process Event Hubs adapter (the official Event Hubs emulator needs Docker)."""
    env = dict(values)
    env["ANALYTICS_STORAGE"] = azurite_connection_string(azurite_port)
    env["COSMOS"] = cosmos_connection_string(cosmos_port_)
    env["EVENT_PUBLISHER"] = "inprocess"
    return env
