"""Triggers are called directly (Core Tools cannot run here), the HTTP function through the Python worker's HTTP
streams server as far as it runs here (`worker`): the function app is imported once and its functions looked up
once; the wiring context is the in-memory one."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from shared.settings import load_settings
from shared.wiring import build_in_memory_context, set_context

REPO = Path(__file__).resolve().parents[2]
LOCAL_VALUES = json.loads((REPO / "local.settings.json").read_text())["Values"]


@pytest.fixture(scope="session")
def functions_by_name():
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


@pytest.fixture
def memory_context():
    context = build_in_memory_context(load_settings(LOCAL_VALUES))
    set_context(context)
    yield context
    set_context(None)


@pytest.fixture
async def api(memory_context):
    """An HTTP client on the app (FastAPI in process) over the in-memory context."""
    from functions.http_api import create_api

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api()), base_url="http://test",
                                 timeout=120) as client:
        yield client


@pytest.fixture
async def worker(functions_by_name):
    """An HTTP client on the function app's HTTP function, served the way the Python worker serves HTTP streams
    (tests/support/functions_worker.py)."""
    from tests.support.functions_worker import WorkerHttp

    async with WorkerHttp(functions_by_name["http_app_func"].get_user_function()) as client:
        yield client
