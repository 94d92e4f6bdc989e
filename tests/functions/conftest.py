"""Triggers are called directly (Core Tools cannot run here): the function app is imported once and its
functions looked up once; the wiring context is an in-memory one."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.adapters.memory import (
    InMemoryApiKeyStore,
    InMemoryBlobStore,
    InMemorySiteModelStore,
    RecordingEventPublisher,
)
from shared.services import EventProcessingService, HealthService, ScheduledJobs
from shared.services.auth import AuthService
from shared.services.ingest import IngestService
from shared.settings import load_settings
from shared.wiring import AppContext, set_context

REPO = Path(__file__).resolve().parents[2]
LOCAL_VALUES = json.loads((REPO / "local.settings.json").read_text())["Values"]


@pytest.fixture(scope="session")
def functions_by_name():
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


@pytest.fixture
def memory_context():
    blobs = InMemoryBlobStore()
    passed: list = []

    async def on_valid(batches):
        passed.extend(batches)

    publisher = RecordingEventPublisher()
    sites = InMemorySiteModelStore()
    context = AppContext(
        settings=load_settings(LOCAL_VALUES), publisher=publisher, site_models=sites, blobs=blobs,
        health=HealthService({"cosmos": sites, "blob": blobs, "eventHub": publisher}, timeout_s=0.5),
        processing=EventProcessingService(blobs, "deadletter", on_valid), scheduled=ScheduledJobs(),
        api_keys=(keys := InMemoryApiKeyStore()), auth=AuthService(keys, LOCAL_VALUES["ADMIN_API_KEY"]),
        ingest=IngestService(publisher),
    )
    context.valid_batches = passed  # type: ignore[attr-defined]
    set_context(context)
    yield context
    set_context(None)
