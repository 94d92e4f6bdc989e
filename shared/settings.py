"""The app's settings, read once from the environment (Azure app settings, local.settings.json, devkit).

Connection settings follow the Azure Functions identity convention, so the triggers' `connection=` names and
our own clients read the same keys: in Azure `<PREFIX>__fullyQualifiedNamespace` / `__accountEndpoint` /
`__serviceUri` with a managed identity; locally `<PREFIX>` holds an emulator connection string.
"""
from __future__ import annotations

from enum import Enum
from functools import lru_cache
from typing import Annotated

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.domain.identity import sign_in_origins
from shared.domain.ncrontab import parse_ncrontab

COSMOS_PREFIX = "COSMOS"
EVENTHUB_PREFIX = "EVENTHUB"
ANALYTICS_STORAGE_PREFIX = "ANALYTICS_STORAGE"

# Where Entra ID's people sign in: the dashboard exchanges the authorization code and reads the discovery document
# there (the browser's connect-src must allow it).
DEFAULT_SIGN_IN_ORIGINS = "https://login.microsoftonline.com"

Name = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9\-]*$")]


class PublisherKind(str, Enum):
    eventhub = "eventhub"
    inprocess = "inprocess"


class SettingsError(RuntimeError):
    """Missing or malformed settings; the message names each setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True, populate_by_name=True)

    cosmos_connection_string: str | None = Field(default=None, alias=COSMOS_PREFIX)
    cosmos_endpoint: str | None = Field(default=None, alias=f"{COSMOS_PREFIX}__accountEndpoint")
    cosmos_database: Name = Field(default="spaceflow", alias="COSMOS_DATABASE")

    analytics_storage_connection_string: str | None = Field(default=None, alias=ANALYTICS_STORAGE_PREFIX)
    analytics_storage_service_uri: str | None = Field(default=None, alias=f"{ANALYTICS_STORAGE_PREFIX}__serviceUri")
    analytics_container: Name = Field(default="analytics", alias="ANALYTICS_CONTAINER")
    deadletter_container: Name = Field(default="deadletter", alias="DEADLETTER_CONTAINER")
    sites_container: Name = Field(
        default="sites", alias="SITES_CONTAINER",
        description="blob container of the site models (gzip JSON by version; Cosmos `buildings` points at them)",
    )

    event_publisher: PublisherKind = Field(default=PublisherKind.eventhub, alias="EVENT_PUBLISHER")
    eventhub_connection_string: str | None = Field(default=None, alias=EVENTHUB_PREFIX)
    eventhub_namespace: str | None = Field(default=None, alias=f"{EVENTHUB_PREFIX}__fullyQualifiedNamespace")
    eventhub_name: Name = Field(default="sightings", alias="EVENTHUB_NAME")
    eventhub_consumer_group: str = Field(default="spaceflow-processor", alias="EVENTHUB_CONSUMER_GROUP", min_length=1)

    presence_timeout_seconds: int = Field(
        default=300, alias="PRESENCE_TIMEOUT_SECONDS", ge=30, le=86_400,
        description="a phone not heard for this long leaves its space (closed by the presence sweep)",
    )
    presence_sweep_schedule: str = Field(alias="PRESENCE_SWEEP_SCHEDULE", min_length=11)
    rollup_hourly_schedule: str = Field(alias="ROLLUP_HOURLY_SCHEDULE", min_length=11)
    rollup_daily_schedule: str = Field(alias="ROLLUP_DAILY_SCHEDULE", min_length=11)
    event_delivery_schedule: str = Field(
        default="*/10 * * * * *", alias="EVENT_DELIVERY_SCHEDULE", min_length=11,
        description="NCRONTAB of the event delivery timer (retries, and the outbox the change feed has not relayed)",
    )
    no_show_minutes: int = Field(
        default=10, alias="NO_SHOW_MINUTES", ge=1, le=240,
        description="a booking whose room stays empty this long after its start is a no-show",
    )
    no_show_schedule: str = Field(
        default="0 * * * * *", alias="NO_SHOW_SCHEDULE", min_length=11,
        description="NCRONTAB of the no-show timer (decides bookings past their deadline, releases rooms)",
    )
    booking_sync_schedule: str = Field(
        default="0 */5 * * * *", alias="BOOKING_SYNC_SCHEDULE", min_length=11,
        description="NCRONTAB of the calendar sync timer (iCalendar feeds, Graph delta rounds)",
    )
    graph_renewal_schedule: str = Field(
        default="0 15 * * * *", alias="GRAPH_RENEWAL_SCHEDULE", min_length=11,
        description="NCRONTAB of the timer that creates and renews Graph change notification subscriptions",
    )
    graph_notification_url: str | None = Field(
        default=None, alias="GRAPH_NOTIFICATION_URL", pattern=r"^(https://[^\s]+)?$", max_length=500,
        description="https://<the app's host>/api/v1/graph/notifications: where Graph posts room mailbox changes; "
                    "unset: no subscriptions (the sync timer alone keeps room mailboxes fresh)",
    )
    calendar_allow_loopback: bool = Field(
        default=False, alias="CALENDAR_ALLOW_LOOPBACK",
        description="accept iCalendar feed URLs on loopback, over http too (the demo serves its own feed); false in "
                    "Azure, where only https to public addresses is fetched (SSRF)",
    )
    analytics_min_group_size: int = Field(
        default=5, alias="ANALYTICS_MIN_GROUP_SIZE", ge=2, le=1000,
        description="k-anonymity: analytics cells built from fewer distinct people are suppressed",
    )

    admin_api_key: str | None = Field(
        default=None, alias="ADMIN_API_KEY", min_length=24,
        description="bootstrap admin key (a Key Vault reference in Azure); unset disables it",
    )
    identity_allow_loopback: bool = Field(
        default=False, alias="IDENTITY_ALLOW_LOOPBACK",
        description="accept tenant identity providers on loopback over plain http (the devkit's issuer); "
                    "false in Azure, where a loopback key location could only reach into the instance itself",
    )
    webhook_allow_loopback: bool = Field(
        default=False, alias="WEBHOOK_ALLOW_LOOPBACK",
        description="accept webhook subscriptions to loopback addresses, over http too (the devkit's receiver); "
                    "false in Azure, where only https to public addresses is delivered to (SSRF)",
    )
    eventgrid_topic_endpoint: str | None = Field(
        default=None, alias="EVENTGRID_TOPIC_ENDPOINT", pattern=r"^https://[^\s/]+/api/events$",
        description="the deployment's Event Grid topic (https://<topic>.<region>-1.eventgrid.azure.net/api/events), "
                    "published to with the managed identity; unset: no eventGrid subscriptions",
    )
    dashboard_sign_in_origins: str = Field(
        default=DEFAULT_SIGN_IN_ORIGINS, alias="DASHBOARD_SIGNIN_ORIGINS", max_length=2000,
        description="origins of the issuers people sign in to the dashboard with (comma-separated): its pages may "
                    "connect there (Content-Security-Policy connect-src) for discovery and the code exchange",
    )
    managed_identity_client_id: str | None = Field(
        default=None, alias="AZURE_CLIENT_ID", description="client id of the user-assigned identity in Azure"
    )
    applicationinsights_connection_string: str | None = Field(
        default=None, validation_alias=AliasChoices("APPLICATIONINSIGHTS_CONNECTION_STRING")
    )

    @field_validator("presence_sweep_schedule", "rollup_hourly_schedule", "rollup_daily_schedule",
                     "event_delivery_schedule", "no_show_schedule", "booking_sync_schedule", "graph_renewal_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        parse_ncrontab(value)
        return value

    @field_validator("dashboard_sign_in_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        sign_in_origins(value)
        return value

    @property
    def sign_in_origins(self) -> tuple[str, ...]:
        """DASHBOARD_SIGNIN_ORIGINS as a list of origins."""
        return sign_in_origins(self.dashboard_sign_in_origins)

    @field_validator("admin_api_key")
    @classmethod
    def _resolved_secret(cls, value: str | None) -> str | None:
        # App Service passes the reference through verbatim when Key Vault cannot be reached: never accept that
        # literal (public, guessable) text as the admin key.
        if value is not None and value.startswith("@Microsoft.KeyVault("):
            raise ValueError("the Key Vault reference was not resolved (check the identity's access to the vault)")
        return value

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> Settings:
        missing = []
        if not (self.cosmos_connection_string or self.cosmos_endpoint):
            missing.append(f"{COSMOS_PREFIX}__accountEndpoint (or {COSMOS_PREFIX} as a connection string)")
        if not (self.analytics_storage_connection_string or self.analytics_storage_service_uri):
            missing.append(
                f"{ANALYTICS_STORAGE_PREFIX}__serviceUri (or {ANALYTICS_STORAGE_PREFIX} as a connection string)"
            )
        if self.event_publisher is PublisherKind.eventhub and not (
            self.eventhub_connection_string or self.eventhub_namespace
        ):
            missing.append(f"{EVENTHUB_PREFIX}__fullyQualifiedNamespace (or {EVENTHUB_PREFIX} as a connection string)")
        if missing:
            raise ValueError("missing settings: " + ", ".join(missing))
        return self


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Settings from `environ` (default: the process environment); SettingsError names what is missing or bad."""
    try:
        if environ is None:
            return Settings()
        return Settings.model_validate(dict(environ))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            message = err["msg"].removeprefix("Value error, ")
            if not err["loc"]:
                problems.append(message)
            elif err["type"] == "missing":
                problems.append(f"missing setting {name}")
            else:
                problems.append(f"{name}: {message}")
        raise SettingsError("; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read on first use (never at import time)."""
    return load_settings()
