"""Live state as a stream: Server-Sent Events of the spaces whose state changes, and the same changes for clients
that poll (docs/streaming.md).

The stream works across instances because it never listens to the pipeline: it polls the live-state store every
`STREAM_POLL_SECONDS` and emits the spaces whose visible state (what `GET .../spaces/{spaceId}` answers) differs
from what it sent last. Whichever instance's pipeline changed the state, the next poll sees it. A poll reads the
building's floor summaries and the bookings running now, and the space documents only of the spaces whose visible
state the summaries show changed (their `last_change` makes the event's id); opening, resuming and `changes`
read every space document, since they need every space's cursor.

Each event's id is a cursor: the last change time of the newest state it carries and that space's id
(`2026-01-05T10:00:00.000000Z~r-oak`). A state's last change only moves forward, so "every state whose
(last change, space id) is after the cursor" is what changed since; a client that reconnects with
`Last-Event-ID` (or polls `changes?since=`) gets exactly that, without what it had already.

The stream is pure but for the injected clock and sleep: tests run a ten-minute stream in no time.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.domain.errors import ContractViolation, DomainError, FieldError
from shared.domain.tenancy import BuildingRef
from shared.services.queries import QueryService, SpaceView

logger = logging.getLogger(__name__)

STREAM_POLL_SECONDS = 2.0  # how often a stream reads the building's live state
KEEPALIVE_SECONDS = 15.0  # a comment when nothing else was sent for this long (proxies close idle connections)
MAX_STREAM_SECONDS = 600.0  # then the server ends the stream and the client reconnects with Last-Event-ID
MAX_STREAMS = 200  # open streams per instance
RETRY_AFTER_S = 5  # the Retry-After of a refused stream
_CURSOR_SEPARATOR = "~"  # never in a space id (^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$), never in a time
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Render = Callable[[SpaceView], dict[str, Any]]
Sleep = Callable[[float], Awaitable[None]]
Monotonic = Callable[[], float]


class TooManyStreams(DomainError):
    """This instance has MAX_STREAMS open: answer 503 with Retry-After (another instance may have room)."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many open streams on this instance")
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, order=True)
class Cursor:
    at: datetime
    space_id: str

    def __str__(self) -> str:
        return f"{self.at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}{_CURSOR_SEPARATOR}{self.space_id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """ValueError unless `text` is a cursor this service wrote."""
        at, separator, space_id = text.partition(_CURSOR_SEPARATOR)
        if not separator or len(text) > 128:
            raise ValueError(text)
        moment = datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        return cls(moment, space_id)


START = Cursor(_EPOCH, "")  # before every change


def cursor_of(view: SpaceView) -> Cursor | None:
    """Where this space's state sits in the order of changes; None for a space that has no state yet."""
    if view.state is None or view.state.last_change is None:
        return None
    return Cursor(view.state.last_change, view.space.id)


def changed_since(views: list[SpaceView], since: Cursor) -> list[tuple[Cursor, SpaceView]]:
    """The spaces whose state changed after `since`, oldest change first."""
    found = [(c, v) for v in views if (c := cursor_of(v)) is not None and c > since]
    found.sort(key=lambda pair: pair[0])
    return found


def newest(views: list[SpaceView], floor: Cursor = START) -> Cursor:
    return max((c for v in views if (c := cursor_of(v)) is not None), default=floor)


def visible(view: SpaceView) -> tuple[Any, ...]:
    """What a client sees of a space: a change of anything else (an occupant replaced by another) is no event."""
    return (view.space, view.status, view.headcount, view.since)


def frame(data: str, *, event: str | None = None, id_: str | None = None) -> bytes:
    """One Server-Sent Event: `event:`, `id:` and a `data:` line per line of data, then a blank line."""
    lines = [f"event: {event}"] if event else []
    if id_ is not None:
        lines.append(f"id: {id_}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Changes:
    """What `changes?since=` answers: the states changed since the cursor (all spaces without one), and the
    cursor to ask with next."""

    items: list[SpaceView]
    cursor: Cursor


class EventStream:
    """One open stream: its first events, computed when it is opened, then `body()` until its lifetime ends.
    `close()` gives its place back; it is idempotent and `body()` calls it when it ends."""

    def __init__(self, service: StreamService, ref: BuildingRef, render: Render, first: list[bytes],
                 sent: dict[str, tuple[Any, ...]], cursor: Cursor, lifetime_s: float) -> None:
        self._service = service
        self._ref = ref
        self._render = render
        self._first = first
        self._sent = sent
        self._unchanged: dict[str, object] = {}  # QueryService.changed_views' record, from poll to poll
        self.cursor = cursor
        self._deadline = service.clock() + lifetime_s
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._service.open_streams -= 1

    async def body(self) -> AsyncIterator[bytes]:
        service = self._service
        try:
            for chunk in self._first:
                yield chunk
            last_write = service.clock()
            while (left := self._deadline - service.clock()) > 0:
                await service.sleep(min(service.poll_s, left))
                try:
                    chunks = await self.poll()
                except DomainError as exc:  # the building went away, or the store is down: the client reconnects
                    logger.info("ending a stream of %s: %s", self._ref.building_id, exc)
                    return
                if not chunks and service.clock() - last_write >= service.keepalive_s:
                    chunks = [b": keepalive\n\n"]
                for chunk in chunks:
                    yield chunk
                if chunks:
                    last_write = service.clock()
        finally:
            self.close()

    async def poll(self) -> list[bytes]:
        """The `space` events of what changed since the last poll: the floor summaries and the bookings running
        now, then the documents of the spaces whose visible state changed (QueryService.changed_views)."""
        queries = self._service.queries
        changed = await queries.changed_views(await queries.building(self._ref),
                                              lambda view: self._sent.get(view.space.id) != visible(view),
                                              self._unchanged)
        for view in changed:
            self._sent[view.space.id] = visible(view)
        ordered = sorted(changed, key=lambda v: cursor_of(v) or START)
        out = []
        for view in ordered:
            # ids only move forward, even for a change whose own time is older than one already sent
            self.cursor = max(self.cursor, cursor_of(view) or START)
            out.append(frame(_json(self._render(view)), event="space", id_=str(self.cursor)))
        return out


class StreamService:
    def __init__(self, queries: QueryService, *, poll_s: float = STREAM_POLL_SECONDS,
                 keepalive_s: float = KEEPALIVE_SECONDS, lifetime_s: float = MAX_STREAM_SECONDS,
                 max_streams: int = MAX_STREAMS, clock: Monotonic = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.queries = queries
        self.poll_s = poll_s
        self.keepalive_s = keepalive_s
        self.lifetime_s = lifetime_s
        self.max_streams = max_streams
        self.clock = clock
        self.sleep = sleep
        self.open_streams = 0

    async def changes(self, ref: BuildingRef, since: str | None) -> Changes:
        """Every space without `since`; with it, the states changed after it. NotFound for no such building;
        ContractViolation naming `since` for text that is not a cursor."""
        views = await self.queries.views(await self.queries.building(ref))
        if since is None:
            return Changes(views, newest(views))
        try:
            after = Cursor.parse(since)
        except ValueError:
            raise ContractViolation([FieldError("query.since", "not a cursor from this API")]) from None
        found = changed_since(views, after)
        return Changes([v for _c, v in found], max(after, newest(views)))

    async def open(self, ref: BuildingRef, render: Render, *, last_event_id: str | None = None,
                   lifetime_s: float | None = None) -> EventStream:
        """A stream of the building: NotFound for no such building, TooManyStreams over the cap. Its first events:
        the retry hint, then a `snapshot` of every space, or, resuming after `last_event_id`, a `space` event per
        state changed since (an id this service did not write starts over with a snapshot)."""
        if self.open_streams >= self.max_streams:
            raise TooManyStreams(RETRY_AFTER_S)
        views = await self.queries.views(await self.queries.building(ref))
        resume: Cursor | None = None
        if last_event_id:
            try:
                resume = Cursor.parse(last_event_id.strip())
            except ValueError:
                resume = None
        # EventSource waits `retry` ms before it reconnects: a poll interval, so a stream ended by its lifetime
        # (or asked for with maxSeconds=0: polling through SSE) costs a client at most one poll of latency.
        first = [f"retry: {round(self.poll_s * 1000)}\n\n".encode()]
        if resume is None:
            cursor = newest(views)
            first.append(frame(_json({"items": [render(v) for v in views], "cursor": str(cursor)}),
                               event="snapshot", id_=str(cursor)))
        else:
            cursor = resume
            for at, view in changed_since(views, resume):
                cursor = at
                first.append(frame(_json(render(view)), event="space", id_=str(at)))
        sent = {v.space.id: visible(v) for v in views}
        self.open_streams += 1  # last: nothing above may leave the count raised
        return EventStream(self, ref, render, first, sent, cursor,
                           self.lifetime_s if lifetime_s is None else min(lifetime_s, self.lifetime_s))
