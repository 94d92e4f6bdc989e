"""The one place that builds SDK clients, adapters and services: once per worker, on first use, never at import."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from dataclasses import dataclass, field
from typing import Any

from shared.domain.ports import ApiKeyStore, BlobStore, EventPublisher, InboundEvent, LiveStateStore, SiteModelStore
from shared.services import EventProcessingService, HealthService, ScheduledJobs
from shared.services.auth import AuthService
from shared.services.ingest import IngestService
from shared.services.pipeline import PipelineService, PresenceSweepService
from shared.services.sites import SiteDirectory
from shared.settings import PublisherKind, Settings, get_settings

logger = logging.getLogger(__name__)


@dataclass
class AppContext:
    """Everything a trigger needs, built once. `closers` release the SDK clients at shutdown."""

    settings: Settings
    publisher: EventPublisher
    site_models: SiteModelStore
    blobs: BlobStore
    health: HealthService
    processing: EventProcessingService
    scheduled: ScheduledJobs
    api_keys: ApiKeyStore
    auth: AuthService
    ingest: IngestService
    live_state: LiveStateStore
    sites: SiteDirectory
    pipeline: PipelineService
    closers: list[Any] = field(default_factory=list)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception:  # shutdown goes on even if one client fails to close
                logger.exception("closing a client failed")
        self.closers.clear()


def _credential(settings: Settings) -> Any:
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)


async def build_context(settings: Settings, *, bootstrap: bool = True) -> AppContext:
    """Real adapters from the settings. With `bootstrap`, creates the database, containers and blob containers
    that are missing (in Azure they exist already, so this only reads them)."""
    from shared.adapters.blob import AzureBlobStore, create_blob_service, ensure_blob_containers
    from shared.adapters.cosmos_live_state import CosmosLiveStateStore
    from shared.adapters.cosmos import (
        CosmosApiKeyStore,
        CosmosSiteModelStore,
        create_cosmos_client,
        ensure_cosmos_schema,
    )

    needs_credential = not (
        settings.cosmos_connection_string
        and settings.analytics_storage_connection_string
        and (settings.eventhub_connection_string or settings.event_publisher is PublisherKind.inprocess)
    )
    credential = _credential(settings) if needs_credential else None
    closers: list[Any] = []
    if credential is not None:
        closers.append(credential.close)
    cosmos = create_cosmos_client(settings, credential)
    closers.append(cosmos.close)
    blob_service = create_blob_service(settings, credential)
    closers.append(blob_service.close)
    if bootstrap:
        database = await ensure_cosmos_schema(cosmos, settings.cosmos_database)
        await ensure_blob_containers(blob_service, [settings.analytics_container, settings.deadletter_container])
    else:
        database = cosmos.get_database_client(settings.cosmos_database)
    blobs = AzureBlobStore(blob_service, probe_container=settings.deadletter_container)
    site_models = CosmosSiteModelStore(database)
    live_state = CosmosLiveStateStore(database)
    sites = SiteDirectory(site_models)
    pipeline = PipelineService(sites, live_state)
    processing = EventProcessingService(blobs, settings.deadletter_container, pipeline.process)

    publisher: EventPublisher
    if settings.event_publisher is PublisherKind.inprocess:
        from shared.adapters.inprocess_events import InProcessEventPublisher

        async def deliver(events: Sequence[InboundEvent]) -> None:
            await processing.process(events)

        publisher = InProcessEventPublisher(deliver)
    else:
        from shared.adapters.eventhub import EventHubEventPublisher, create_eventhub_producer

        publisher = EventHubEventPublisher(create_eventhub_producer(settings, credential))
    closers.insert(0, publisher.close)  # stop delivering before the stores close
    health = HealthService({"cosmos": site_models, "blob": blobs, "eventHub": publisher})
    sweep = PresenceSweepService(live_state, timedelta(seconds=settings.presence_timeout_seconds))
    # The rollups register here when the analytics work lands.
    scheduled = ScheduledJobs({ScheduledJobs.PRESENCE_SWEEP: sweep.sweep})
    api_keys = CosmosApiKeyStore(database)
    return AppContext(
        settings=settings, publisher=publisher, site_models=site_models, blobs=blobs, health=health,
        processing=processing, scheduled=scheduled, api_keys=api_keys,
        auth=AuthService(api_keys, settings.admin_api_key), ingest=IngestService(publisher), live_state=live_state,
        sites=sites, pipeline=pipeline, closers=closers,
    )


_context: AppContext | None = None
_lock: asyncio.Lock | None = None


async def get_context() -> AppContext:
    """The worker's context, built on the first call."""
    global _context, _lock
    if _context is not None:
        return _context
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _context is None:
            _context = await build_context(get_settings())
    return _context


def set_context(context: AppContext | None) -> None:
    """Install a ready context (devkit serve, tests) or forget the current one."""
    global _context, _lock
    _context = context
    _lock = None


def build_in_memory_context(settings: Settings, publisher: EventPublisher | None = None) -> AppContext:
    """The same services over the in-memory adapters: unit and function tests, and the in-memory benchmarks."""
    from shared.adapters.memory import (
        InMemoryApiKeyStore,
        InMemoryBlobStore,
        InMemoryLiveStateStore,
        InMemorySiteModelStore,
        RecordingEventPublisher,
    )

    blobs = InMemoryBlobStore()
    site_models = InMemorySiteModelStore()
    live_state = InMemoryLiveStateStore()
    api_keys = InMemoryApiKeyStore()
    sites = SiteDirectory(site_models)
    pipeline = PipelineService(sites, live_state)
    processing = EventProcessingService(blobs, settings.deadletter_container, pipeline.process)
    if publisher is None:
        publisher = RecordingEventPublisher()
    sweep = PresenceSweepService(live_state, timedelta(seconds=settings.presence_timeout_seconds))
    return AppContext(
        settings=settings, publisher=publisher, site_models=site_models, blobs=blobs,
        health=HealthService({"cosmos": site_models, "blob": blobs, "eventHub": publisher}, timeout_s=0.5),
        processing=processing, scheduled=ScheduledJobs({ScheduledJobs.PRESENCE_SWEEP: sweep.sweep}),
        api_keys=api_keys, auth=AuthService(api_keys, settings.admin_api_key), ingest=IngestService(publisher),
        live_state=live_state, sites=sites, pipeline=pipeline,
    )
