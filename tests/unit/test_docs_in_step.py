"""The settings the code reads, local.settings.json, the README's table and the published JSON Schemas agree."""
from __future__ import annotations

import json
import re
from pathlib import Path

from devkit.export_schemas import SCHEMA_DIR, generated_schemas
from tests.support.settings_names import setting_names

REPO = Path(__file__).resolve().parents[2]
AZURE_ONLY = {"COSMOS__accountEndpoint", "ANALYTICS_STORAGE__serviceUri", "EVENTHUB__fullyQualifiedNamespace",
              "AZURE_CLIENT_ID", "APPLICATIONINSIGHTS_CONNECTION_STRING", "EVENTGRID_TOPIC_ENDPOINT",
              "GRAPH_NOTIFICATION_URL"}


def test_local_settings_json_holds_every_local_setting_and_nothing_unknown():
    values = json.loads((REPO / "local.settings.json").read_text())["Values"]
    host_settings = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage", "PYTHON_ENABLE_INIT_INDEXING",
                     "OPENBLAS_NUM_THREADS"}
    assert set(values) - host_settings == setting_names() - AZURE_ONLY


def test_readme_configuration_table_names_every_setting():
    readme = (REPO / "README.md").read_text()
    documented = set(re.findall(r"^\| `([A-Za-z_]+)`", readme, flags=re.MULTILINE))
    documented |= set(re.findall(r"^\| `[A-Za-z_]+` / `([A-Za-z_]+)`", readme, flags=re.MULTILINE))
    assert setting_names() <= documented


def test_published_json_schemas_match_the_models():
    for name, text in generated_schemas().items():
        assert (SCHEMA_DIR / name).read_text() == text, f"docs/schemas/{name} is stale: run `make schemas`"
