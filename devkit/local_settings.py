"""local.settings.json under the environment: the devkit's settings. An environment variable always wins over the
file (a user's own ADMIN_API_KEY must not leave the public default working); the file fills in the rest, and the
emulator ports it names are the ones the devkit starts unless the environment or a flag says otherwise."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from devkit.emulators.launcher import REPO_ROOT, azurite_connection_string, cosmos_connection_string

LOCAL_SETTINGS = REPO_ROOT / "local.settings.json"

# A connection is named in one of two forms: `<PREFIX>` (a connection string, locally) or `<PREFIX>__<property>`
# (an identity-based connection, Azure). The environment naming a connection in either form replaces every setting
# of that connection from the file, so that a connection string from the file cannot win over the environment's
# endpoint (Settings prefers the connection string when both are there).
CONNECTION_PREFIXES = ("COSMOS", "ANALYTICS_STORAGE", "EVENTHUB", "AzureWebJobsStorage")


def load_local_settings(path: Path = LOCAL_SETTINGS) -> dict[str, str]:
    """The file's values alone (tests and tools that must not see the caller's environment)."""
    return dict(json.loads(path.read_text())["Values"])


def merged_settings(file_values: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """The file's values under the environment's: every environment variable wins, and one naming a connection in
    either form drops both forms of that connection from the file."""
    merged = dict(file_values)
    for prefix in CONNECTION_PREFIXES:
        if any(_of_connection(name, prefix) for name in environ):
            for name in [n for n in merged if _of_connection(n, prefix)]:
                del merged[name]
    merged.update(environ)
    return merged


def local_settings(environ: Mapping[str, str] | None = None, path: Path = LOCAL_SETTINGS) -> dict[str, str]:
    """local.settings.json under the environment (default: this process's)."""
    return merged_settings(load_local_settings(path), os.environ if environ is None else environ)


def attached_environment(environ: Mapping[str, str] | None = None, path: Path = LOCAL_SETTINGS) -> dict[str, str]:
    """The settings of a command that connects to what is already running (the emulators of `make serve`, or
    Azure with `azd env get-values`): local.settings.json under the environment, and the in-process hub unless the
    environment chooses the publisher or names an Event Hubs namespace (the file's Event Hubs emulator needs
    Docker)."""
    environ = os.environ if environ is None else environ
    env = local_settings(environ, path)
    if "EVENT_PUBLISHER" not in environ and not any(_of_connection(name, "EVENTHUB") for name in environ):
        env["EVENT_PUBLISHER"] = "inprocess"
    return env


def blob_port(values: Mapping[str, str]) -> int:
    match = re.search(r"BlobEndpoint=https?://[^:/]+:(\d+)/", values.get("ANALYTICS_STORAGE", ""))
    if not match:
        raise ValueError("ANALYTICS_STORAGE has no BlobEndpoint with a port: pass --azurite-port")
    return int(match.group(1))


def cosmos_port(values: Mapping[str, str]) -> int:
    match = re.search(r"AccountEndpoint=https?://[^:/]+:(\d+)/", values.get("COSMOS", ""))
    if not match:
        raise ValueError("COSMOS has no AccountEndpoint with a port: pass --cosmos-port")
    return int(match.group(1))


def devkit_environment(values: Mapping[str, str], azurite_port: int, cosmos_port_: int,
                       environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The app's settings for a devkit run on emulators it started: `values` (local.settings.json) under the
    environment (default: this process's), then the emulators' actual ports (the devkit chose them, so they win
    over both) and the in-process Event Hubs adapter (the official Event Hubs emulator needs Docker)."""
    env = merged_settings(values, os.environ if environ is None else environ)
    env["ANALYTICS_STORAGE"] = azurite_connection_string(azurite_port)
    env["COSMOS"] = cosmos_connection_string(cosmos_port_)
    env["EVENT_PUBLISHER"] = "inprocess"
    return env


def _of_connection(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + "__")
