"""The request gate: what every HTTP request passes, in this order, before the app sees it.

1. the credential, from the headers alone: a request to any route but the public ones (PUBLIC_PATHS,
   PUBLIC_PREFIXES, PUBLIC_ROUTES) without a valid one is
   answered 401 at once and its body is never read (FastAPI reads a pydantic body before it runs the
   dependencies that check the key, so without this anyone could hold a connection open by trickling a body);
2. the body, read whole within BODY_DEADLINE_S (408 after it) and MAX_REQUEST_BYTES (413), *outside* the work
   limit: a client that sends slowly costs a connection and a buffer, never one of the work slots;
3. a work slot from the admission control (functions/overload.py), or 503 + Retry-After when the queue for one is
   too slow;
4. JSON nested deeper than MAX_JSON_DEPTH: 400 naming `$`;
5. the app, with the buffered body replayed to it (functions/bodies.py keeps each route's own size limits, gzip
   and media types).

A stream (STREAM_PATHS: Server-Sent Events, minutes long) holds its work slot only until its response starts:
by then the route has authorized the caller, found the building, taken one of the instance's stream places
(shared/services/stream.py caps them) and read the first state, which is the work; what follows is mostly
sleeping between polls. Held for the stream's life, 32 open streams would take every slot and shed all else.

The answers the gate gives itself are the same problem+json documents as the app's handlers; the ones given
before the body was read close the connection, so the unread body is never taken for the next request.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.bodies import LARGE_BODIES, MAX_JSON_DEPTH, MAX_REQUEST_BYTES, check_json_depth
from functions.overload import AdmissionControl, Overloaded
from functions.problems import PROBLEM_BASE, contract_problem, domain_problem, problem
from shared.domain.errors import ContractViolation, Unauthenticated
from shared.domain.ports import DependencyUnavailable
from shared.domain.tenancy import Caller

if TYPE_CHECKING:
    from shared.wiring import AppContext

logger = logging.getLogger(__name__)

# The only routes that take no credential. Everything else (unknown paths too: a 404 would tell a stranger
# which paths exist) needs one, so a route added later is authenticated without anyone remembering to.
PUBLIC_PATHS = frozenset({"/api/health", "/api/openapi.json", "/api/docs"})
# And the folders of static files that hold no data (the dashboard's HTML, JS and CSS at `/app/`; the vendored
# Leaflet, Chart.js and Swagger UI): their data calls take a key like any other. Only these two (bare `/app` too
# needs a key): any other path needs one.
PUBLIC_PREFIXES = ("/app/", "/api/static/")
# And the one data route asked before anyone has a credential: how the dashboard signs a tenant's people in
# (functions/routes/signin.py). GET only, one path segment for the tenant (the route validates it: a bad id is
# its 400); any other method or shape needs a credential like everything else.
# And where Microsoft Graph posts a room mailbox's change notifications: Graph sends no key of ours; each
# notification proves itself by its subscription's clientState (shared/services/calendars.py).
PUBLIC_ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("GET", re.compile(r"/api/v1/tenants/[^/]+/signin")),
    ("POST", re.compile(r"/api/v1/graph/notifications/[^/]+/[^/]+/[^/]+")),
)
BODY_DEADLINE_S = 10.0  # from the headers to the body's last byte, in all
# Routes whose response is a long stream: their work slot is given back once the response has started.
STREAM_PATHS = (re.compile(r"/api/v1/buildings/[^/]+/stream"),)
CALLER_STATE = "caller"  # where in the request state the gate leaves the authenticated caller (functions/deps.py)

Authenticate = Callable[[str | None, str | None, Any], Awaitable[Caller]]


async def context_of(app: Any = None) -> AppContext:
    """The worker's context (shared.wiring), looked up the way the routes look it up: through the FastAPI app's
    dependency overrides when a test installs its own context there, else the worker's."""
    from shared.wiring import get_context

    overrides = getattr(app, "dependency_overrides", None) or {}
    found = overrides.get(get_context, get_context)()
    context: AppContext = await found if inspect.isawaitable(found) else found
    return context


async def authenticate_with_context(api_key: str | None, authorization: str | None, app: Any = None) -> Caller:
    """The worker's AuthService, looked up per request (context_of)."""
    return await (await context_of(app)).auth.authenticate_request(api_key, authorization)


class RequestGate:
    def __init__(self, app: ASGIApp, *, admission: AdmissionControl | None = None,
                 authenticate: Authenticate = authenticate_with_context, body_deadline_s: float = BODY_DEADLINE_S,
                 max_body_bytes: int = MAX_REQUEST_BYTES, max_json_depth: int = MAX_JSON_DEPTH,
                 public_paths: frozenset[str] = PUBLIC_PATHS, public_prefixes: tuple[str, ...] = PUBLIC_PREFIXES,
                 public_routes: tuple[tuple[str, re.Pattern[str]], ...] = PUBLIC_ROUTES,
                 large_bodies: tuple[tuple[re.Pattern[str], int], ...] = LARGE_BODIES,
                 streams: tuple[re.Pattern[str], ...] = STREAM_PATHS) -> None:
        self.app = app
        self.admission = admission or AdmissionControl()
        self.authenticate = authenticate
        self.body_deadline_s = body_deadline_s
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.public_paths = public_paths
        self.public_prefixes = public_prefixes
        self.public_routes = public_routes
        self.large_bodies = large_bodies
        self.streams = streams
        self.timed_out = 0
        self.refused = 0  # 401 before reading a body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.body_deadline_s
        headers = _headers(scope)
        if not self.is_public(scope["path"], scope["method"]):
            try:
                who = await self.authenticate(headers.get(b"x-api-key"), headers.get(b"authorization"),
                                              scope.get("app"))
            except (Unauthenticated, DependencyUnavailable) as exc:
                self.refused += isinstance(exc, Unauthenticated)
                await _answer(domain_problem(exc), scope, send, close=True)
                return
            scope.setdefault("state", {})[CALLER_STATE] = who

        body = await self._read_body(scope, receive, send, headers, deadline)
        if body is None:
            return  # answered (408, 413) or the client went away

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, which streaming responses listen for

        if any(pattern.fullmatch(scope["path"]) for pattern in self.streams):
            try:
                await self._stream(scope, replay, send)
            except Overloaded as exc:
                await _answer(_overloaded(exc), scope, send)
            return
        try:
            async with self.admission.slot():  # the only thing here that raises Overloaded
                if body and _is_identity_json(headers):
                    try:
                        check_json_depth(body, self.max_json_depth)
                    except ContractViolation as exc:
                        await _answer(contract_problem(exc), scope, send)
                        return
                await self.app(scope, replay, send)
        except Overloaded as exc:
            await _answer(_overloaded(exc), scope, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app for a stream route, holding a work slot until the response starts (or the app ends without one:
        an error answer is a normal response and starts too). Raises Overloaded before the app runs."""
        held = self.admission.slot()
        await held.__aenter__()  # entered by hand: it is left in the middle of the app, not around it
        released = False

        async def release() -> None:
            nonlocal released
            if not released:
                released = True
                await held.__aexit__(None, None, None)

        async def send_then_release(message: Message) -> None:
            if message["type"] == "http.response.start":
                await release()
            await send(message)

        try:
            await self.app(scope, receive, send_then_release)
        finally:
            await release()

    def is_public(self, path: str, method: str = "GET") -> bool:
        """One of PUBLIC_PATHS, one of PUBLIC_ROUTES with its method, or a file under PUBLIC_PREFIXES (no `..`
        segment, no backslash: a path that climbs out of the folder is not public, whatever the static files would
        make of it)."""
        if path in self.public_paths:
            return True
        if any(method == allowed and pattern.fullmatch(path) for allowed, pattern in self.public_routes):
            return True
        return path.startswith(self.public_prefixes) and "\\" not in path and ".." not in path.split("/")

    def body_limit(self, path: str) -> int:
        """The most bytes a request to `path` may carry: MAX_REQUEST_BYTES, more on the few routes made for files."""
        for pattern, limit in self.large_bodies:
            if pattern.fullmatch(path):
                return limit
        return self.max_body_bytes

    async def _read_body(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, str],
                         deadline: float) -> bytes | None:
        limit = self.body_limit(scope["path"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _answer(self._too_large(limit), scope, send, close=True)
            return None
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        break
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            self.timed_out += 1
            # debug, not info: under a slow-client attack this would be a line per attacking request
            logger.debug("body of %s %s not received within %.1f s", scope["method"], scope["path"],
                         self.body_deadline_s)
            await _answer(problem(408, "Request Timeout", f"the request body did not arrive within "
                                  f"{self.body_deadline_s:g} s", type_=PROBLEM_BASE + "body-timeout"),
                          scope, send, close=True)
            return None
        await _answer(self._too_large(limit), scope, send, close=True)
        return None

    def _too_large(self, limit: int) -> Response:
        return problem(413, "Content Too Large", f"the body exceeds {limit // 1024} KB",
                       type_=PROBLEM_BASE + "too-large")


def _overloaded(exc: Overloaded) -> Response:
    return problem(503, "Service unavailable", "this instance is overloaded; retry after the Retry-After seconds",
                   type_=PROBLEM_BASE + "overloaded", headers={"Retry-After": str(exc.retry_after_s)})


def _headers(scope: Scope) -> dict[bytes, str]:
    """The request headers the gate reads; the first of repeated ones, as Starlette's `headers.get` does."""
    found: dict[bytes, str] = {}
    for name, value in scope["headers"]:
        if name in _READ and name not in found:
            found[name] = value.decode("latin-1")
    return found


_READ = frozenset({b"x-api-key", b"authorization", b"content-length", b"content-type", b"content-encoding"})


def _is_identity_json(headers: dict[bytes, str]) -> bool:
    """A body the app will parse as JSON as it is: no content coding, and JSON or no media type (read_json_body
    takes a missing one for JSON). Gzip bodies are checked once decompressed, in functions/bodies.py."""
    if headers.get(b"content-encoding", "identity").strip().lower() != "identity":
        return False
    media_type = headers.get(b"content-type", "application/json").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def _answer(response: Response | None, scope: Scope, send: Send, *, close: bool = False) -> None:
    response = response or problem(500, "Internal server error")  # domain_problem knows every error passed here
    if close:
        response.headers["Connection"] = "close"

    async def no_body() -> Message:  # the gate's answers read nothing more
        return {"type": "http.disconnect"}

    await response(scope, no_body, send)
