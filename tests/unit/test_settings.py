"""Settings: read from the environment once, failing fast with the name of what is missing or wrong."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.adapters.cosmos import parse_cosmos_connection
from shared.settings import PublisherKind, SettingsError, load_settings

SCHEDULES = {"PRESENCE_SWEEP_SCHEDULE": "*/30 * * * * *", "ROLLUP_HOURLY_SCHEDULE": "0 5 * * * *",
             "ROLLUP_DAILY_SCHEDULE": "0 20 * * * *"}
AZURE = {
    **SCHEDULES,
    "COSMOS__accountEndpoint": "https://acct.documents.azure.com:443/",
    "ANALYTICS_STORAGE__serviceUri": "https://acct.blob.core.windows.net",
    "EVENTHUB__fullyQualifiedNamespace": "ns.servicebus.windows.net",
    "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
}


def test_azure_identity_settings_are_enough():
    settings = load_settings(AZURE)
    assert settings.cosmos_endpoint.startswith("https://acct.")
    assert settings.cosmos_connection_string is None
    assert settings.event_publisher is PublisherKind.eventhub
    assert settings.eventhub_name == "sightings" and settings.cosmos_database == "spaceflow"
    connection = parse_cosmos_connection(settings)
    assert connection.key is None and not connection.local and connection.options == {}


def test_local_settings_json_is_complete_and_points_at_loopback():
    values = json.loads(Path("local.settings.json").read_text())["Values"]
    settings = load_settings(values)
    assert settings.cosmos_connection_string and settings.analytics_storage_connection_string
    connection = parse_cosmos_connection(settings)
    assert connection.local and connection.options["connection_verify"] is False


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("COSMOS__accountEndpoint", "COSMOS__accountEndpoint (or COSMOS as a connection string)"),
        ("ANALYTICS_STORAGE__serviceUri", "ANALYTICS_STORAGE__serviceUri"),
        ("EVENTHUB__fullyQualifiedNamespace", "EVENTHUB__fullyQualifiedNamespace"),
        ("ROLLUP_HOURLY_SCHEDULE", "missing setting ROLLUP_HOURLY_SCHEDULE"),
    ],
)
def test_a_missing_setting_is_named(missing, named):
    environ = {k: v for k, v in AZURE.items() if k != missing}
    with pytest.raises(SettingsError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_settings(environ)


def test_event_hub_is_not_needed_with_the_in_process_publisher():
    environ = {k: v for k, v in AZURE.items() if not k.startswith("EVENTHUB")}
    assert load_settings({**environ, "EVENT_PUBLISHER": "inprocess"}).event_publisher is PublisherKind.inprocess


@pytest.mark.parametrize(
    ("name", "value"),
    [("ROLLUP_DAILY_SCHEDULE", "0 5 * *"), ("PRESENCE_SWEEP_SCHEDULE", "0 61 * * * *"),
     ("EVENT_PUBLISHER", "kafka"), ("COSMOS_DATABASE", "Bad Name")],
)
def test_a_malformed_setting_is_named(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({**AZURE, name: value})


def test_only_loopback_cosmos_skips_tls_verification():
    remote = load_settings({**AZURE, "COSMOS": "AccountEndpoint=https://acct.documents.azure.com:443/;AccountKey=abc;"})
    assert parse_cosmos_connection(remote).options == {}
    local = load_settings({**AZURE, "COSMOS": "AccountEndpoint=https://localhost:8081/;AccountKey=abc;"})
    assert parse_cosmos_connection(local).options["connection_verify"] is False


def test_an_unresolved_key_vault_reference_is_not_an_admin_key():
    reference = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/admin-api-key/)"
    with pytest.raises(SettingsError, match="ADMIN_API_KEY: .*not resolved"):
        load_settings({**AZURE, "ADMIN_API_KEY": reference})


def test_loopback_identity_providers_are_refused_unless_local_development_allows_them():
    assert load_settings(AZURE).identity_allow_loopback is False  # unset: the safe default
    values = json.loads(Path("local.settings.json").read_text())["Values"]
    assert load_settings(values).identity_allow_loopback is True
    with pytest.raises(SettingsError, match="IDENTITY_ALLOW_LOOPBACK"):
        load_settings({**AZURE, "IDENTITY_ALLOW_LOOPBACK": "sometimes"})


def test_the_dashboard_may_reach_entra_id_by_default_and_only_origins_are_accepted():
    assert load_settings(AZURE).sign_in_origins == ("https://login.microsoftonline.com",)
    both = load_settings({**AZURE, "DASHBOARD_SIGNIN_ORIGINS": "https://login.microsoftonline.com,https://*.ciamlogin.com"})
    assert both.sign_in_origins == ("https://login.microsoftonline.com", "https://*.ciamlogin.com")
    assert load_settings({**AZURE, "DASHBOARD_SIGNIN_ORIGINS": ""}).sign_in_origins == ()
    with pytest.raises(SettingsError, match="DASHBOARD_SIGNIN_ORIGINS: .*not an origin"):
        load_settings({**AZURE, "DASHBOARD_SIGNIN_ORIGINS": "https://idp.example.com; script-src *"})
