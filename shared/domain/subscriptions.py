"""Subscriptions to the events: where a tenant's events go (a webhook, a customer's Event Hub, the deployment's
Event Grid topic), which ones, and the webhook's signing secrets (Standard Webhooks `whsec_` keys).

Pure rules: what may be a target (SSRF), which events a subscription takes, secret rotation with overlap,
the retry schedule of a delivery and when a subscription gives up.
"""
from __future__ import annotations

import base64
import enum
import ipaddress
import math
import random
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from shared.domain.events import CloudEvent, EventType

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
ROTATION_OVERLAP = timedelta(hours=24)  # a rotated secret still signs (beside the new one) this long
MAX_URL_LENGTH = 2048
MAX_SUBSCRIPTIONS_PER_TENANT = 200

# Delivery: each attempt has DELIVERY_TIMEOUT; failures are retried with exponential backoff and full jitter
# (FIRST_RETRY doubling up to MAX_RETRY_DELAY) for GIVE_UP_AFTER from the first attempt; then the subscription
# is disabled and says why.
DELIVERY_TIMEOUT = timedelta(seconds=5)
FIRST_RETRY = timedelta(seconds=5)
MAX_RETRY_DELAY = timedelta(hours=1)
GIVE_UP_AFTER = timedelta(hours=24)

_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")
_EVENTHUB_NAMESPACE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]\.servicebus\.windows\.net$")
_EVENTHUB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class SubscriptionStatus(str, enum.Enum):
    active = "active"
    paused = "paused"  # by its owner (PATCH); deliveries wait
    disabled = "disabled"  # by us: the target failed for 24 h, or answered 410 Gone; `disabledReason` says which


class SinkKind(str, enum.Enum):
    webhook = "webhook"
    event_hub = "eventHub"
    event_grid = "eventGrid"


@dataclass(frozen=True)
class SigningSecret:
    value: str  # whsec_<base64>
    created_at: datetime
    expires_at: datetime | None = None  # set when a newer secret replaced it


@dataclass(frozen=True)
class EventHubTarget:
    """A hub in the customer's namespace, on which they granted our managed identity Azure Event Hubs Data Sender."""

    namespace: str  # <name>.servicebus.windows.net
    hub: str


@dataclass(frozen=True)
class Subscription:
    tenant_id: str
    subscription_id: str
    sink: SinkKind
    created_at: datetime
    url: str | None = None
    event_hub: EventHubTarget | None = None
    types: frozenset[EventType] = frozenset()  # empty: all types
    building_id: str | None = None  # None: every building of the tenant
    paused: bool = False
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    secrets: tuple[SigningSecret, ...] = ()
    etag: str | None = None

    @property
    def status(self) -> SubscriptionStatus:
        if self.disabled_reason is not None:
            return SubscriptionStatus.disabled
        return SubscriptionStatus.paused if self.paused else SubscriptionStatus.active

    @property
    def active(self) -> bool:
        return self.status is SubscriptionStatus.active

    @property
    def key(self) -> str:
        return f"{self.tenant_id}|{self.subscription_id}"

    def takes(self, event: CloudEvent) -> bool:
        """Whether the event is one this subscription asked for (tenant, building, type)."""
        building = event.building
        return (building.tenant_id == self.tenant_id
                and (self.building_id is None or building.building_id == self.building_id)
                and (not self.types or event.type in self.types))

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets that sign now: the current one and any rotated one within its overlap."""
        return [s.value for s in self.secrets if s.expires_at is None or s.expires_at > now]


def new_secret(token_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(SECRET_BYTES)).decode()


def rotate_secret(subscription: Subscription, now: datetime, secret: str) -> Subscription:
    """`secret` becomes the current one; the current one keeps signing for ROTATION_OVERLAP; expired ones go."""
    kept = [s if s.expires_at is not None else replace(s, expires_at=now + ROTATION_OVERLAP)
            for s in subscription.secrets if s.expires_at is None or s.expires_at > now]
    return replace(subscription, secrets=(*kept, SigningSecret(secret, now)))


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable: not private, loopback, link-local (169.254.169.254, the instance metadata), shared,
    multicast, reserved or unspecified; an IPv4-mapped IPv6 address is judged by its IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def webhook_url_problem(url: str, allow_loopback: bool) -> str | None:
    """Why `url` cannot be a webhook target, or None. https to a public host; with `allow_loopback` (the devkit
    only) also http(s) to a loopback address. A host name is checked again when it is resolved, at every delivery
    (an address that resolves to an internal network is refused then)."""
    if len(url) > MAX_URL_LENGTH or not _PRINTABLE.match(url):
        return f"at most {MAX_URL_LENGTH} printable characters, no spaces"
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return "not a URL"
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL"
    if parts.username is not None or parts.password is not None or parts.fragment:
        return "must have no user name, password or fragment"
    loopback = host == "localhost" or host.endswith(".localhost") or _is_loopback_literal(host)
    if loopback:
        return None if allow_loopback else "loopback addresses are not allowed"
    if parts.scheme != "https":
        return "must be an https:// URL"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if "." not in host or host.endswith((".internal", ".local", ".lan", ".home.arpa")):
            return "must name a public host"
        return None
    if not is_public_address(address):
        return "must not name a private, link-local or otherwise internal address"
    return None


def _is_loopback_literal(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def event_hub_problem(namespace: str, hub: str) -> list[tuple[str, str]]:
    problems = []
    if not _EVENTHUB_NAMESPACE.match(namespace):
        problems.append(("eventHub.namespace", "a namespace host name: <name>.servicebus.windows.net"))
    if not _EVENTHUB_NAME.match(hub):
        problems.append(("eventHub.hub", "an Event Hub name: letters, digits, '.', '_' and '-', at most 256"))
    return problems


@dataclass(frozen=True)
class AttemptRecord:
    at: datetime
    status_code: int | None  # None: no answer (timeout, refused connection, a refused target)
    latency_ms: float
    error: str | None = None


class DeliveryStatus(str, enum.Enum):
    pending = "pending"
    delivered = "delivered"
    held = "held"  # its subscription is paused or disabled: waits, is not attempted


ATTEMPTS_KEPT = 20


@dataclass(frozen=True)
class Delivery:
    """One event for one subscription (id: the event's id), with its attempts."""

    tenant_id: str
    subscription_id: str
    event: CloudEvent
    status: DeliveryStatus
    next_attempt_at: datetime
    attempts: int = 0
    first_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    log: tuple[AttemptRecord, ...] = ()
    etag: str | None = None

    @property
    def subscription_key(self) -> str:
        return f"{self.tenant_id}|{self.subscription_id}"

    @property
    def event_id(self) -> str:
        return self.event.id

    def attempted(self, record: AttemptRecord) -> Delivery:
        return replace(self, attempts=self.attempts + 1, first_attempt_at=self.first_attempt_at or record.at,
                       log=(*self.log, record)[-ATTEMPTS_KEPT:])


def retry_delay(attempts: int, rand: Callable[[], float] = random.random) -> timedelta:
    """The wait after `attempts` failed attempts: exponential (5 s, 10 s, 20 s ... at most an hour) with full
    jitter, so receivers coming back are not hit by every sender at once."""
    ceiling = min(MAX_RETRY_DELAY.total_seconds(), FIRST_RETRY.total_seconds() * math.pow(2, max(0, attempts - 1)))
    return timedelta(seconds=max(1.0, ceiling * rand()))


@dataclass(frozen=True)
class Outcome:
    """What one attempt did to a delivery and its subscription."""

    delivery: Delivery
    disable_reason: str | None = None


def after_attempt(delivery: Delivery, record: AttemptRecord, target: str,
                  rand: Callable[[], float] = random.random) -> Outcome:
    """The delivery after an attempt: delivered on 2xx; 410 Gone disables the subscription at once; any other
    failure is retried after `retry_delay`, unless the first attempt was GIVE_UP_AFTER ago: then the subscription
    is disabled, saying why (the delivery stays pending for when it is enabled again)."""
    attempted = delivery.attempted(record)
    if record.status_code is not None and 200 <= record.status_code < 300:
        return Outcome(replace(attempted, status=DeliveryStatus.delivered, delivered_at=record.at))
    what = f"HTTP {record.status_code}" if record.status_code is not None else (record.error or "no answer")
    if record.status_code == 410:
        return Outcome(replace(attempted, status=DeliveryStatus.held),
                       f"{target} answered 410 Gone at {record.at.isoformat()}: the receiver unsubscribed")
    first = attempted.first_attempt_at or record.at
    if record.at - first >= GIVE_UP_AFTER:
        return Outcome(replace(attempted, status=DeliveryStatus.held),
                       f"no successful delivery to {target} for 24 hours since {first.isoformat()} "
                       f"({attempted.attempts} attempts; the last: {what})")
    return Outcome(replace(attempted, next_attempt_at=record.at + retry_delay(attempted.attempts, rand)))
