"""Webhook deliveries: an HTTP POST of the CloudEvent (structured JSON), signed per Standard Webhooks with the
`standardwebhooks` library, through a resolver that refuses internal addresses (SSRF).

The target's host name is resolved for every connection and each address checked (is_public_address): a name
that points, or is re-pointed (DNS rebinding), at a private, loopback, link-local or metadata address is refused,
and the connection goes to the address that was checked. Redirects are not followed and proxies from the
environment are not used. `allow_loopback` (WEBHOOK_ALLOW_LOOPBACK, the devkit) lets loopback addresses through.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from standardwebhooks import Webhook

from shared.domain.events import STRUCTURED_CONTENT_TYPE, CloudEvent
from shared.domain.ports import SinkAnswer
from shared.domain.subscriptions import DELIVERY_TIMEOUT, Subscription, is_public_address, webhook_url_problem

logger = logging.getLogger(__name__)

USER_AGENT = "spaceflow-webhooks/1"


class TargetRefused(OSError):
    """The target resolves to an address we do not deliver to."""


class PublicOnlyResolver(AbstractResolver):
    """Resolves with `inner` and keeps only the addresses a webhook may reach; none left: TargetRefused."""

    def __init__(self, inner: AbstractResolver | None = None, allow_loopback: bool = False) -> None:
        self._inner = inner or DefaultResolver()
        self._allow_loopback = allow_loopback

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self.allowed(r["host"])]
        if not allowed:
            raise TargetRefused(f"{host} resolves to no public address")
        return allowed

    def allowed(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return is_public_address(ip) or (self._allow_loopback and ip.is_loopback)

    async def close(self) -> None:
        await self._inner.close()


def signature_headers(secrets: list[str], event_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers: webhook-id (the event id), webhook-timestamp, and one v1 signature per
    secret that signs now (two while a rotated secret overlaps the new one)."""
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(event_id, at, text) for secret in secrets)
    return {"webhook-id": event_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signatures}


class WebhookSink:
    """POSTs each event to its subscription's URL: 5 s for the whole exchange, no redirects, answers up to 64 KB
    read and dropped. `wall_clock` dates the signatures (the receiver checks them against its own clock, so it is
    the real time even when the app runs on a simulated one); `resolver` is for tests."""

    def __init__(self, *, allow_loopback: bool = False, timeout_s: float = DELIVERY_TIMEOUT.total_seconds(),
                 resolver: AbstractResolver | None = None,
                 wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._allow_loopback = allow_loopback
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._resolver = resolver
        self._wall_clock = wall_clock
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:  # created on the event loop that uses it
            resolver = PublicOnlyResolver(self._resolver, allow_loopback=self._allow_loopback)
            connector = aiohttp.TCPConnector(resolver=resolver, limit=512, limit_per_host=32, ttl_dns_cache=None,
                                             use_dns_cache=False)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False,
                                                  headers={"User-Agent": USER_AGENT})
        return self._session

    async def send(self, subscription: Subscription, event: CloudEvent, body: bytes) -> SinkAnswer:
        url = subscription.url
        if url is None:
            return SinkAnswer(None, "the subscription has no URL")
        # The rules the URL was accepted under may have tightened since (the setting): checked at every attempt.
        if problem := webhook_url_problem(url, self._allow_loopback):
            return SinkAnswer(None, f"target refused: {problem}")
        secrets = subscription.signing_secrets(self._wall_clock())
        headers = {"Content-Type": STRUCTURED_CONTENT_TYPE,
                   **signature_headers(secrets, event.id, body, self._wall_clock())}
        try:
            async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as response:
                await response.content.read(64 * 1024)
                return SinkAnswer(response.status)
        except TargetRefused as exc:
            return SinkAnswer(None, f"target refused: {exc}")
        except aiohttp.ClientConnectorError as exc:
            refused = exc.os_error if isinstance(exc.os_error, TargetRefused) else None
            return SinkAnswer(None, f"target refused: {refused}" if refused else "connection failed")
        except TimeoutError:
            return SinkAnswer(None, f"no answer within {self._timeout.total:g} s")
        except aiohttp.ClientError as exc:
            return SinkAnswer(None, type(exc).__name__)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


