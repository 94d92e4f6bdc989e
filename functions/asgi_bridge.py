"""Our FastAPI app served from one Azure Functions HTTP-streams function, chunk by chunk (docs/streaming.md).

With HTTP streams on (azurefunctions-extensions-http-fastapi, PYTHON_ENABLE_INIT_INDEXING=1) the Python worker
runs its own uvicorn server on loopback; the Functions host forwards each request to it, and the worker hands
the function the Starlette `Request` its catch-all route received (that uvicorn's scope and `receive`). Whatever
Response the function returns is what that uvicorn sends back, streaming included. So the function runs our ASGI
app on the request and answers with a StreamingResponse of the app's body chunks as the app sends them:

- the app gets a scope of its own: the ASGI fields of the worker's scope (method, path, query string, headers,
  client...), without the worker's routing keys (its `app`, `router`, `route`, `path_params`) or its lifespan
  `state`, which the app would otherwise take for its own;
- the request body comes from the worker's `receive` until the app has read all of it or has started its answer;
  after that the worker's StreamingResponse alone reads `receive`, to hear the client go;
- the answer is returned once the app sent `http.response.start` (status and headers), its body then follows
  through a queue of QUEUE_MESSAGES messages: a client that reads slowly stops the app's `send`, not the memory;
- the client gone (the worker's StreamingResponse cancels the body) or the response over: the app hears
  `http.disconnect` from `receive` and is cancelled; the StreamingResponses of the app give their streams back
  however they end (functions/routes/stream.py);
- an app that raises before its answer starts is a 500 problem+json, one that starts no answer within
  START_TIMEOUT_S a 504, never a hang; one that raises in the middle of its body breaks the response off
  (AppFailed), so that the client sees a truncated body, not a short one that looks whole.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.problems import PROBLEM_BASE, problem

logger = logging.getLogger(__name__)

# Below the host's 240 s idle limit for a forwarded request (azure-functions-host DefaultHttpProxyService's
# ActivityTimeout): the client gets our 504 rather than the host's broken connection.
START_TIMEOUT_S = 200.0
QUEUE_MESSAGES = 8  # app messages waiting for the client: the backpressure bound
# How long the app may run on once its body is complete (Starlette's background tasks run then), and how long a
# cancelled app may take to unwind, before the bridge stops waiting for it.
FINISH_TIMEOUT_S = 30.0
# The ASGI HTTP scope's own fields (ASGI spec, HTTP connection scope), the only ones the app gets.
SCOPE_FIELDS = ("type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "query_string",
                "root_path", "headers", "client", "server", "extensions")


class AppFailed(Exception):
    """The app raised after its answer had started: the response is broken off."""


@dataclass(frozen=True)
class _Ended:
    """The app returned (error None) or raised (error): the last item of the queue."""

    error: Exception | None


def app_scope(request: Request) -> Scope:
    """The scope the app sees: the ASGI fields of the worker's request, a fresh `state`."""
    outer = request.scope
    scope: dict[str, Any] = {name: outer[name] for name in SCOPE_FIELDS if name in outer}
    scope["headers"] = list(outer.get("headers", []))
    scope["state"] = {}
    return scope


async def serve(app: ASGIApp, request: Request, *, start_timeout_s: float = START_TIMEOUT_S,
                queue_messages: int = QUEUE_MESSAGES, finish_timeout_s: float = FINISH_TIMEOUT_S) -> Response:
    """Run `app` on the worker's `request`; the answer once the app has started it (its body follows)."""
    exchange = _Exchange(app, request, queue_messages, finish_timeout_s)
    return await exchange.start(start_timeout_s)


class _Exchange:
    """One request through the app: the app's task, its messages, and what it has been told."""

    def __init__(self, app: ASGIApp, request: Request, queue_messages: int, finish_timeout_s: float) -> None:
        self.app = app
        self.scope = app_scope(request)
        self.upstream: Receive = request.receive
        self.finish_timeout_s = finish_timeout_s
        self.messages: asyncio.Queue[Message | _Ended] = asyncio.Queue(maxsize=queue_messages)
        self.request_read = False  # the whole body (or the client's disconnect) went to the app
        self.client_gone = False  # the client's disconnect came while the app read the body
        self.started = False  # the app sent http.response.start
        self.body_complete = False  # the app sent its last body message
        self.gone = asyncio.Event()  # the response is over: the app's receive answers http.disconnect
        self.task: asyncio.Task[None] | None = None
        self.error: Exception | None = None

    async def start(self, timeout_s: float) -> Response:
        self.task = asyncio.create_task(self._run(), name=f"asgi-bridge {self.scope.get('path')}")
        try:
            async with asyncio.timeout(timeout_s):
                first = await self.messages.get()
        except TimeoutError:
            logger.error("%s %s: no answer started within %.0f s", self.scope.get("method"), self.scope.get("path"),
                         timeout_s)
            await self.close()
            return problem(504, "Gateway Timeout", f"the answer did not start within {timeout_s:g} s",
                           type_=PROBLEM_BASE + "timeout")
        except BaseException:  # the invocation itself was cancelled: so is the app, without waiting for it
            self.stop()
            raise
        if isinstance(first, _Ended) or first["type"] != "http.response.start":
            if isinstance(first, _Ended) and first.error is not None:
                logger.error("%s %s failed before its answer started", self.scope.get("method"),
                             self.scope.get("path"), exc_info=first.error)
            elif self.client_gone:  # the gate stops reading a body whose client went away: nothing to answer
                logger.info("%s %s: the client went away before the answer", self.scope.get("method"),
                            self.scope.get("path"))
            else:
                logger.error("%s %s: the app sent no http.response.start", self.scope.get("method"),
                             self.scope.get("path"))
            await self.close()
            return problem(500, "Internal server error", "an unexpected error occurred; it has been logged")
        return BridgedResponse(self, first)

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure goes to the reader, which decides what the client sees
            self.error = exc
            await self.messages.put(_Ended(exc))
            return
        await self.messages.put(_Ended(None))

    async def _receive(self) -> Message:
        if not self.request_read and not self.started:
            message = await self.upstream()
            self.client_gone = message["type"] == "http.disconnect"
            if self.client_gone or not message.get("more_body", False):
                self.request_read = True
            return message
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if self.gone.is_set():
            return  # nobody is listening any more; the app is being cancelled
        if message["type"] == "http.response.start":
            self.started = True
        await self.messages.put(message)

    async def body(self) -> AsyncIterator[bytes]:
        """The app's body chunks as it sends them; ends with its last one, raises AppFailed if it raised first."""
        while True:
            item = await self.messages.get()
            if isinstance(item, _Ended):
                if item.error is not None:
                    logger.error("%s %s failed in the middle of its answer", self.scope.get("method"),
                                 self.scope.get("path"), exc_info=item.error)
                    raise AppFailed(str(item.error)) from item.error
                self.body_complete = True  # returned without a last message: what it sent is all there is
                return
            if item["type"] != "http.response.body":
                continue  # nothing else is meaningful after the start
            chunk = item.get("body", b"")
            if chunk:
                yield chunk
            if not item.get("more_body", False):
                self.body_complete = True
                return

    def stop(self) -> None:
        """The client is gone: the app hears http.disconnect and is cancelled."""
        self.gone.set()
        if self.task is not None:
            self.task.cancel()

    async def close(self) -> None:
        """Let the app finish (its body was complete) or tell it the client is gone and cancel it; then wait a
        bounded time for its task. Idempotent."""
        task = self.task
        if task is None:
            return
        if not self.body_complete:
            self.stop()
        done, _ = await asyncio.wait({task}, timeout=self.finish_timeout_s)
        if not done:
            logger.error("%s %s: the app did not end %.0f s after its answer", self.scope.get("method"),
                         self.scope.get("path"), self.finish_timeout_s)
            self.stop()
        elif self.body_complete and self.error is not None:
            logger.error("%s %s failed after its answer was complete", self.scope.get("method"),
                         self.scope.get("path"), exc_info=self.error)


class BridgedResponse(StreamingResponse):
    """The app's answer in the worker's server: its status and headers as the app sent them (repeated headers
    too), its body as it comes; the app is closed however the response ends."""

    def __init__(self, exchange: _Exchange, start: Message) -> None:
        super().__init__(exchange.body(), status_code=start["status"])
        self.raw_headers = [(bytes(name), bytes(value)) for name, value in start.get("headers", [])]
        self.exchange = exchange

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def heard(message: Message) -> Message:
            if message["type"] == "http.disconnect":
                # Stop the app now: Starlette's cancellation of the body can keep missing a body iterator
                # that an app feeds as fast as it is read.
                self.exchange.stop()
            return message

        async def watched() -> Message:
            return await heard(await receive())

        try:
            await super().__call__(scope, watched, send)
        finally:
            body = self.body_iterator
            if hasattr(body, "aclose"):
                await body.aclose()  # left suspended when Starlette cancelled it for a disconnect
            await self.exchange.close()
