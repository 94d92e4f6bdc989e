"""Room calendars as booking sources (docs/bookings.md): an iCalendar feed (a URL, or uploads) or a Microsoft 365
room mailbox per space, synced into the booking store through the one BookingSource port; Graph's change
notifications (validation handshake, clientState) and the renewal of their subscriptions."""
from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.domain.bookings import (
    CALENDAR_LOOKAHEAD,
    CALENDAR_LOOKBACK,
    MAX_MAILBOX_LENGTH,
    Booking,
    BookingSourceKind,
    CalendarChanges,
    CalendarSource,
    reconcile,
)
from shared.domain.errors import Conflict, ContractViolation, FieldError, NotFound, validate_model
from shared.domain.ports import BookingSource, BookingStore, DependencyUnavailable, PreconditionFailed
from shared.domain.subscriptions import webhook_url_problem
from shared.domain.tenancy import BuildingRef
from shared.services.bookings import BookingService
from shared.services.common import Clock, utc_now
from shared.services.sites import SiteDirectory

logger = logging.getLogger(__name__)

RENEW_BEFORE = timedelta(days=1)  # a Graph subscription expiring sooner than this is renewed by the timer
MAX_VALIDATION_TOKEN = 2048
# A room mailbox: its address (a UPN) or its directory object id; never a path (it goes into Graph's URLs).
_MAILBOX = re.compile(r"^(?:[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}|[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}"
                      r"[0-9a-fA-F]{12})$")


class IcalIn(BaseModel):
    url: str | None = Field(default=None, max_length=2048,
                            description="the feed (https, a public host); omitted: the calendar is uploaded")
    model_config = ConfigDict(extra="forbid")


class GraphIn(BaseModel):
    mailbox: str = Field(min_length=3, max_length=MAX_MAILBOX_LENGTH,
                         description="the room mailbox: its address (room-oak@contoso.com) or object id")
    model_config = ConfigDict(extra="forbid")


class CalendarIn(BaseModel):
    """`{"ical": {"url": ...}}`, `{"ical": {}}` (uploads) or `{"graph": {"mailbox": ...}}`: exactly one."""

    ical: IcalIn | None = None
    graph: GraphIn | None = None
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _one(self) -> CalendarIn:
        if (self.ical is None) == (self.graph is None):
            raise ValueError("give exactly one of `ical` and `graph`")
        return self


@dataclass(frozen=True)
class SyncResult:
    created: int = 0
    moved: int = 0
    removed: int = 0
    error: str | None = None


class Notification(BaseModel):
    """One item of a Graph change notification (only what we check; the rest is ignored)."""

    subscription_id: str = Field(alias="subscriptionId", max_length=200)
    client_state: str | None = Field(default=None, alias="clientState", max_length=256)
    change_type: str | None = Field(default=None, alias="changeType", max_length=100)
    lifecycle_event: str | None = Field(default=None, alias="lifecycleEvent", max_length=100)
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class NotificationBatch(BaseModel):
    value: list[Notification] = Field(max_length=1000)
    model_config = ConfigDict(extra="ignore")


class CalendarService:
    def __init__(self, store: BookingStore, sites: SiteDirectory, bookings: BookingService,
                 sources: Mapping[BookingSourceKind, BookingSource], *, allow_loopback: bool = False,
                 notification_url: str | None = None, clock: Clock = utc_now) -> None:
        self._store = store
        self._sites = sites
        self._bookings = bookings
        self._sources = dict(sources)
        self._allow_loopback = allow_loopback
        self._notification_url = notification_url.rstrip("/") if notification_url else None
        self._clock = clock
        self._background: set[asyncio.Task[Any]] = set()

    @property
    def sources(self) -> dict[BookingSourceKind, BookingSource]:
        """The connected source adapters (shared with the releaser, so `use_source` reaches it too)."""
        return self._sources

    def use_source(self, kind: BookingSourceKind, source: BookingSource) -> None:
        """Connect a source adapter (the wiring; tests point Graph at a local server)."""
        self._sources[kind] = source

    # ---- configuration -------------------------------------------------------------------------------------
    async def configure(self, building: BuildingRef, space_id: str, body: Any) -> tuple[CalendarSource, SyncResult]:
        """Connect the space to a calendar (replacing another), then sync it once; the first sync's error is in
        the answer (`lastError`), not a failure of the configuration."""
        request = validate_model(CalendarIn, body)
        await self._bookings.bookable_space(building, space_id)
        if request.ical is not None:
            kind, url, mailbox = BookingSourceKind.ical, request.ical.url, None
            if url is not None and (problem := webhook_url_problem(url, self._allow_loopback)):
                raise ContractViolation([FieldError("ical.url", problem)])
        else:
            assert request.graph is not None
            kind, url, mailbox = BookingSourceKind.graph, None, request.graph.mailbox
            if not _MAILBOX.fullmatch(mailbox):
                raise ContractViolation([FieldError("graph.mailbox", "a room mailbox's address or object id")])
            if kind not in self._sources:
                raise ContractViolation([FieldError("graph", "Microsoft Graph needs the app's managed identity: "
                                                             "not available in this deployment")])
        current = await self._store.get_source(building, space_id)
        fresh = CalendarSource(building.tenant_id, building.building_id, space_id, kind, url=url, mailbox=mailbox,
                               etag=current.etag if current else None)
        if current is not None and (current.kind, current.url, current.mailbox) == (kind, url, mailbox):
            fresh = current  # the same calendar again: keep its cursor and subscription
        elif current is not None:
            await self._unsubscribe(current)
            await self._drop_future(current)
        try:
            saved = await self._store.save_source(fresh)
        except PreconditionFailed:
            raise Conflict("the space's calendar changed meanwhile; try again", spaceId=space_id) from None
        if kind is BookingSourceKind.ical and url is None:
            return saved, SyncResult()  # uploads: nothing to fetch
        result, saved = await self.sync(saved)
        if kind is BookingSourceKind.graph:
            saved = await self._ensure_subscription(saved, self._clock())
        return saved, result

    async def get(self, building: BuildingRef, space_id: str) -> CalendarSource:
        await self._bookings.bookable_space(building, space_id)
        source = await self._store.get_source(building, space_id)
        if source is None:
            raise NotFound(f"space '{space_id}' has no calendar")
        return source

    async def remove(self, building: BuildingRef, space_id: str) -> None:
        """Disconnect the calendar: its bookings from now on go (they would never change again), past ones stay."""
        await self._bookings.bookable_space(building, space_id)
        source = await self._store.get_source(building, space_id)
        if source is None:
            return
        await self._unsubscribe(source)
        await self._drop_future(source)
        await self._store.delete_source(building, space_id)

    async def upload(self, building: BuildingRef, space_id: str, data: bytes) -> SyncResult:
        """An uploaded iCalendar file is the space's calendar from yesterday to 14 days ahead."""
        from shared.adapters.ical import CalendarUnreadable, parse_calendar

        await self._bookings.bookable_space(building, space_id)
        source = await self._store.get_source(building, space_id)
        if source is not None and (source.kind is not BookingSourceKind.ical or source.url is not None):
            raise Conflict(f"space '{space_id}' takes its bookings from {source.kind.value}"
                           f"{' (a feed URL)' if source.url else ''}: disconnect it first", spaceId=space_id)
        if source is None:
            try:
                await self._store.save_source(CalendarSource(building.tenant_id, building.building_id, space_id,
                                                             BookingSourceKind.ical))
            except PreconditionFailed:
                pass  # another upload created it: fine
        now = self._clock()
        start, end = now - CALENDAR_LOOKBACK, now + CALENDAR_LOOKAHEAD
        try:
            events = parse_calendar(data, start, end, await self._zone(building))
        except CalendarUnreadable as exc:
            raise ContractViolation([FieldError("$", str(exc))], title="The calendar is invalid") from None
        return await self._apply(building, space_id, BookingSourceKind.ical,
                                 CalendarChanges(tuple(events), complete=True, window_start=start, window_end=end))

    # ---- syncing -------------------------------------------------------------------------------------------
    async def sync(self, source: CalendarSource) -> tuple[SyncResult, CalendarSource]:
        """Read the calendar and bring the space's bookings of it in line; the outcome is recorded on the source
        (`lastSyncAt`, `lastError`, Graph's cursor)."""
        now = self._clock()
        adapter = self._sources.get(source.kind)
        if adapter is None or (source.kind is BookingSourceKind.ical and source.url is None):
            return SyncResult(), source
        try:
            changes = await adapter.changes(source, now, await self._zone(source.building))
            result = await self._apply(source.building, source.space_id, source.kind, changes)
            updated = replace(source, last_sync_at=now, last_error=None, sync_requested=False,
                              cursor=changes.cursor if source.kind is BookingSourceKind.graph else None,
                              window_start=changes.window_start, window_end=changes.window_end)
        except (DependencyUnavailable, ValueError, PermissionError) as exc:
            logger.warning("calendar of a space in building %s: %s", source.building_id, exc)
            result = SyncResult(error=str(exc)[:500])
            updated = replace(source, last_error=result.error)
        return result, await self._record(source, updated)

    async def sync_all(self, now: datetime | None = None) -> int:
        """The sync timer: every feed and room mailbox (Graph's rounds are deltas: cheap when nothing changed)."""
        synced = 0
        for source in await self._store.list_sources():
            if source.kind is BookingSourceKind.ical and source.url is None:
                continue
            try:
                await self.sync(source)
            except Exception:  # one space's calendar must not stop the others; logged, retried next run
                logger.exception("calendar sync failed for a space of building %s", source.building_id)
                continue
            synced += 1
        return synced

    async def _apply(self, building: BuildingRef, space_id: str, kind: BookingSourceKind,
                     changes: CalendarChanges) -> SyncResult:
        now = self._clock()
        start = changes.window_start or now - CALENDAR_LOOKBACK
        end = changes.window_end or now + CALENDAR_LOOKAHEAD
        existing = await self._store.list_bookings(building, min(start, now - CALENDAR_LOOKBACK),
                                                   max(end, now + CALENDAR_LOOKAHEAD), space_id)
        plan = reconcile(building, space_id, kind, existing, changes)
        created = moved = removed = 0
        for booking in plan.save:
            try:
                await self._store.save(booking)
            except PreconditionFailed:
                continue  # decided or changed meanwhile: the next sync sees it again
            created += booking.etag is None
            moved += booking.etag is not None
        for booking in plan.delete:
            removed += await self._store.delete(building, space_id, booking.booking_id)
        return SyncResult(created, moved, removed)

    async def _record(self, read: CalendarSource, updated: CalendarSource) -> CalendarSource:
        try:
            return await self._store.save_source(updated)
        except PreconditionFailed:
            # configured again or notified meanwhile: keep theirs, but this round's cursor only if the calendar is
            # still the same one
            fresh = await self._store.get_source(read.building, read.space_id)
            if fresh is None or (fresh.kind, fresh.url, fresh.mailbox) != (read.kind, read.url, read.mailbox):
                return fresh or updated
            try:
                return await self._store.save_source(replace(updated, etag=fresh.etag,
                                                             sync_requested=fresh.sync_requested,
                                                             subscription_id=fresh.subscription_id,
                                                             client_state=fresh.client_state,
                                                             subscription_expires_at=fresh.subscription_expires_at))
            except PreconditionFailed:
                return fresh

    async def _drop_future(self, source: CalendarSource) -> None:
        now = self._clock()
        for booking in await self._store.list_bookings(source.building, now, now + timedelta(days=366),
                                                       source.space_id):
            if booking.source is source.kind:
                await self._store.delete(source.building, source.space_id, booking.booking_id)

    async def _zone(self, building: BuildingRef) -> ZoneInfo:
        loaded = await self._sites.get(building)
        return ZoneInfo(loaded.site.time_zone if loaded else "UTC")

    # ---- Graph change notifications ------------------------------------------------------------------------
    def notification_url(self, source: CalendarSource) -> str | None:
        if self._notification_url is None:
            return None
        return f"{self._notification_url}/{source.tenant_id}/{source.building_id}/{source.space_id}"

    async def notified(self, tenant_id: str, building_id: str, space_id: str, body: Any) -> int:
        """Graph's change notifications for one space's room mailbox: each must name the space's subscription and
        carry its clientState (compared in constant time), else it is ignored. A valid one asks for a sync, run
        right away in the background (Graph wants its 202 within 3 seconds) and by the sync timer otherwise.
        Returns how many were accepted."""
        batch = validate_model(NotificationBatch, body)
        building = BuildingRef(tenant_id, building_id)
        source = await self._store.get_source(building, space_id)
        if source is None or source.kind is not BookingSourceKind.graph or not source.client_state:
            return 0
        accepted = [n for n in batch.value if n.subscription_id == source.subscription_id
                    and n.client_state is not None
                    and hmac.compare_digest(n.client_state.encode(), source.client_state.encode())]
        if not accepted:
            logger.warning("graph notifications for a space of building %s: none carried its subscription and "
                           "clientState", building_id)
            return 0
        if any(n.lifecycle_event in ("subscriptionRemoved", "reauthorizationRequired") for n in accepted):
            source = await self._record(source, replace(source, subscription_expires_at=self._clock()))
        try:
            source = await self._store.save_source(replace(source, sync_requested=True))
        except PreconditionFailed:
            pass  # another notification or a sync wrote it: that one syncs
        task = asyncio.create_task(self._sync_quietly(building, space_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return len(accepted)

    async def _sync_quietly(self, building: BuildingRef, space_id: str) -> None:
        try:
            source = await self._store.get_source(building, space_id)
            if source is not None and source.sync_requested:
                await self.sync(source)
        except Exception:  # the sync timer tries again; a background task must not die loudly
            logger.exception("calendar sync after a notification failed (building %s)", building.building_id)

    async def settle(self) -> None:
        """Wait for the syncs notifications started (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def renew_subscriptions(self, now: datetime | None = None) -> int:
        """The renewal timer: every Graph room gets a subscription, renewed a day before it expires (a new one when
        Graph lost it). Nothing to do without GRAPH_NOTIFICATION_URL (then the sync timer alone keeps them fresh)."""
        now = now or self._clock()
        renewed = 0
        for source in await self._store.list_sources():
            if source.kind is BookingSourceKind.graph:
                before = source.subscription_expires_at
                after = await self._ensure_subscription(source, now)
                renewed += after.subscription_expires_at != before
        return renewed

    async def _ensure_subscription(self, source: CalendarSource, now: datetime) -> CalendarSource:
        from shared.adapters.graph_calendars import GraphGone, GraphRoomCalendars

        graph = self._sources.get(BookingSourceKind.graph)
        url = self.notification_url(source)
        if url is None or not isinstance(graph, GraphRoomCalendars) or not source.mailbox:
            return source
        if (source.subscription_id and source.subscription_expires_at
                and source.subscription_expires_at - now > RENEW_BEFORE):
            return source
        try:
            if source.subscription_id:
                try:
                    expires = await graph.renew(source.subscription_id, now)
                    return await self._record(source, replace(source, subscription_expires_at=expires))
                except GraphGone:
                    logger.info("a graph subscription of building %s is gone: subscribing again", source.building_id)
            state = secrets.token_urlsafe(32)
            subscription_id, expires = await graph.subscribe(source.mailbox, url, state, now)
            return await self._record(source, replace(source, subscription_id=subscription_id, client_state=state,
                                                      subscription_expires_at=expires))
        except (DependencyUnavailable, PermissionError, ValueError) as exc:
            logger.warning("graph subscription of a space in building %s: %s", source.building_id, exc)
            return await self._record(source, replace(source, last_error=f"subscription: {str(exc)[:400]}"))

    async def _unsubscribe(self, source: CalendarSource) -> None:
        from shared.adapters.graph_calendars import GraphRoomCalendars

        graph = self._sources.get(BookingSourceKind.graph)
        if source.subscription_id and isinstance(graph, GraphRoomCalendars):
            try:
                await graph.unsubscribe(source.subscription_id)
            except (DependencyUnavailable, PermissionError) as exc:
                logger.warning("could not delete a graph subscription (it expires by itself): %s", exc)


class CalendarReleaser:
    """A no-show's release at its source (the BookingReleaser of the no-show timer): the space's calendar, read
    afresh, through its BookingSource."""

    def __init__(self, store: BookingStore, sources: Mapping[BookingSourceKind, BookingSource]) -> None:
        self._store = store
        self._sources = sources

    async def release(self, booking: Booking) -> str | None:
        source = await self._store.get_source(booking.building, booking.space_id)
        if source is None or source.kind is not booking.source:
            return "the space's calendar is no longer connected"
        adapter = self._sources.get(source.kind)
        if adapter is None:
            return f"no {source.kind.value} source in this deployment"
        try:
            return await adapter.release(source, booking)
        except PermissionError as exc:
            return str(exc)

