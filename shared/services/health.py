"""Health: a real round trip to every dependency, concurrently, each bounded by a timeout."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class Checkable(Protocol):
    async def check(self) -> None: ...


@dataclass(frozen=True)
class DependencyStatus:
    name: str
    ok: bool
    latency_ms: float
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {"status": "ok" if self.ok else "down", "latencyMs": self.latency_ms}
        if self.detail:
            result["detail"] = self.detail
        return result


class HealthService:
    """Asks every dependency for a real round trip, concurrently, each bounded by a timeout."""

    def __init__(self, dependencies: Mapping[str, Checkable], timeout_s: float = 3.0) -> None:
        self._dependencies = dict(dependencies)
        self._timeout_s = timeout_s

    async def check(self) -> list[DependencyStatus]:
        return list(await asyncio.gather(*(self._check_one(n, d) for n, d in self._dependencies.items())))

    async def _check_one(self, name: str, dependency: Checkable) -> DependencyStatus:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(dependency.check(), self._timeout_s)
            ok, detail = True, ""
        except TimeoutError:
            ok, detail = False, f"no answer within {self._timeout_s:g} s"
        except Exception as exc:  # noqa: BLE001 - a health check reports any failure instead of raising it
            ok, detail = False, str(exc) or type(exc).__name__
            logger.warning("health: %s is down: %s", name, type(exc).__name__)
        return DependencyStatus(name, ok, round((time.perf_counter() - started) * 1000, 1), detail)
