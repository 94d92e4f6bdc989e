"""The bridge from the Functions worker's Request to our ASGI app (functions/asgi_bridge.py), in process: the
worker's side is a scope like the one its uvicorn and its FastAPI catch-all route make, a `receive` that gives
the body then waits for the client to go, and a `send` that records what would go on the wire."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest
from starlette.requests import Request

from functions import asgi_bridge
from functions.bodies import MAX_REQUEST_BYTES
from functions.http_api import create_api
from shared.domain.tenancy import Scope
from tests.support.pipeline import add_small_site


def worker_scope(method: str = "GET", path: str = "/api/x", query: bytes = b"",
                 headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    """What the worker's route hands over: uvicorn's HTTP scope (spec 2.3, its lifespan state), plus what its
    FastAPI catch-all route added (its app, router, route, endpoint and the `path` parameter)."""
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "server": ("127.0.0.1", 50123), "client": ("127.0.0.1", 40000), "scheme": "http", "method": method,
            "root_path": "", "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": headers or [(b"host", b"127.0.0.1:50123")], "state": {"worker": "lifespan state"},
            "app": object(), "router": object(), "route": object(), "endpoint": object(),
            "path_params": {"path": path.lstrip("/")}}


class Client:
    """The worker's connection: the body in `chunks`, then `receive` waits until `leave()`; `send` records."""

    def __init__(self, chunks: list[bytes] | None = None) -> None:
        self.chunks = list(chunks or [b""])
        self.left = asyncio.Event()
        self.sent: list[dict] = []
        self.body_arrived = asyncio.Event()

    async def receive(self) -> dict:
        if self.chunks:
            chunk = self.chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}
        await self.left.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            self.body_arrived.set()

    def leave(self) -> None:
        self.left.set()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def through_bridge(app, client: Client, scope: dict | None = None, **options):
    """The function's answer for the request, then the worker sending it; (response, client)."""
    scope = scope or worker_scope()
    response = await asgi_bridge.serve(app, Request(scope, client.receive), **options)
    await response(scope, client.receive, client.send)
    return response


def bridge_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("asgi-bridge")]


async def test_the_app_gets_its_own_scope_the_body_and_its_headers_go_back_as_sent():
    seen = {}

    async def app(scope, receive, send):
        seen["scope"] = scope
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 201,
                    "headers": [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-len", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body[:3], "more_body": True})
        await send({"type": "http.response.body", "body": body[3:]})

    client = Client([b"hello ", b"wor", b"ld"])
    scope = worker_scope("POST", "/api/v1/things", b"a=1&b=2")
    response = await through_bridge(app, client, scope)
    assert client.body == b"hello world"
    assert client.sent[0]["status"] == 201
    assert client.sent[0]["headers"] == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-len", b"11")]
    own = seen["scope"]
    assert (own["method"], own["path"], own["query_string"], own["raw_path"]) == ("POST", "/api/v1/things",
                                                                                 b"a=1&b=2", b"/api/v1/things")
    assert own["client"] == ("127.0.0.1", 40000) and own["asgi"]["spec_version"] == "2.3"
    # the worker's routing and lifespan state are not the app's: Starlette would use its router for url_for
    assert not {"app", "router", "route", "endpoint", "path_params"} & set(own)
    assert own["state"] == {} and scope["state"] == {"worker": "lifespan state"}
    assert response.exchange.task.done() and not bridge_tasks()


async def test_an_app_that_raises_before_its_answer_is_a_500_problem(caplog):
    async def app(scope, receive, send):
        raise RuntimeError("the database exploded")

    client = Client()
    with caplog.at_level(logging.ERROR, logger="functions.asgi_bridge"):
        response = await through_bridge(app, client)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert json.loads(client.body)["status"] == 500
    assert "the database exploded" not in client.body.decode()  # logged, not told to the client
    assert any(r.exc_info and "the database exploded" in str(r.exc_info[1]) for r in caplog.records)


async def test_an_app_that_returns_without_an_answer_is_a_500_problem():
    async def app(scope, receive, send):
        await receive()

    response = await through_bridge(app, Client())
    assert response.status_code == 500


async def test_an_app_that_does_not_start_its_answer_in_time_is_a_504_and_is_cancelled():
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def app(scope, receive, send):
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    client = Client()
    response = await through_bridge(app, client, start_timeout_s=0.05)
    assert entered.is_set() and cancelled.is_set()
    assert response.status_code == 504
    assert json.loads(client.body) == {"type": "https://spaceflow.dev/problems/timeout", "title": "Gateway Timeout",
                                       "status": 504, "detail": "the answer did not start within 0.05 s"}
    assert not bridge_tasks()


async def test_an_app_that_raises_mid_body_breaks_the_response_off():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first part", "more_body": True})
        raise RuntimeError("lost the store")

    client = Client()
    with pytest.raises(asgi_bridge.AppFailed, match="lost the store"):
        await through_bridge(app, client)
    assert client.body == b"first part"
    # no closing message: the server cannot end the body as if it were whole
    assert not [m for m in client.sent if m["type"] == "http.response.body" and not m.get("more_body")]
    assert not bridge_tasks()


async def test_chunks_reach_the_client_while_the_app_still_runs_and_its_end_is_awaited():
    go_on = asyncio.Event()
    finished = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"now", "more_body": True})
        await go_on.wait()
        await send({"type": "http.response.body", "body": b" later"})
        finished.append("after the body, e.g. a background task")

    client = Client()
    response = await asgi_bridge.serve(app, Request(worker_scope(), client.receive))
    sending = asyncio.create_task(response(worker_scope(), client.receive, client.send))
    await asyncio.wait_for(client.body_arrived.wait(), timeout=5)
    assert client.body == b"now" and not sending.done()
    go_on.set()
    await asyncio.wait_for(sending, timeout=5)
    assert client.body == b"now later"
    assert finished and response.exchange.task.done() and not response.exchange.task.cancelled()


async def test_a_slow_client_holds_the_app_back_by_the_queue_bound():
    sent_by_app = 0

    async def app(scope, receive, send):
        nonlocal sent_by_app
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(200):
            await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
            sent_by_app += 1
        await send({"type": "http.response.body", "body": b""})

    reading = asyncio.Event()
    taken = 0

    async def slow_send(message):
        nonlocal taken
        if message["type"] == "http.response.body" and message.get("body"):
            taken += 1
            await reading.wait()  # the client reads nothing more until told

    client = Client()
    response = await asgi_bridge.serve(app, Request(worker_scope(), client.receive), queue_messages=4)
    sending = asyncio.create_task(response(worker_scope(), client.receive, slow_send))
    for _ in range(50):  # give the app every chance to run ahead
        await asyncio.sleep(0)
    assert taken == 1
    assert sent_by_app <= 4 + 2  # the queue, the chunk the client holds, the one the app is putting
    reading.set()
    await asyncio.wait_for(sending, timeout=5)
    assert sent_by_app == 200


async def test_a_client_that_goes_away_ends_the_app_which_hears_the_disconnect():
    heard = []
    ended = asyncio.Event()

    async def app(scope, receive, send):
        await receive()  # the body, as the request gate reads it

        async def listen():
            heard.append((await receive())["type"])

        listener = asyncio.create_task(listen())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while True:  # a producer as fast as its reader: it never waits on anything else
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0)
        finally:
            await asyncio.wait_for(listener, timeout=5)
            ended.set()

    client = Client()
    response = await asgi_bridge.serve(app, Request(worker_scope(), client.receive))
    sending = asyncio.create_task(response(worker_scope(), client.receive, client.send))
    await asyncio.wait_for(client.body_arrived.wait(), timeout=5)
    client.leave()
    await asyncio.wait_for(sending, timeout=5)
    assert ended.is_set() and heard == ["http.disconnect"]
    assert response.exchange.task.cancelled() and not bridge_tasks()


async def test_a_cancelled_invocation_cancels_the_app():
    cancelled = asyncio.Event()
    entered = asyncio.Event()

    async def app(scope, receive, send):
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    client = Client()
    invocation = asyncio.create_task(asgi_bridge.serve(app, Request(worker_scope(), client.receive)))
    await asyncio.wait_for(entered.wait(), timeout=5)
    invocation.cancel()
    with pytest.raises(asyncio.CancelledError):
        await invocation
    await asyncio.wait_for(cancelled.wait(), timeout=5)


# ----------------------------------------------------------------------------------------------- our app
@pytest.fixture
async def ingest_key(memory_context) -> str:
    await add_small_site(memory_context.site_models)
    key, _ = await memory_context.auth.mint_key("tenant-a", {Scope.ingest})
    return key


def api_scope(method: str, path: str, key: str, extra: list[tuple[bytes, bytes]] | None = None) -> dict:
    return worker_scope(method, path, headers=[(b"host", b"127.0.0.1"), (b"x-api-key", key.encode()),
                                               (b"content-type", b"application/json"), *(extra or [])])


async def test_a_body_over_the_limit_sent_in_chunks_is_the_gates_413(memory_context, ingest_key):
    chunk = b" " * (256 * 1024)
    client = Client([chunk] * (MAX_REQUEST_BYTES // len(chunk) + 4))
    scope = api_scope("POST", "/api/v1/sightings", ingest_key)
    response = await asgi_bridge.serve(create_api(), Request(scope, client.receive))
    assert len(client.chunks) == 3, "the gate stops reading once the limit is passed"
    await response(scope, client.receive, client.send)
    assert response.status_code == 413
    assert json.loads(client.body)["type"].endswith("/too-large")
    assert memory_context.publisher.published == []


async def test_a_declared_length_over_the_limit_is_answered_before_any_body_is_read(memory_context, ingest_key):
    client = Client([b"{}"])
    scope = api_scope("POST", "/api/v1/sightings", ingest_key,
                      [(b"content-length", str(MAX_REQUEST_BYTES + 1).encode())])
    response = await asgi_bridge.serve(create_api(), Request(scope, client.receive))
    assert client.chunks == [b"{}"]  # not read
    assert response.status_code == 413
    assert response.headers["connection"] == "close"


async def test_a_client_gone_while_sending_its_body_is_no_error(memory_context, ingest_key, caplog):
    chunks = [b"{"]

    async def receive():  # one chunk of the body, then the client is gone
        if chunks:
            return {"type": "http.request", "body": chunks.pop(), "more_body": True}
        return {"type": "http.disconnect"}

    scope = api_scope("POST", "/api/v1/sightings", ingest_key)
    with caplog.at_level(logging.INFO, logger="functions.asgi_bridge"):
        response = await asgi_bridge.serve(create_api(), Request(scope, receive))
    assert response.status_code == 500  # what the worker would send to nobody
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("went away" in r.getMessage() for r in caplog.records)


async def test_an_app_that_hangs_after_a_complete_answer_is_cancelled_after_the_finish_timeout(caplog):
    cancelled = asyncio.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    client = Client()
    with caplog.at_level(logging.ERROR, logger="functions.asgi_bridge"):
        await asyncio.wait_for(through_bridge(app, client, finish_timeout_s=0.05), timeout=5)
    assert client.body == b"done"
    await asyncio.wait_for(cancelled.wait(), timeout=5)
    assert any("did not end" in r.getMessage() for r in caplog.records)
