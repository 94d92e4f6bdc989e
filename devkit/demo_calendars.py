"""The demo's room calendars: an iCalendar feed per meeting room, served by the demo itself on loopback, holding a
booking for each meeting the simulated people hold there (honoured) and some that nobody comes to (no-shows).

The rooms are connected to their feeds through the API, as a building's admin would (`PUT .../calendar`), and the
building releases no-shows, so each no-show's booking shows `released` (docs/bookings.md)."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web

from shared.domain import space_kinds

if TYPE_CHECKING:
    from devkit.office import OfficeDay

SLOT_S = 30 * 60.0  # a no-show booking lasts half an hour
EARLIEST_S = -9 * 60.0  # one booking starts before the day: nobody is in yet, so its no-show comes within a minute


@dataclass(frozen=True)
class DemoBooking:
    room: str
    start_s: float  # simulated seconds from the day's start
    end_s: float
    honoured: bool  # the simulator sends people to it (whether the system sees them is what the demo shows)


def demo_bookings(day: OfficeDay, seed: int) -> list[DemoBooking]:
    """A booking for every planned meeting that someone attends, and about one no-show for every two of those (at
    least three) in meeting rooms at times the plan leaves them empty, all decided within the simulated day."""
    rng = random.Random(seed + 4242)  # its own generator: the office's plan stays what the seed makes it
    stays = [(s.space_id, s.start_s, s.end_s) for p in day.people for s in p.stays]
    booked: list[DemoBooking] = []
    for room, start, end in day.meetings:
        attended = any(r == room and s < end and start < e for r, s, e in stays)
        if attended:
            booked.append(DemoBooking(room, start, end, True))
    rooms = sorted(s.id for s in day.site.spaces if s.kind.value in space_kinds.MEETING_ROOMS and s.bookable)
    wanted = max(3, len(booked) // 2)
    latest = day.window_s - 12 * 60.0  # decided (10 minutes after the start) before the day is over
    no_shows: list[DemoBooking] = []

    def free(room: str, start: float, end: float) -> bool:
        busy = [(s, e) for r, s, e in stays if r == room] + [(b.start_s, b.end_s) for b in booked + no_shows
                                                             if b.room == room]
        # nobody planned in the room around then, nor booked: a clean no-show
        return not any(s < end + 300 and start - 300 < e for s, e in busy)

    # the first, from before the day: some room is always free then
    early = next((room for room in rng.sample(rooms, len(rooms)) if free(room, EARLIEST_S, EARLIEST_S + SLOT_S)),
                 None)
    if early is not None:
        no_shows.append(DemoBooking(early, EARLIEST_S, EARLIEST_S + SLOT_S, False))
    for _ in range(wanted * 20):
        if len(no_shows) >= wanted or not rooms:
            break
        start, room = rng.uniform(0.0, max(latest, 0.0)), rng.choice(rooms)
        if free(room, start, start + SLOT_S):
            no_shows.append(DemoBooking(room, start, start + SLOT_S, False))
    return sorted(booked + no_shows, key=lambda b: (b.start_s, b.room))


def calendar_ics(room: str, bookings: list[DemoBooking], day_start: datetime) -> bytes:
    """One room's feed. Each event has a subject and an organizer, as real ones do: spaceflow keeps neither."""
    def stamp(second: float) -> str:
        return (day_start + timedelta(seconds=second)).strftime("%Y%m%dT%H%M%SZ")

    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//spaceflow devkit//demo room calendar//EN"]
    for i, booking in enumerate(b for b in bookings if b.room == room):
        lines += ["BEGIN:VEVENT", f"UID:{room}-{i}@demo.spaceflow.invalid", f"DTSTAMP:{stamp(0)}",
                  f"DTSTART:{stamp(booking.start_s)}", f"DTEND:{stamp(booking.end_s)}",
                  "SUMMARY:Team meeting", "ORGANIZER;CN=Demo Organizer:mailto:organizer@example.com", "END:VEVENT"]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(lines) + "\r\n").encode()


class CalendarServer:
    """Serves `/rooms/<room>.ics` on loopback."""

    def __init__(self, bookings: list[DemoBooking], day_start: datetime) -> None:
        self._bookings = bookings
        self._day_start = day_start
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.fetched = 0

    async def _feed(self, request: web.Request) -> web.Response:
        self.fetched += 1
        room = request.match_info["room"]
        return web.Response(body=calendar_ics(room, self._bookings, self._day_start), content_type="text/calendar")

    async def start(self, host: str = "127.0.0.1") -> str:
        app = web.Application()
        app.router.add_get("/rooms/{room}.ics", self._feed)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, 0)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.base_url = f"http://{host}:{sockets[0].getsockname()[1]}"
        return self.base_url

    def url(self, room: str) -> str:
        return f"{self.base_url}/rooms/{room}.ics"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
