"""Load shedding: past a number of requests in flight, answer 503 with Retry-After at once instead of queueing
until clients time out (and never fail with a 500 under load)."""
from __future__ import annotations

import json

PROBLEM = {"type": "https://spaceflow.dev/problems/overloaded", "title": "Service unavailable", "status": 503,
           "detail": "too many requests in flight on this instance; retry after the Retry-After seconds"}


class InFlightLimit:
    def __init__(self, app, max_in_flight: int = 256, retry_after_s: int = 1) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.shed = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            self.shed += 1
            body = json.dumps(PROBLEM).encode()
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/problem+json"), (b"retry-after", str(self.retry_after_s).encode()),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
