"""The devkit's settings: local.settings.json under the environment, the devkit's own emulator ports over both."""
from __future__ import annotations

from devkit.emulators.launcher import azurite_connection_string, cosmos_connection_string
from devkit.local_settings import (
    attached_environment,
    blob_port,
    cosmos_port,
    devkit_environment,
    load_local_settings,
    merged_settings,
)
from shared.settings import load_settings

FILE = load_local_settings()
OWN_KEY = "my-own-admin-key-0123456789abcdef"


def test_every_environment_variable_wins_over_the_file():
    merged = merged_settings(FILE, {"ADMIN_API_KEY": OWN_KEY, "PRESENCE_TIMEOUT_SECONDS": "120"})
    assert merged["ADMIN_API_KEY"] == OWN_KEY and merged["PRESENCE_TIMEOUT_SECONDS"] == "120"
    assert merged["COSMOS_DATABASE"] == FILE["COSMOS_DATABASE"]  # the file fills in the rest
    assert load_settings(merged).admin_api_key == OWN_KEY


def test_a_connection_named_in_the_environment_in_either_form_replaces_the_files():
    azure = {"COSMOS__accountEndpoint": "https://acct.documents.azure.com:443/",
             "ANALYTICS_STORAGE__serviceUri": "https://acct.blob.core.windows.net"}
    merged = merged_settings(FILE, azure)
    # The file's emulator connection strings would otherwise win: Settings prefers a connection string.
    assert "COSMOS" not in merged and "ANALYTICS_STORAGE" not in merged
    assert merged["COSMOS_DATABASE"] == FILE["COSMOS_DATABASE"] and merged["EVENTHUB"] == FILE["EVENTHUB"]
    settings = load_settings(merged)
    assert settings.cosmos_connection_string is None and settings.cosmos_endpoint == azure["COSMOS__accountEndpoint"]
    # and the other way round: a connection string in the environment drops the file's identity settings
    assert "EVENTHUB__credential" not in merged_settings({**FILE, "EVENTHUB__credential": "x"}, {"EVENTHUB": "y"})


def test_the_devkits_own_emulator_ports_win_over_the_environment_and_the_file():
    environ = {"ADMIN_API_KEY": OWN_KEY, "COSMOS": cosmos_connection_string(9999),
               "EVENT_PUBLISHER": "eventhub"}
    env = devkit_environment(FILE, azurite_port=41000, cosmos_port_=42000, environ=environ)
    assert env["COSMOS"] == cosmos_connection_string(42000)
    assert env["ANALYTICS_STORAGE"] == azurite_connection_string(41000)
    assert env["EVENT_PUBLISHER"] == "inprocess"  # no Event Hubs without Docker
    assert env["ADMIN_API_KEY"] == OWN_KEY


def test_the_emulator_ports_to_start_come_from_the_environment_first():
    values = merged_settings(FILE, {"COSMOS": cosmos_connection_string(18081),
                                    "ANALYTICS_STORAGE": azurite_connection_string(20000)})
    assert (cosmos_port(values), blob_port(values)) == (18081, 20000)
    assert (cosmos_port(FILE), blob_port(FILE)) == (8081, 10000)


def test_commands_that_attach_use_the_in_process_hub_unless_the_environment_picks_event_hubs():
    assert attached_environment({})["EVENT_PUBLISHER"] == "inprocess"
    assert attached_environment({"EVENT_PUBLISHER": "eventhub"})["EVENT_PUBLISHER"] == "eventhub"
    azd = {"EVENTHUB__fullyQualifiedNamespace": "ns.servicebus.windows.net"}
    assert attached_environment(azd)["EVENT_PUBLISHER"] == FILE["EVENT_PUBLISHER"] == "eventhub"
