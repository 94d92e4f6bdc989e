"""`python -m devkit webhook-receiver --port P --secret S`: a webhook receiver on loopback that checks each
delivery's signature with the `standardwebhooks` library (as an integrator would), parses the body with the
CloudEvents SDK, prints the verified events and answers 401 to bad signatures. Never deployed.

`WebhookReceiver` is the same receiver as a library: the tests, `make demo` and `devkit bench` run it in process
and tell it how to misbehave (fail the first N attempts, hang, answer 410)."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class Received:
    """One verified delivery."""

    event: dict[str, Any]
    webhook_id: str
    received_at: float  # time.time()
    attempt: int  # the how-manieth request carrying this webhook id


@dataclass
class WebhookReceiver:
    secrets: list[str]
    fail_first: int = 0  # answer 503 to the first N requests of each event id
    hang_s: float = 0.0  # wait this long before answering
    status: int = 204  # the answer once it succeeds (410: unsubscribe)
    received: list[Received] = field(default_factory=list)
    rejected: int = 0
    requests: int = 0
    on_event: Callable[[Received], None] | None = None
    _attempts: dict[str, int] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    port: int = 0

    def verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        """The event when one of our secrets verifies the signature (standardwebhooks checks the timestamp too),
        else None."""
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
            except WebhookVerificationError:
                continue
            parsed = from_structured_event(HTTPMessage(headers=headers, body=body))  # valid CloudEvents 1.0?
            event: dict[str, Any] = json.loads(body)
            if parsed.get_id() != event["id"]:
                return None
            return event
        return None

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        event = self.verify(body, headers)
        if event is None:
            self.rejected += 1
            return web.Response(status=401, text="bad signature")
        webhook_id = headers["webhook-id"]
        attempt = self._attempts.get(webhook_id, 0) + 1
        self._attempts[webhook_id] = attempt
        if self.hang_s:
            await asyncio.sleep(self.hang_s)
        if attempt <= self.fail_first:
            return web.Response(status=503, text="not now")
        if self.status >= 300:
            return web.Response(status=self.status)
        received = Received(event, webhook_id, time.time(), attempt)
        self.received.append(received)
        if self.on_event is not None:
            self.on_event(received)
        return web.Response(status=self.status)

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        """Listen on loopback; returns the URL to subscribe."""
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        return f"http://{host}:{self.port}/events"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8089, help="loopback port to listen on")
    parser.add_argument("--secret", action="append", required=True,
                        help="the subscription's whsec_ secret (repeat for a rotated one)")


def print_event(received: Received) -> None:
    event = received.event
    data = event.get("data") or {}
    what = f"headcount {data['headcount']}" if "headcount" in data else f"battery {data.get('batteryMv')} mV"
    print(f"{event['time']} {event['type']} {event['source']} {event['subject']} ({what}) id {event['id']}",
          flush=True)


def main(args: argparse.Namespace) -> int:
    receiver = WebhookReceiver(secrets=list(args.secret), on_event=print_event)

    async def serve() -> None:
        url = await receiver.start(args.port)
        print(f"webhook receiver on {url}: prints verified events, answers 401 to bad signatures", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await receiver.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        print(f"{len(receiver.received)} events received, {receiver.rejected} rejected", file=sys.stderr)
    return 0
