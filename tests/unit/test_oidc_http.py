"""The issuer documents adapter over real HTTP on loopback: JSON objects only, bounded in size and time, no
redirects followed; every failure is DependencyUnavailable (a 503 for the caller, never a hang or a 500)."""
from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from shared.adapters.oidc_http import AiohttpIssuerDocuments
from shared.domain.ports import DependencyUnavailable


@pytest.fixture
async def issuer():
    def answer(make):
        async def handler(request):
            return make()
        return handler

    async def slow(request):
        await asyncio.sleep(2)
        return web.json_response({"keys": []})

    async def moved(request):
        raise web.HTTPFound("/jwks")

    app = web.Application()
    app.router.add_get("/jwks", answer(lambda: web.json_response({"keys": [{"kid": "k1"}]})))
    app.router.add_get("/list", answer(lambda: web.json_response([1, 2])))
    app.router.add_get("/text", answer(lambda: web.Response(text="<html>")))
    app.router.add_get("/big", answer(lambda: web.json_response({"pad": "x" * 5000})))
    app.router.add_get("/gone", answer(lambda: web.Response(status=404)))
    app.router.add_get("/moved", moved)
    app.router.add_get("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_json_object_is_fetched(issuer):
    documents = AiohttpIssuerDocuments()
    try:
        assert await documents.fetch_json(f"{issuer}/jwks") == {"keys": [{"kid": "k1"}]}
    finally:
        await documents.close()


@pytest.mark.parametrize(("path", "why"), [("/list", "not a JSON object"), ("/text", "not JSON"),
                                           ("/big", "larger than"), ("/gone", "HTTP 404"), ("/moved", "HTTP 302")])
async def test_anything_else_is_unavailable(issuer, path, why):
    documents = AiohttpIssuerDocuments(max_bytes=4096)
    try:
        with pytest.raises(DependencyUnavailable, match=why):
            await documents.fetch_json(issuer + path)
    finally:
        await documents.close()


async def test_a_slow_or_closed_issuer_is_unavailable_in_bounded_time(issuer):
    documents = AiohttpIssuerDocuments(timeout_s=0.2)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(DependencyUnavailable):
            await documents.fetch_json(f"{issuer}/slow")
        assert asyncio.get_running_loop().time() - started < 1.5
        with pytest.raises(DependencyUnavailable):
            await documents.fetch_json("http://127.0.0.1:9/jwks")  # nothing listens on the discard port
    finally:
        await documents.close()
