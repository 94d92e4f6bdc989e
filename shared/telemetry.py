"""OpenTelemetry to Application Insights when the connection string is set (Azure); nothing locally."""
from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)


def configure_telemetry() -> bool:
    """Install the Azure Monitor distro once; True when it was configured."""
    if not os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"):
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    options = {}
    client_id = os.environ.get("AZURE_CLIENT_ID")
    if client_id:
        # Application Insights is deployed with local auth off: telemetry must carry the identity's token.
        from azure.identity import ManagedIdentityCredential

        options["credential"] = ManagedIdentityCredential(client_id=client_id)
    configure_azure_monitor(logger_name="shared", **options)
    logger.info("telemetry: Azure Monitor OpenTelemetry configured")
    return True
