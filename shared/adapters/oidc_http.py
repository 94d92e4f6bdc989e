"""An OpenID Connect issuer's discovery document and key set over HTTPS (aiohttp: never blocks the event loop)."""
from __future__ import annotations

import json
from typing import Any

import aiohttp

from shared.domain.ports import DependencyUnavailable

FETCH_TIMEOUT_S = 5.0  # a token check waits at most this long for a slow issuer
MAX_DOCUMENT_BYTES = 256 * 1024  # Entra's key set is ~10 KB; bounded so a hostile URL cannot fill memory
DEPENDENCY = "identity provider"


class AiohttpIssuerDocuments:
    """GETs JSON documents with a timeout, a size limit and no redirects (a key location is used as configured,
    never where it points to). TLS is verified; proxies from the environment are not used."""

    def __init__(self, timeout_s: float = FETCH_TIMEOUT_S, max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    async def fetch_json(self, url: str) -> dict[str, Any]:
        if self._session is None or self._session.closed:  # created on the event loop that uses it
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={"Accept": "application/json"})
        try:
            async with self._session.get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise DependencyUnavailable(DEPENDENCY, f"HTTP {response.status}")
                body = await response.content.read(self._max_bytes + 1)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DependencyUnavailable(DEPENDENCY, type(exc).__name__) from exc
        if len(body) > self._max_bytes:
            raise DependencyUnavailable(DEPENDENCY, f"document larger than {self._max_bytes} bytes")
        try:
            document = json.loads(body)
        except ValueError:
            raise DependencyUnavailable(DEPENDENCY, "not JSON") from None
        if not isinstance(document, dict):
            raise DependencyUnavailable(DEPENDENCY, "not a JSON object")
        return document

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
