"""Microsoft 365 room mailboxes as a booking source, through the Microsoft Graph SDK (`msgraph-sdk`), app-only
with the app's managed identity (application permission Calendars.ReadWrite, docs/bookings.md).

- Sync: the delta query of the room's calendar view (`GET /users/{room}/calendarView/delta`), following
  `@odata.nextLink` pages to the `@odata.deltaLink`, kept as the cursor of the next round; an item with
  `@removed` (or `isCancelled`) is an occurrence gone. `Prefer: outlook.timezone="UTC"` so times are UTC.
  A cursor Graph no longer knows (410 Gone) starts a full round again.
- Change notifications: a subscription on `/users/{room}/events` with a random `clientState`, renewed by timer.
- Release: the room mailbox declines the occurrence (`POST /users/{room}/events/{id}/decline`).

Only `id`, `start`, `end`, `isCancelled` and `@removed` of an event are read (`$select`): never its subject,
organizer, attendees or body.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.domain.bookings import (
    CALENDAR_LOOKAHEAD,
    CALENDAR_LOOKBACK,
    GRAPH_WINDOW_RENEW_BEFORE,
    Booking,
    CalendarChanges,
    CalendarEvent,
    CalendarSource,
)
from shared.domain.ports import DependencyUnavailable

logger = logging.getLogger(__name__)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
SUBSCRIPTION_LIFETIME = timedelta(days=3)  # Outlook events allow up to 7 days; renewed daily by the timer
PAGE_SIZE = 50
MAX_PAGES = 200  # one round reads at most this many pages (10,000 occurrences)
SELECT = ["id", "start", "end", "isCancelled"]


class GraphGone(Exception):
    """Graph answered 404 / 410: the event, the subscription or the delta cursor is gone."""


def _when(value: Any) -> datetime | None:
    """A Graph dateTimeTimeZone (in UTC: we ask for it) as an aware datetime."""
    if value is None or not getattr(value, "date_time", None):
        return None
    text = str(value.date_time)
    head, _, fraction = text.partition(".")
    moment = datetime.fromisoformat(head + ("." + fraction[:6] if fraction else ""))
    zone = getattr(value, "time_zone", None) or "UTC"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC if zone in ("UTC", "tzone://Microsoft/Utc") else ZoneInfo(zone))
    return moment.astimezone(UTC)


def _status(exc: Exception) -> int | None:
    code = getattr(exc, "response_status_code", None)
    return int(code) if isinstance(code, int) else None


class GraphRoomCalendars:
    """The BookingSource of Graph room mailboxes. `client` is a GraphServiceClient: built from the managed identity
    in Azure (`from_credential`), or on a request adapter whose base URL is a local server in the tests."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_credential(cls, credential: Any) -> GraphRoomCalendars:
        from msgraph.graph_service_client import GraphServiceClient

        return cls(GraphServiceClient(credentials=credential, scopes=[GRAPH_SCOPE]))

    @classmethod
    def at(cls, base_url: str) -> GraphRoomCalendars:
        """A client without authentication against `base_url` (tests: a local server replaying Graph's answers)."""
        import httpx
        from kiota_abstractions.authentication import AnonymousAuthenticationProvider
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph.graph_service_client import GraphServiceClient
        from msgraph_core import GraphClientFactory

        http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(trust_env=False))
        adapter = GraphRequestAdapter(AnonymousAuthenticationProvider(), client=http)
        adapter.base_url = base_url
        return cls(GraphServiceClient(request_adapter=adapter))

    def _user(self, mailbox: str) -> Any:
        return self._client.users.by_user_id(mailbox)

    async def changes(self, source: CalendarSource, now: datetime, zone: ZoneInfo) -> CalendarChanges:
        """One delta round: from the cursor, or a full round over a new window when there is none, when its
        window runs out within GRAPH_WINDOW_RENEW_BEFORE, or when Graph no longer knows the cursor."""
        mailbox = source.mailbox or ""
        window_start, window_end = source.window_start, source.window_end
        cursor = source.cursor
        if cursor is None or window_end is None or window_end - now < GRAPH_WINDOW_RENEW_BEFORE:
            cursor, window_start, window_end = None, now - CALENDAR_LOOKBACK, now + CALENDAR_LOOKAHEAD
        try:
            return await self._round(mailbox, cursor, window_start, window_end)
        except GraphGone:
            if cursor is None:
                raise DependencyUnavailable("graph", f"the room mailbox {mailbox[:80]} is not found") from None
            logger.info("a delta cursor expired: full round for a room of building %s", source.building_id)
            start, end = now - CALENDAR_LOOKBACK, now + CALENDAR_LOOKAHEAD
            return await self._round(mailbox, None, start, end)

    async def _round(self, mailbox: str, cursor: str | None, window_start: datetime | None,
                     window_end: datetime | None) -> CalendarChanges:
        from kiota_abstractions.base_request_configuration import RequestConfiguration
        from msgraph.generated.users.item.calendar_view.delta.delta_request_builder import DeltaRequestBuilder

        delta = self._user(mailbox).calendar_view.delta
        config: RequestConfiguration[DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters] = (
            RequestConfiguration())
        config.headers.add("Prefer", 'outlook.timezone="UTC"')
        config.headers.add("Prefer", f"odata.maxpagesize={PAGE_SIZE}")
        if cursor is None:
            if window_start is None or window_end is None:
                raise ValueError("a full round needs its window")
            config.query_parameters = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
                start_date_time=window_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                end_date_time=window_end.strftime("%Y-%m-%dT%H:%M:%SZ"), select=SELECT)
            page = await self._call(delta.get(request_configuration=config))
        else:
            page = await self._call(delta.with_url(cursor).get(request_configuration=config))
        events: dict[str, CalendarEvent] = {}
        removed: list[str] = []
        for _ in range(MAX_PAGES):
            for item in page.value or []:
                event_id = item.id
                if not event_id:
                    continue
                extra = item.additional_data or {}
                start, end = _when(item.start), _when(item.end)
                if "@removed" in extra or item.is_cancelled or start is None or end is None:
                    removed.append(event_id)
                    events.pop(event_id, None)
                    continue
                events[event_id] = CalendarEvent(event_id, start, end)
            if page.odata_delta_link:
                return CalendarChanges(tuple(events.values()), tuple(removed), complete=cursor is None,
                                       window_start=window_start, window_end=window_end,
                                       cursor=page.odata_delta_link)
            if not page.odata_next_link:
                break
            page = await self._call(delta.with_url(page.odata_next_link).get(request_configuration=config))
        raise DependencyUnavailable("graph", "the delta round ended without a delta link")

    async def release(self, source: CalendarSource, booking: Booking) -> str | None:
        """The room mailbox declines the occurrence, telling the organizer (sendResponse)."""
        from msgraph.generated.users.item.events.item.decline.decline_post_request_body import DeclinePostRequestBody

        if not source.mailbox or not booking.source_event_id:
            return "no room mailbox or event id to decline"
        body = DeclinePostRequestBody(comment="Released: nobody came within the no-show time.", send_response=True)
        try:
            await self._call(self._user(source.mailbox).events.by_event_id(booking.source_event_id).decline.post(body))
        except GraphGone:
            return "the occurrence is gone from the room's calendar"
        return None

    async def subscribe(self, mailbox: str, notification_url: str, client_state: str,
                        now: datetime) -> tuple[str, datetime]:
        """A change notification subscription on the room's events; (its id, when it expires)."""
        from msgraph.generated.models.subscription import Subscription

        expires = now + SUBSCRIPTION_LIFETIME
        created = await self._call(self._client.subscriptions.post(Subscription(
            change_type="created,updated,deleted", notification_url=notification_url,
            resource=f"/users/{mailbox}/events", expiration_date_time=expires, client_state=client_state,
            latest_supported_tls_version="v1_2")))
        return str(created.id), created.expiration_date_time or expires

    async def renew(self, subscription_id: str, now: datetime) -> datetime:
        """A new expiry for the subscription; GraphGone when Graph no longer has it."""
        from msgraph.generated.models.subscription import Subscription

        expires = now + SUBSCRIPTION_LIFETIME
        renewed = await self._call(self._client.subscriptions.by_subscription_id(subscription_id).patch(
            Subscription(expiration_date_time=expires)))
        return (renewed.expiration_date_time if renewed is not None else None) or expires

    async def unsubscribe(self, subscription_id: str) -> None:
        try:
            await self._call(self._client.subscriptions.by_subscription_id(subscription_id).delete())
        except GraphGone:
            return

    @staticmethod
    async def _call(awaitable: Any) -> Any:
        """Graph's errors as ours: 404/410 GraphGone, 401/403 (no permission) and 4xx a ValueError saying so,
        throttling, 5xx and connection failures DependencyUnavailable (tried again later)."""
        import httpx
        from kiota_abstractions.api_error import APIError

        try:
            return await awaitable
        except APIError as exc:
            status = _status(exc)
            if status in (404, 410):
                raise GraphGone(str(status)) from None
            if status is not None and 400 <= status < 500 and status != 429:
                raise PermissionError(f"Graph answered {status}: {getattr(exc, 'message', '') or ''}"[:300]) from None
            raise DependencyUnavailable("graph", f"HTTP {status}") from None
        except httpx.HTTPError as exc:
            raise DependencyUnavailable("graph", type(exc).__name__) from None

    async def close(self) -> None:
        return None
