"""`python -m tests.support.memory_server --port P [--body-deadline S]`: the app under uvicorn on 127.0.0.1 over
the in-memory adapters, in a process of its own, for the real-HTTP tests (slow clients, overload).

Like `devkit serve` without the emulators: the same app, uvicorn settings and event loop, but nothing else on
the two cores, and the body deadline injectable. Prints one JSON line with an ingest key once it serves.
"""
from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TENANT = "slow-test"


async def serve(port: int, body_deadline_s: float) -> None:
    import uvicorn

    from functions.http_api import create_api
    from shared.domain.tenancy import Scope
    from shared.settings import load_settings
    from shared.wiring import build_in_memory_context, set_context

    values = json.loads((REPO / "local.settings.json").read_text())["Values"]
    context = build_in_memory_context(load_settings(values))
    set_context(context)
    from tests.support.pipeline import add_small_site

    await add_small_site(context.site_models, TENANT)  # a building with the beacons tests.support.batches posts
    key, _ = await context.auth.mint_key(TENANT, {Scope.ingest})
    server = uvicorn.Server(uvicorn.Config(create_api(body_deadline_s=body_deadline_s), host="127.0.0.1", port=port,
                                           log_level="warning", backlog=4096, timeout_graceful_shutdown=2))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving  # it failed to start: raise why
        await asyncio.sleep(0.02)
    print(json.dumps({"ingestKey": key, "adminKey": values["ADMIN_API_KEY"]}), flush=True)
    await serving


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-deadline", type=float, default=None)
    args = parser.parse_args()
    from functions.gate import BODY_DEADLINE_S

    asyncio.run(serve(args.port, args.body_deadline or BODY_DEADLINE_S))


if __name__ == "__main__":
    main()
