"""Live state as Server-Sent Events, and the same changes for clients that poll (shared/services/stream.py,
docs/streaming.md)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, Field
from starlette.responses import StreamingResponse
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from functions.deps import require
from functions.problems import PROBLEM_BASE, problem
from functions.routes.buildings import SpaceOut, _space_out
from functions.routes.models import PROBLEMS, PathId
from shared.domain.tenancy import Principal, Scope
from shared.services.queries import SpaceView
from shared.services.stream import MAX_STREAM_SECONDS, EventStream, TooManyStreams
from shared.wiring import AppContext, get_context

router = APIRouter(prefix="/v1/buildings", tags=["buildings"], responses=PROBLEMS)


class ChangesOut(BaseModel):
    items: list[SpaceOut]
    cursor: str = Field(description="pass as `since` next time")


def _render(view: SpaceView) -> dict[str, Any]:
    return _space_out(view).model_dump(mode="json")


class EventStreamResponse(StreamingResponse):
    """A StreamingResponse that closes its stream however the response ends: done, the client gone (Starlette
    cancels the body then), or an error, so no stream keeps its place and no generator is left suspended."""

    def __init__(self, stream: EventStream) -> None:
        super().__init__(stream.body(), media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.stream = stream

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            body = self.body_iterator
            if hasattr(body, "aclose"):
                await body.aclose()
            self.stream.close()


# One server-sent event as its fields (what SSE-aware tools such as schemathesis check each event against):
# `data` is JSON text (the snapshot `{items, cursor}` or one space's state).
_SSE_EVENT = {"type": "object", "properties": {
    "event": {"type": "string", "enum": ["snapshot", "space"]}, "data": {"type": "string"},
    "id": {"type": "string"}, "retry": {"type": "integer"}}}

@router.get("/{buildingId}/stream", summary="Live state as Server-Sent Events: a snapshot, then each change",
            response_class=StreamingResponse,
            responses={200: {"description": "`text/event-stream`: `retry`, one `snapshot` event "
                                            "(`{items, cursor}`), then a `space` event per changed space (its "
                                            "state as GET .../spaces/{spaceId}); each `id` is a cursor; "
                                            "`: keepalive` comments every 15 s",
                             "content": {"text/event-stream": {"schema": _SSE_EVENT}}}})
async def stream(buildingId: PathId,
                 last_event_id: str | None = Header(default=None, alias="Last-Event-ID", max_length=128,
                                                    description="the id of the last event received: resume"),
                 max_seconds: int | None = Query(default=None, alias="maxSeconds", ge=0,
                                                 le=int(MAX_STREAM_SECONDS),
                                                 description="end the stream after this many seconds "
                                                             f"(at most and by default {MAX_STREAM_SECONDS:g})"),
                 who: Principal = Depends(require(Scope.read)),
                 context: AppContext = Depends(get_context)) -> Response:
    try:
        opened = await context.stream.open(who.building(buildingId), _render, last_event_id=last_event_id,
                                           lifetime_s=max_seconds)
    except TooManyStreams as exc:
        return problem(503, "Service unavailable", "this instance has as many streams open as it serves; retry "
                       "after the Retry-After seconds", type_=PROBLEM_BASE + "too-many-streams",
                       headers={"Retry-After": str(exc.retry_after_s)})
    return EventStreamResponse(opened)


@router.get("/{buildingId}/changes", response_model=ChangesOut,
            summary="The spaces changed since a cursor (the stream, for clients that poll)")
async def changes(buildingId: PathId,
                  since: str | None = Query(default=None, max_length=128,
                                            description="the `cursor` of the previous answer, or a stream event's "
                                                        "id; without it, every space"),
                  who: Principal = Depends(require(Scope.read)),
                  context: AppContext = Depends(get_context)) -> ChangesOut:
    found = await context.stream.changes(who.building(buildingId), since)
    return ChangesOut(items=[_space_out(v) for v in found.items], cursor=str(found.cursor))
