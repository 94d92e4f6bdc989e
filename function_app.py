"""The Azure Functions entry point: builds the app and registers the functions, nothing else.

HTTP is one anonymous catch-all function using the Python worker's HTTP streams (the extension imported below
turns them on; the host needs PYTHON_ENABLE_INIT_INDEXING=1 and runtime 4.34.1 or later): it runs the FastAPI
app on the worker's request and streams its answer back (functions/asgi_bridge.py, docs/streaming.md). host.json
sets routePrefix "", and the FastAPI routes carry /api themselves. No client connects here: shared.wiring builds
them on first use.
"""
import logging
import os

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from functions import asgi_bridge, events, processing, timers
from functions.http_api import create_api
from shared.runtime import configure_worker_gc
from shared.telemetry import configure_telemetry

configure_telemetry()
api = create_api()
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Under the Functions host (FUNCTIONS_WORKER_RUNTIME is set) without the setting, the worker never starts its HTTP
# server and every HTTP invocation waits for a request that does not come: say why, in the app's log.
if os.environ.get("FUNCTIONS_WORKER_RUNTIME") and os.environ.get("PYTHON_ENABLE_INIT_INDEXING", "").lower() not in (
        "1", "true"):
    logging.getLogger(__name__).error("PYTHON_ENABLE_INIT_INDEXING is not 1: the HTTP functions cannot be served")


@app.function_name("http_app_func")
# Every method of HttpMethod: the app answers 405 itself for one a route does not take. Our API keys are checked by
# the app's request gate, not by the host's function keys.
@app.route(route="{*route}", methods=list(func.HttpMethod), auth_level=func.AuthLevel.ANONYMOUS)
async def http_app_func(req: Request) -> Response:
    return await asgi_bridge.serve(api, req)


app.register_functions(processing.bp)
app.register_functions(timers.bp)
app.register_functions(events.bp)

if os.environ.get("FUNCTIONS_WORKER_RUNTIME"):  # the worker process, not a test importing the app
    configure_worker_gc()
