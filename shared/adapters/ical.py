"""iCalendar feeds as a booking source: a feed URL fetched under the webhook targets' SSRF rules, or an uploaded
file, expanded with `icalendar` + `recurring-ical-events` (recurrence rules, exceptions and overridden
occurrences, time zones with their daylight-saving changes, cancelled occurrences).

Only each occurrence's times and ids are read: never SUMMARY, DESCRIPTION, ORGANIZER, ATTENDEE or LOCATION.
"""
from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import icalendar
import recurring_ical_events

from shared.adapters.webhooks import PublicOnlyResolver, TargetRefused
from shared.domain.bookings import (
    CALENDAR_LOOKAHEAD,
    CALENDAR_LOOKBACK,
    Booking,
    CalendarChanges,
    CalendarEvent,
    CalendarSource,
)
from shared.domain.ports import DependencyUnavailable
from shared.domain.subscriptions import webhook_url_problem

logger = logging.getLogger(__name__)

MAX_FEED_BYTES = 2 * 1024 * 1024  # a room's calendar for a year or two; anything bigger is not a room calendar
MAX_OCCURRENCES = 5000  # in one sync window
FETCH_TIMEOUT_S = 10.0
USER_AGENT = "spaceflow-calendars/1"


class CalendarUnreadable(ValueError):
    """The data is no iCalendar a room's bookings can be read from; the message says why."""


def calendar_url_problem(url: str, allow_loopback: bool) -> str | None:
    """Why `url` cannot be a feed: the webhook targets' rules (https to a public host; loopback only with
    CALENDAR_ALLOW_LOOPBACK); checked again, with every address it resolves to, at every fetch."""
    return webhook_url_problem(url, allow_loopback)


def _moment(value: date | datetime, zone: ZoneInfo) -> datetime | None:
    """A DTSTART/DTEND as an aware UTC time: floating times are the building's local time; a date (an all-day
    event) is no room booking (None)."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _series_uids(calendar: icalendar.Calendar) -> set[str]:
    """The UIDs of recurring events (a rule, extra dates, or overridden occurrences)."""
    return {str(c.get("UID") or "") for c in calendar.walk("VEVENT")
            if any(c.get(name) is not None for name in ("RRULE", "RDATE", "RECURRENCE-ID"))}


def _source_event_id(component: icalendar.cal.Component, start: datetime, zone: ZoneInfo, series: set[str]) -> str:
    """Stable per occurrence: a single event is its UID (moved, its booking moves); an occurrence of a series is
    the UID and its original start (RECURRENCE-ID), so an occurrence moved by an exception keeps its id and the
    others keep theirs."""
    uid = str(component.get("UID") or "")
    if uid not in series:
        return uid
    recurrence_id = component.get("RECURRENCE-ID")
    original = _moment(recurrence_id.dt, zone) if recurrence_id is not None else None
    return f"{uid}|{(original or start).isoformat()}"


def parse_calendar(data: bytes, window_start: datetime, window_end: datetime, zone: ZoneInfo) -> list[CalendarEvent]:
    """The occurrences of the calendar's events overlapping [window_start, window_end), cancelled ones left out;
    CalendarUnreadable for data that is no calendar (or too much of one)."""
    if len(data) > MAX_FEED_BYTES:
        raise CalendarUnreadable(f"more than {MAX_FEED_BYTES // (1024 * 1024)} MB")
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except (ValueError, KeyError, IndexError) as exc:
        raise CalendarUnreadable(f"not an iCalendar file: {str(exc)[:200]}") from None
    if not isinstance(calendar, icalendar.Calendar):
        raise CalendarUnreadable("not an iCalendar file: no VCALENDAR")
    try:
        occurrences = recurring_ical_events.of(calendar, components=["VEVENT"]).between(window_start, window_end)
    except (ValueError, TypeError, KeyError) as exc:  # InvalidCalendar and friends are ValueErrors
        raise CalendarUnreadable(f"its events cannot be expanded: {type(exc).__name__}: {str(exc)[:200]}") from None
    series = _series_uids(calendar)
    events: dict[str, CalendarEvent] = {}
    for component in occurrences:
        if len(events) >= MAX_OCCURRENCES:
            raise CalendarUnreadable(f"more than {MAX_OCCURRENCES} occurrences within the sync window")
        if str(component.get("STATUS") or "").upper() == "CANCELLED":
            continue
        start_value = component.get("DTSTART")
        if start_value is None:
            continue
        start = _moment(start_value.dt, zone)
        end_value = component.get("DTEND")
        if end_value is not None:
            end = _moment(end_value.dt, zone)
        else:
            duration = component.get("DURATION")
            end = start + duration.dt if start is not None and duration is not None and isinstance(
                duration.dt, timedelta) else None
        if start is None or end is None:
            continue  # all-day or open-ended: no room booking
        source_event_id = _source_event_id(component, start, zone, series)[:1024]
        events[source_event_id] = CalendarEvent(source_event_id, start, end)
    return sorted(events.values(), key=lambda e: (e.start, e.source_event_id))


class ICalendarFeeds:
    """The BookingSource of iCalendar feeds: `changes` fetches the URL (SSRF rules at every fetch: the resolver
    keeps public addresses only; no redirects, no proxies from the environment) and reads the whole window."""

    def __init__(self, *, allow_loopback: bool = False, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        self._allow_loopback = allow_loopback
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:  # created on the event loop that uses it
            connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(allow_loopback=self._allow_loopback),
                                             limit=64, use_dns_cache=False)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False,
                                                  headers={"User-Agent": USER_AGENT, "Accept": "text/calendar"})
        return self._session

    async def fetch(self, url: str) -> bytes:
        """The feed's bytes; CalendarUnreadable for a URL our rules refuse or an answer that is no feed,
        DependencyUnavailable when it cannot be reached now."""
        if problem := calendar_url_problem(url, self._allow_loopback):
            raise CalendarUnreadable(f"the feed URL is refused: {problem}")
        try:
            async with self._client().get(url, allow_redirects=False) as response:
                if response.status != 200:
                    raise DependencyUnavailable("calendar feed", f"HTTP {response.status}")
                data = await response.content.read(MAX_FEED_BYTES + 1)
        except TargetRefused as exc:
            raise CalendarUnreadable(f"the feed URL is refused: {exc}") from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, TargetRefused):
                raise CalendarUnreadable(f"the feed URL is refused: {exc.os_error}") from None
            raise DependencyUnavailable("calendar feed", "connection failed") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DependencyUnavailable("calendar feed", type(exc).__name__) from None
        return data

    async def changes(self, source: CalendarSource, now: datetime, zone: ZoneInfo) -> CalendarChanges:
        if source.url is None:
            raise CalendarUnreadable("this calendar is uploaded, not fetched")
        start, end = now - CALENDAR_LOOKBACK, now + CALENDAR_LOOKAHEAD
        events = parse_calendar(await self.fetch(source.url), start, end, zone)
        return CalendarChanges(tuple(events), complete=True, window_start=start, window_end=end)

    async def release(self, source: CalendarSource, booking: Booking) -> str | None:
        return None  # the feed's owner reads the `released` flag

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
