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

    configure_azure_monitor(logger_name="shared")
    logger.info("telemetry: Azure Monitor OpenTelemetry configured")
    return True
