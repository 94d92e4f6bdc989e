"""The one place that builds SDK clients, adapters and services: once per worker, on first use, never at import."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.domain.bookings import BookingSourceKind
from shared.domain.ports import (
    ApiKeyStore,
    AuditLog,
    BlobStore,
    BookingSource,
    BookingStore,
    DeliveryStore,
    EventBatchHandler,
    EventLog,
    EventOutbox,
    EventPublisher,
    EventSink,
    InboundEvent,
    IssuerDocuments,
    LiveStateStore,
    SiteModelStore,
    SubscriptionStore,
    TeamDirectory,
    TenantDirectory,
)
from shared.domain.retry import DeliveryAttempt
from shared.domain.subscriptions import SinkKind
from shared.services import EventProcessingService, HealthService, ScheduledJobs
from shared.services.admin import AdminService
from shared.services.auth import AuthService
from shared.services.bookings import BookingService
from shared.services.calendars import CalendarReleaser, CalendarService
from shared.services.common import Clock, utc_now
from shared.services.delivery import DeliveryLoop, DeliveryWorker, EventRelay, SubscriptionCache
from shared.services.floorplans import FloorPlanService
from shared.services.identity import BearerTokenVerifier, IdentityService, IssuerKeys
from shared.services.ingest import IngestService
from shared.services.no_shows import FlagRelease, NoShowService
from shared.services.people import PeopleService
from shared.services.pipeline import PipelinePolicy, PipelineService, PresenceSweepService
from shared.services.queries import QueryService
from shared.services.rollups import AnalyticsReader, RollupService
from shared.services.sites import SiteDirectory
from shared.services.stream import StreamService
from shared.services.subscriptions import SubscriptionService
from shared.services.transitions import SiteFacts, TransitionSweepService
from shared.settings import PublisherKind, Settings, get_settings

logger = logging.getLogger(__name__)


@dataclass
class AppContext:
    """Everything a trigger needs, built once. `closers` release the SDK clients at shutdown."""

    settings: Settings
    publisher: EventPublisher
    site_models: SiteModelStore
    blobs: BlobStore
    live_state: LiveStateStore
    api_keys: ApiKeyStore
    health: HealthService
    processing: EventProcessingService
    scheduled: ScheduledJobs
    auth: AuthService
    ingest: IngestService
    sites: SiteDirectory
    pipeline: PipelineService
    tenants: TenantDirectory
    admin: AdminService
    queries: QueryService
    people: PeopleService
    teams: TeamDirectory
    rollups: RollupService
    analytics: AnalyticsReader
    identity: IdentityService
    issuer_documents: IssuerDocuments
    floorplans: FloorPlanService
    stream: StreamService
    outbox: EventOutbox
    subscription_store: SubscriptionStore
    deliveries: DeliveryStore
    event_log: EventLog
    subscriptions: SubscriptionService
    relay: EventRelay
    delivery: DeliveryWorker
    delivery_loop: DeliveryLoop
    booking_store: BookingStore
    bookings: BookingService
    no_shows: NoShowService
    calendars: CalendarService
    closers: list[Any] = field(default_factory=list)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception:  # shutdown goes on even if one client fails to close
                logger.exception("closing a client failed")
        self.closers.clear()


PublisherFactory = Callable[[EventBatchHandler], EventPublisher]


def _assemble(settings: Settings, *, site_models: SiteModelStore, blobs: BlobStore, live_state: LiveStateStore,
              api_keys: ApiKeyStore, tenants: TenantDirectory, audit: AuditLog, teams: TeamDirectory,
              issuer_documents: IssuerDocuments, publisher_factory: PublisherFactory, clock: Clock,
              closers: list[Any], outbox: EventOutbox, subscription_store: SubscriptionStore,
              deliveries: DeliveryStore, event_log: EventLog, event_sinks: dict[SinkKind, EventSink],
              booking_store: BookingStore, booking_sources: dict[BookingSourceKind, BookingSource],
              cosmos_health: Any | None = None, pipeline_policy: PipelinePolicy | None = None) -> AppContext:
    """The services over whichever adapters: the same graph for Azure, the devkit and the tests. `cosmos_health`
    is what health asks about Cosmos (default: the site model store); `pipeline_policy` replaces the processing
    policy derived from the settings (tests)."""
    sites = SiteDirectory(site_models)
    # devices are persisted often enough that the presence sweep never takes out a phone still heard
    policy = pipeline_policy or PipelinePolicy.for_presence_timeout(settings.presence_timeout_seconds)
    pipeline = PipelineService(sites, live_state, policy)
    processing = EventProcessingService(blobs, settings.deadletter_container, pipeline.process, clock=clock)
    # Integration events: the outbox -> the event log and a delivery per subscription -> the targets.
    subscription_cache = SubscriptionCache(subscription_store)
    relay = EventRelay(outbox, event_log, deliveries, subscription_cache, clock=clock)
    delivery = DeliveryWorker(deliveries, subscription_cache, subscription_store, event_sinks, clock=clock)
    delivery_loop = DeliveryLoop(relay, delivery)
    for sink in event_sinks.values():
        closers.append(sink.close)

    async def deliver(events: Sequence[InboundEvent], attempt: DeliveryAttempt) -> None:
        await processing.process(events, attempt)
        delivery_loop.nudge()  # the local poller relays the new outbox events now, not at its next round

    async def deliver_events(_now: datetime) -> None:
        await relay.relay_pending()
        await delivery.run_once()
        await delivery.drain()

    publisher = publisher_factory(deliver)
    closers.insert(0, publisher.close)  # stop delivering before the stores close
    sweep = PresenceSweepService(live_state, timedelta(seconds=settings.presence_timeout_seconds), sites=sites)
    facts = SiteFacts(sites)
    transitions = TransitionSweepService(live_state, facts)
    # Bookings: the API's, and the calendars' through one BookingSource port (docs/bookings.md).
    bookings = BookingService(booking_store, sites)
    calendars = CalendarService(booking_store, sites, bookings, booking_sources,
                                allow_loopback=settings.calendar_allow_loopback,
                                notification_url=settings.graph_notification_url or None, clock=clock)
    for source in booking_sources.values():
        closers.append(source.close)
    releaser = CalendarReleaser(booking_store, calendars.sources)
    no_shows = NoShowService(booking_store, live_state, facts,
                             {BookingSourceKind.api: FlagRelease(), BookingSourceKind.ical: releaser,
                              BookingSourceKind.graph: releaser},
                             timedelta(minutes=settings.no_show_minutes))

    async def sync_calendars(now: datetime) -> None:
        await calendars.sync_all(now)

    async def renew_graph_subscriptions(now: datetime) -> None:
        await calendars.renew_subscriptions(now)

    async def sweep_presence_and_transitions(now: datetime) -> None:
        # Both are what the passing of time changes: phones gone silent, then held-back headcounts and beacons
        # gone silent (whose events follow the spaces the first one just vacated).
        await sweep.sweep(now)
        await transitions.sweep(now)

    rollups = RollupService(site_models, live_state, blobs, teams, settings.analytics_container,
                            settings.analytics_min_group_size, clock=clock, bookings=booking_store)
    scheduled = ScheduledJobs({ScheduledJobs.PRESENCE_SWEEP: sweep_presence_and_transitions, ScheduledJobs.HOURLY_ROLLUP: rollups.hourly,
                               ScheduledJobs.DAILY_ROLLUP: rollups.daily,
                               ScheduledJobs.EVENT_DELIVERY: deliver_events, ScheduledJobs.NO_SHOWS: no_shows.sweep,
                               ScheduledJobs.BOOKING_SYNC: sync_calendars,
                               ScheduledJobs.GRAPH_RENEWAL: renew_graph_subscriptions})
    closers.append(issuer_documents.close)
    issuer_keys = IssuerKeys(issuer_documents, allow_loopback=settings.identity_allow_loopback)
    # Tokens carry real times: the verifier reads the wall clock even when the app runs on a simulated one.
    verifier = BearerTokenVerifier(tenants, issuer_keys)
    auth = AuthService(api_keys, settings.admin_api_key, clock=clock, tokens=verifier)
    admin = AdminService(tenants, api_keys, auth, site_models, sites, clock=clock)
    queries = QueryService(sites, live_state, clock=clock, bookings=booking_store)
    return AppContext(
        settings=settings, publisher=publisher, site_models=site_models, blobs=blobs, live_state=live_state,
        api_keys=api_keys,
        health=HealthService({"cosmos": cosmos_health or site_models, "blob": blobs, "eventHub": publisher}),
        processing=processing, scheduled=scheduled, auth=auth, ingest=IngestService(publisher, sites, clock=clock),
        sites=sites, pipeline=pipeline, tenants=tenants,
        admin=admin, floorplans=FloorPlanService(admin),
        queries=queries, stream=StreamService(queries), people=PeopleService(tenants, live_state, audit, sites, clock),
        teams=teams, rollups=rollups,
        analytics=AnalyticsReader(blobs, settings.analytics_container, settings.analytics_min_group_size),
        identity=IdentityService(tenants, verifier, issuer_keys, allow_loopback=settings.identity_allow_loopback,
                                 clock=clock),
        issuer_documents=issuer_documents, outbox=outbox, subscription_store=subscription_store,
        deliveries=deliveries, event_log=event_log, relay=relay, delivery=delivery, delivery_loop=delivery_loop,
        booking_store=booking_store, bookings=bookings, no_shows=no_shows, calendars=calendars,
        subscriptions=SubscriptionService(subscription_store, deliveries, event_log, site_models,
                                          allow_loopback=settings.webhook_allow_loopback,
                                          event_grid_available=SinkKind.event_grid in event_sinks,
                                          event_hub_available=SinkKind.event_hub in event_sinks, clock=clock),
        closers=closers,
    )


def _event_sinks(settings: Settings, credential: Any | None = None) -> dict[SinkKind, EventSink]:
    """Webhooks always; with a credential (the managed identity) customers' Event Hubs, and the deployment's
    Event Grid topic when it has one."""
    from shared.adapters.webhooks import WebhookSink

    sinks: dict[SinkKind, EventSink] = {SinkKind.webhook: WebhookSink(allow_loopback=settings.webhook_allow_loopback)}
    if credential is not None:
        from shared.adapters.event_sinks import (
            EventGridSink,
            EventHubSink,
            event_grid_publisher,
            event_hub_producer_factory,
        )

        sinks[SinkKind.event_hub] = EventHubSink(event_hub_producer_factory(credential))
        if settings.eventgrid_topic_endpoint:
            sinks[SinkKind.event_grid] = EventGridSink(
                event_grid_publisher(settings.eventgrid_topic_endpoint, credential))
    return sinks


def _booking_sources(settings: Settings, credential: Any | None = None) -> dict[BookingSourceKind, BookingSource]:
    """iCalendar feeds always; Microsoft Graph room mailboxes with a credential (the managed identity)."""
    from shared.adapters.ical import ICalendarFeeds

    sources: dict[BookingSourceKind, BookingSource] = {
        BookingSourceKind.ical: ICalendarFeeds(allow_loopback=settings.calendar_allow_loopback)}
    if credential is not None:
        from shared.adapters.graph_calendars import GraphRoomCalendars

        sources[BookingSourceKind.graph] = GraphRoomCalendars.from_credential(credential)
    return sources


def _credential(settings: Settings) -> Any:
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.managed_identity_client_id)


async def build_context(settings: Settings, *, bootstrap: bool = True, clock: Clock = utc_now,
                        pipeline_policy: PipelinePolicy | None = None) -> AppContext:
    """Real adapters from the settings. With `bootstrap`, creates the database, containers and blob containers
    that are missing (in Azure they exist already, so this only reads them); either way a database or container
    that goes missing later is re-created on first use, or named in a 503 (shared/adapters/cosmos_schema.py).
    `clock` is the app's notion of now (the devkit demo runs the app on a simulated clock); `pipeline_policy`
    replaces the processing policy derived from the settings (tests)."""
    from shared.adapters.blob import AzureBlobStore, create_blob_service, ensure_blob_containers
    from shared.adapters.cosmos import CosmosApiKeyStore, CosmosSiteModelStore, create_cosmos_client
    from shared.adapters.cosmos_bookings import CosmosBookingStore
    from shared.adapters.cosmos_directory import CosmosAuditLog, CosmosTenantDirectory
    from shared.adapters.cosmos_events import CosmosDeliveryStore, CosmosEventLog, CosmosSubscriptionStore
    from shared.adapters.cosmos_live_state import CosmosLiveStateStore
    from shared.adapters.cosmos_schema import CosmosSchema
    from shared.adapters.cosmos_teams import CosmosTeamDirectory
    from shared.adapters.oidc_http import AiohttpIssuerDocuments

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
    # Every Cosmos adapter goes through the schema guard: one mechanism for a missing database or container.
    schema = CosmosSchema(cosmos, settings.cosmos_database)
    if bootstrap:
        await schema.ensure()
        await ensure_blob_containers(blob_service, [settings.analytics_container, settings.deadletter_container,
                                                    settings.sites_container])
    database = schema.database

    def publisher_factory(deliver: EventBatchHandler) -> EventPublisher:
        if settings.event_publisher is PublisherKind.inprocess:
            from shared.adapters.inprocess_events import InProcessEventPublisher

            return InProcessEventPublisher(deliver)
        from shared.adapters.eventhub import EventHubEventPublisher, create_eventhub_producer

        return EventHubEventPublisher(create_eventhub_producer(settings, credential))

    blobs = AzureBlobStore(blob_service, probe_container=settings.deadletter_container)
    live_state = CosmosLiveStateStore(database)
    return _assemble(
        settings,
        # Site models in Blob storage (any size), their versions in Cosmos (docs/data-model.md, "Site models").
        site_models=CosmosSiteModelStore(database, blobs=blobs, blob_container=settings.sites_container),
        blobs=blobs,
        live_state=live_state, api_keys=CosmosApiKeyStore(database),
        tenants=CosmosTenantDirectory(database), audit=CosmosAuditLog(database), teams=CosmosTeamDirectory(database),
        issuer_documents=AiohttpIssuerDocuments(), publisher_factory=publisher_factory, clock=clock, closers=closers,
        outbox=live_state, subscription_store=CosmosSubscriptionStore(database),
        deliveries=CosmosDeliveryStore(database), event_log=CosmosEventLog(database),
        event_sinks=_event_sinks(settings, credential), booking_store=CosmosBookingStore(database),
        booking_sources=_booking_sources(settings, credential),
        cosmos_health=schema, pipeline_policy=pipeline_policy,
    )


def build_in_memory_context(settings: Settings, publisher: EventPublisher | None = None,
                            clock: Clock = utc_now, issuer_documents: IssuerDocuments | None = None) -> AppContext:
    """The same services over the in-memory adapters: unit and function tests, and the in-memory benchmarks.
    Without a publisher, published events are recorded (not delivered). Without `issuer_documents`, identity
    providers' documents come from an InMemoryIssuerDocuments (`context.issuer_documents.serve(url, doc)`)."""
    from shared.adapters.memory import (
        InMemoryApiKeyStore,
        InMemoryAuditLog,
        InMemoryBlobStore,
        InMemoryBookingStore,
        InMemoryDeliveryStore,
        InMemoryEventLog,
        InMemoryIssuerDocuments,
        InMemoryLiveStateStore,
        InMemorySiteModelStore,
        InMemorySubscriptionStore,
        InMemoryTeamDirectory,
        InMemoryTenantDirectory,
        RecordingEventPublisher,
    )

    live_state = InMemoryLiveStateStore()
    return _assemble(
        settings, site_models=InMemorySiteModelStore(), blobs=InMemoryBlobStore(),
        live_state=live_state, api_keys=InMemoryApiKeyStore(),
        tenants=InMemoryTenantDirectory(), audit=InMemoryAuditLog(), teams=InMemoryTeamDirectory(),
        issuer_documents=issuer_documents or InMemoryIssuerDocuments(),
        publisher_factory=lambda deliver: publisher or RecordingEventPublisher(), clock=clock, closers=[],
        outbox=live_state, subscription_store=InMemorySubscriptionStore(), deliveries=InMemoryDeliveryStore(),
        event_log=InMemoryEventLog(), event_sinks=_event_sinks(settings), booking_store=InMemoryBookingStore(live_state),
        booking_sources=_booking_sources(settings),
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


def installed_context() -> AppContext | None:
    """The worker's context when it is built already; never builds one (for what must not wait for the stores)."""
    return _context


def set_context(context: AppContext | None) -> None:
    """Install a ready context (devkit serve, tests) or forget the current one."""
    global _context, _lock
    _context = context
    _lock = None
