"""A local HTTP server on 127.0.0.1 that replays recorded Microsoft Graph answers (tests/fixtures/graph), the
links in them pointing back at itself, and records every request it was sent."""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "graph"
GRAPH = "https://graph.microsoft.com/v1.0"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@dataclass
class Request:
    method: str
    path: str  # unquoted, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


# (method, request) -> (status, body as JSON, or None)
Route = Callable[[Request], "tuple[int, Any] | None"]


@dataclass
class GraphReplay:
    routes: list[Route] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}/v1.0"

    def start(self) -> GraphReplay:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, unquote(parts.path), parse_qs(parts.query),
                                  {k.lower(): v for k, v in self.headers.items()},
                                  json.loads(raw) if raw.strip() else None)
                replay.requests.append(request)
                for route in replay.routes:
                    answer = route(request)
                    if answer is not None:
                        break
                else:
                    answer = (404, {"error": {"code": "ResourceNotFound", "message": "not recorded"}})
                status, body = answer
                data = b"" if body is None else json.dumps(body).replace(GRAPH, replay.base_url).encode()
                self.send_response(status)
                if data:
                    self.send_header("content-type", "application/json; odata.metadata=minimal")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def of(self, method: str, path_part: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and path_part in r.path]
