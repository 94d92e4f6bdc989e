"""The Cosmos database and containers the app needs, kept in place: what goes missing is re-created, or named.

A restored backup, a deleted database or a dropped container leaves every call failing with 404 for good. Every
Cosmos adapter reaches its containers through one CosmosSchema (`schema.database`), which:

- tells a missing database or container from a missing item: Cosmos answers 404 with sub-status 1003 ("owner
  resource does not exist") for an operation under a missing database or container, and 404 with sub-status 0 for
  a missing item; a 404 to a request that addresses no item (a read of the container or database itself, which
  the SDK makes before the first call to a container, a query, a create, an upsert) can only mean the owner;
- re-creates the schema (`ensure_cosmos_schema`) once for all the calls that hit it, behind a lock; a failed
  re-creation is not tried again before a backoff (1 s doubling to 60 s) has passed, so a storm of requests does
  not hammer the account, and the calls meanwhile fail at once;
- retries the call once after a re-creation; when the schema cannot be re-created (in Azure the app's identity
  holds data-plane roles only, which cannot create containers: redeploy the infrastructure), the call fails with
  DependencyUnavailable naming the missing database or container: 503 problem+json on the API, a retried delivery
  in processing;
- turns the SDK's connection errors into DependencyUnavailable for every call (503, never an unhandled 500);
- is the health check of Cosmos: the database and every container must exist (`check`).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

from azure.core.exceptions import AzureError, ServiceRequestError, ServiceResponseError
from azure.cosmos.aio import ContainerProxy, CosmosClient, DatabaseProxy
from azure.cosmos.exceptions import CosmosHttpResponseError, CosmosResourceNotFoundError

from shared.adapters.cosmos import COSMOS_CONTAINERS, ContainerSpec, ensure_cosmos_schema, unavailable
from shared.domain.ports import DependencyUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

OWNER_RESOURCE_NOT_FOUND = 1003  # Cosmos sub-status of a 404: the database or container addressed does not exist

Bootstrap = Callable[[CosmosClient, str, tuple[ContainerSpec, ...]], Awaitable[Any]]


@dataclass(frozen=True)
class MissingResource:
    database: str
    container: str | None = None  # None: the database itself is missing

    def __str__(self) -> str:
        if self.container is None:
            return f"database '{self.database}'"
        return f"container '{self.container}' of database '{self.database}'"


def is_missing_owner(exc: CosmosHttpResponseError) -> bool:
    """Whether a Cosmos error says that the database or container of the call does not exist (not an item)."""
    if exc.status_code != 404:
        return False
    if exc.sub_status == OWNER_RESOURCE_NOT_FOUND:
        return True
    request = getattr(getattr(exc, "response", None), "request", None)
    if request is None:
        return False
    segments = [s for s in urlparse(request.url).path.split("/") if s]
    # /dbs/{db}/colls/{c}/docs/{id} addresses an item: without sub-status 1003 its 404 is the item's. Every shorter
    # path (the database, the container, the container's docs feed) addresses the owner itself.
    return not (len(segments) >= 6 and segments[4] == "docs")


class CosmosSchema:
    """One per Cosmos client: the adapters' way in (`database`), the re-creation of what is missing, the health
    check. `bootstrap` and `monotonic` are for tests."""

    def __init__(self, client: CosmosClient, database_name: str,
                 containers: tuple[ContainerSpec, ...] = COSMOS_CONTAINERS, *,
                 bootstrap: Bootstrap | None = None, monotonic: Callable[[], float] = time.monotonic,
                 min_backoff_s: float = 1.0, max_backoff_s: float = 60.0) -> None:
        self._client = client
        self.database_name = database_name
        self._containers = containers
        self._bootstrap = bootstrap
        self._monotonic = monotonic
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._backoff_s = min_backoff_s
        self._retry_at = 0.0
        self._lock = asyncio.Lock()
        self._raw = client.get_database_client(database_name)
        self.database = GuardedDatabase(self, self._raw)
        self.generation = 0  # rises with every re-creation: a call that failed before it just retries
        self.missing: MissingResource | None = None  # what the last failed re-creation was for
        self.recreated = 0
        self.bootstrap_attempts = 0

    async def ensure(self) -> None:
        """Create the database and containers that are missing (the start-up bootstrap)."""
        await self._create()

    async def check(self) -> None:
        """Raise DependencyUnavailable naming the database or the containers that do not exist."""
        try:
            await self._raw.read()
            present = {properties["id"] async for properties in self._raw.list_containers()}
        except CosmosResourceNotFoundError:
            raise DependencyUnavailable("cosmos", f"{MissingResource(self.database_name)} does not exist") from None
        except AzureError as exc:
            raise unavailable(exc) from exc
        absent = [spec.name for spec in self._containers if spec.name not in present]
        if absent:
            names = ", ".join(f"'{name}'" for name in absent)
            noun = "container" if len(absent) == 1 else "containers"
            raise DependencyUnavailable("cosmos", f"{noun} {names} of database '{self.database_name}' "
                                                  f"{'does' if len(absent) == 1 else 'do'} not exist")

    async def recover(self, container: str, seen_generation: int) -> None:
        """After a call under `container` found its owner missing: re-create the schema unless that happened since
        the call started; raises DependencyUnavailable naming what is missing when it cannot."""
        async with self._lock:
            if self.generation != seen_generation:
                return
            now = self._monotonic()
            if now < self._retry_at:
                raise self._unavailable(self.missing or MissingResource(self.database_name, container),
                                        "re-creating it failed moments ago", self._retry_at - now)
            missing = await self._identify(container)
            logger.warning("cosmos: %s does not exist (a restored backup? deleted?): re-creating the database and "
                           "containers", missing)
            self.bootstrap_attempts += 1
            try:
                await self._create()
            except Exception as exc:  # any failure: named in a 503, tried again after the backoff
                self._failed(missing, now)
                logger.error("cosmos: could not re-create %s: %s", missing, type(exc).__name__)
                raise self._unavailable(missing, f"re-creating it failed ({type(exc).__name__})",
                                        self._retry_at - now) from exc
            self.generation += 1
            self.recreated += 1
            self.missing = None
            self._backoff_s, self._retry_at = self._min_backoff_s, 0.0
            logger.warning("cosmos: re-created the database and containers (%s was missing)", missing)

    def still_missing(self, container: str) -> DependencyUnavailable:
        """The call failed again right after a re-creation: back off and say what is missing."""
        missing = MissingResource(self.database_name, container)
        now = self._monotonic()
        self._failed(missing, now)
        return self._unavailable(missing, "it is still missing after re-creating the schema", self._retry_at - now)

    async def _create(self) -> None:
        await (self._bootstrap or ensure_cosmos_schema)(self._client, self.database_name, self._containers)

    async def _identify(self, container: str) -> MissingResource:
        try:
            await self._raw.read()
        except CosmosResourceNotFoundError:
            return MissingResource(self.database_name)
        except AzureError:
            pass  # cannot tell: the container is what the call addressed
        return MissingResource(self.database_name, container)

    def _failed(self, missing: MissingResource, now: float) -> None:
        self.missing = missing
        self._retry_at = now + self._backoff_s
        self._backoff_s = min(self._max_backoff_s, self._backoff_s * 2)

    @staticmethod
    def _unavailable(missing: MissingResource, why: str, retry_after_s: float) -> DependencyUnavailable:
        return DependencyUnavailable("cosmos", f"{missing} does not exist; {why}",
                                     retry_after_s=max(1, math.ceil(retry_after_s)))


class GuardedDatabase:
    """What the adapters receive instead of a DatabaseProxy: the same calls, guarded."""

    def __init__(self, schema: CosmosSchema, database: DatabaseProxy) -> None:
        self._schema = schema
        self._database = database
        self.id = database.id

    def get_container_client(self, container: str) -> GuardedContainer:
        return GuardedContainer(self._schema, self._database.get_container_client(container))

    async def read(self, **kwargs: Any) -> dict[str, Any]:
        try:
            return await self._database.read(**kwargs)
        except CosmosResourceNotFoundError:
            raise DependencyUnavailable(
                "cosmos", f"{MissingResource(self._schema.database_name)} does not exist") from None
        except AzureError as exc:
            raise unavailable(exc) from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._database, name)  # anything else: the SDK's own, unguarded


class GuardedContainer:
    """A ContainerProxy whose item calls and queries go through the schema's guard."""

    def __init__(self, schema: CosmosSchema, container: ContainerProxy) -> None:
        self._schema = schema
        self._container = container
        self.id = container.id

    async def read_item(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call(lambda: self._container.read_item(*args, **kwargs))

    async def create_item(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call(lambda: self._container.create_item(*args, **kwargs))

    async def upsert_item(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call(lambda: self._container.upsert_item(*args, **kwargs))

    async def replace_item(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call(lambda: self._container.replace_item(*args, **kwargs))

    async def delete_item(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call(lambda: self._container.delete_item(*args, **kwargs))

    async def patch_item(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call(lambda: self._container.patch_item(*args, **kwargs))

    async def execute_item_batch(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call(lambda: self._container.execute_item_batch(*args, **kwargs))

    async def read(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call(lambda: self._container.read(*args, **kwargs))

    def query_items(self, *args: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        """The query's items; a missing owner found on the first page is recovered from like any other call."""

        async def items() -> AsyncIterator[dict[str, Any]]:
            generation = self._schema.generation
            for attempt in range(2):
                started = False
                try:
                    async for item in self._container.query_items(*args, **kwargs):
                        started = True
                        yield item
                    return
                except CosmosHttpResponseError as exc:
                    if started or not is_missing_owner(exc):
                        raise
                    if attempt:
                        raise self._schema.still_missing(self.id) from exc
                except (ServiceRequestError, ServiceResponseError) as exc:
                    raise unavailable(exc) from exc
                await self._schema.recover(self.id, generation)

        return items()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)  # anything else: the SDK's own, unguarded

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        generation = self._schema.generation
        try:
            return await call()
        except CosmosHttpResponseError as exc:
            if not is_missing_owner(exc):
                raise
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
        await self._schema.recover(self.id, generation)
        try:
            return await call()
        except CosmosHttpResponseError as exc:
            if not is_missing_owner(exc):
                raise
            raise self._schema.still_missing(self.id) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise unavailable(exc) from exc
