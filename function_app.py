"""The Azure Functions entry point: builds the app and registers the blueprints, nothing else.

HTTP goes through FastAPI (AsgiFunctionApp's catch-all route; host.json sets routePrefix "" and the FastAPI
routes carry /api themselves). No client connects here: shared.wiring builds them on first use.
"""
import azure.functions as func

from functions import events, processing, timers
from functions.http_api import create_api
from shared.telemetry import configure_telemetry

configure_telemetry()
app = func.AsgiFunctionApp(app=create_api(), http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(processing.bp)
app.register_functions(timers.bp)
app.register_functions(events.bp)
