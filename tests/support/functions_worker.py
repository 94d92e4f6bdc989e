"""The Python worker's side of Azure Functions HTTP streams, as far as it can run here (no Functions host can).

With HTTP streams the worker serves the extension's `WebApp` (azurefunctions-extensions-http-fastapi: a FastAPI
app whose one route, `/{path:path}`, takes every method) with the extension's `WebServer` (uvicorn) on loopback.
The host forwards the client's request there with an invocation id header and, over gRPC, invokes the function;
the worker's route (azure_functions_worker/http_v2.py `catch_all`) parks the Request, the invocation copies the
host's route parameters into it (the extension's RequestSynchronizer) and calls the function with it, and the
route returns whatever the function returned, which that uvicorn sends to the host as it comes.

`WorkerHttp` does the same in one process: the extension's WebApp and RequestSynchronizer, uvicorn with the
WebServer's settings (host and port; stopped by `should_exit`, which the WebServer does not expose), and a route
that calls the function in a task of its own, as the invocation does. What it leaves out is the host (its proxy,
its gRPC invocation, its function keys and timeouts).
"""
from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn
from azurefunctions.extensions.http.fastapi import Request
from azurefunctions.extensions.http.fastapi.web import RequestSynchronizer, WebApp

HttpFunction = Callable[[Request], Awaitable[Any]]
INVOCATION_HEADER = "x-ms-invocation-id"  # what the host adds to a forwarded request (and the worker requires)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WorkerHttp:
    def __init__(self, function: HttpFunction) -> None:
        self.function = function
        self.invocations: list[asyncio.Task[Any]] = []
        web = WebApp()
        synchronizer = RequestSynchronizer()

        @web.route
        async def catch_all(request: Request) -> Any:
            if request.headers.get(INVOCATION_HEADER) is None:
                raise ValueError(f"header {INVOCATION_HEADER} not found")  # as the worker's MissingHeaderError
            # The host's route parameters for `{*route}`: the path without its leading slash.
            synchronizer.sync_route_params(request, {"route": request.url.path.lstrip("/")})
            invocation = asyncio.create_task(self.function(request))
            self.invocations.append(invocation)
            return await invocation

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(web.get_app(), host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        self._serving: asyncio.Task[None] | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        self._serving = asyncio.create_task(self.server.serve())
        async with asyncio.timeout(10):
            while not self.server.started:
                await asyncio.sleep(0.01)
        self.client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=30,
                                        headers={INVOCATION_HEADER: "00000000-0000-0000-0000-000000000001"})
        return self.client

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.aclose()
        self.server.should_exit = True
        if self._serving is not None:
            await asyncio.wait_for(self._serving, timeout=10)
