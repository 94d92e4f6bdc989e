"""`python -m devkit bench slowloris [--json]`: slow clients against a local server, and whether health and
ingest keep answering meanwhile.

The server is `devkit serve --attach` against emulators this benchmark starts (as `bench ingest`), on loopback.
Two phases of `--seconds` each, while health is probed and an ingest batch posted `--probe-rps` times a second:
1. quiet: nothing else, for the baseline;
2. attack: `--anonymous` connections send a JSON-body request's headers with no API key and then the body at
   one byte a second (`PUT /api/v1/people/x/sharing`, the route whose body used to be read before the key was
   checked), and `--keyed` connections do the same with a valid ingest key on `POST /api/v1/sightings`; each
   comes back a second after it is answered, as an attacker would.
Reported: each probe's success ratio and p50/p95/p99, and how the slow requests were answered (status, after how
long): 401 at once without a key, 408 at the body deadline (10 s) with one.
"""
from __future__ import annotations

import argparse
from typing import TypedDict


class ProbeSummary(TypedDict):
    """Health requests or ingest posts of one phase: latencies are of the successful ones."""

    requests: int
    success_ratio: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    statuses: dict[str, int]  # status (0: no answer) -> count


class Probes(TypedDict):
    health: ProbeSummary
    ingest: ProbeSummary


class SlowAnswers(TypedDict):
    """How one kind of slow request was answered."""

    connections: int
    requests: int
    answered: int
    statuses: dict[str, int]
    answered_after_p50_ms: float | None
    answered_after_p95_ms: float | None
    max_body_bytes_sent: int | None


class Attack(Probes):
    slow_anonymous: SlowAnswers
    slow_keyed: SlowAnswers


class SlowlorisSummary(TypedDict):
    phase_seconds: float
    probe_rps: float
    quiet: Probes
    attack: Attack
    health_success_ratio_under_attack: float
    health_p95_ms_under_attack: float | None
    health_p99_ms_under_attack: float | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--anonymous", type=int, default=300, help="slow connections without an API key")
    parser.add_argument("--keyed", type=int, default=100, help="slow connections with a valid ingest key")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase (the deadline is 10 s)")
    parser.add_argument("--probe-rps", type=float, default=10.0, help="health requests and ingest posts a second")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--people", type=int, default=60, help="phones of the simulated office (probe batches)")


def run(args: argparse.Namespace) -> SlowlorisSummary:
    import asyncio

    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> SlowlorisSummary:
    import asyncio
    import json
    import time

    from devkit.benchmarks.ingest import _ms, _percentile, office_day, serving
    from devkit.loadclient import LoadClient, SlowClients

    day = office_day(args)
    bodies = [json.dumps(b.body).encode() for b in day.batches()]
    if not bodies:
        raise RuntimeError("the office simulator produced no batches")

    async with serving(day.site) as served:
        port = served.port
        posts = iter(bodies)

        def next_post() -> bytes:
            return LoadClient.request("POST", "/api/v1/sightings", next(posts, bodies[-1]), {"x-api-key": served.key})

        async def probes(stop_at: float) -> Probes:
            health = LoadClient("127.0.0.1", port, 16)
            ingest = LoadClient("127.0.0.1", port, 16)
            health_get = LoadClient.request("GET", "/api/health")
            results: dict[str, list[tuple[int, float]]] = {"health": [], "ingest": []}

            async def one(name: str, client: LoadClient, raw: bytes) -> None:
                started = time.monotonic()
                try:
                    reply = await asyncio.wait_for(client.send(raw), timeout=10)
                    status = reply.status
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                    status = 0  # refused, dropped or too slow: a failure to count, not to raise
                results[name].append((status, time.monotonic() - started))

            tasks: list[asyncio.Task[None]] = []
            began = time.monotonic()
            sent = 0
            while time.monotonic() < stop_at:
                due = int((time.monotonic() - began) * args.probe_rps)
                while sent < due:
                    tasks += [asyncio.create_task(one("health", health, health_get)),
                              asyncio.create_task(one("ingest", ingest, next_post()))]
                    sent += 1
                await asyncio.sleep(0.01)
            await asyncio.gather(*tasks)
            await health.close()
            await ingest.close()
            return {"health": _summary(results["health"], 200), "ingest": _summary(results["ingest"], 202)}

        def _summary(results: list[tuple[int, float]], ok: int) -> ProbeSummary:
            good = [s for status, s in results if status == ok]
            statuses: dict[str, int] = {}
            for status, _s in results:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
            return {"requests": len(results), "success_ratio": round(len(good) / max(1, len(results)), 4),
                    "p50_ms": _ms(_percentile(good, 0.5)), "p95_ms": _ms(_percentile(good, 0.95)),
                    "p99_ms": _ms(_percentile(good, 0.99)), "max_ms": _ms(max(good, default=None)),
                    "statuses": statuses}

        quiet = await probes(time.monotonic() + args.seconds)

        head = ("PUT /api/v1/people/x/sharing HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n").encode("ascii")
        keyed_head = ("POST /api/v1/sightings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      f"Content-Length: 5000\r\nx-api-key: {served.key}\r\n\r\n").encode("ascii")
        anonymous = SlowClients("127.0.0.1", port, args.anonymous, head, 1000)
        keyed = SlowClients("127.0.0.1", port, args.keyed, keyed_head, 5000)
        stop_at = time.monotonic() + args.seconds + 2
        attack = [asyncio.create_task(c.run(stop_at)) for c in (anonymous, keyed)]
        connected_by = time.monotonic() + 5
        while (anonymous.connected < anonymous.count or keyed.connected < keyed.count) \
                and time.monotonic() < connected_by:
            await asyncio.sleep(0.05)
        attacked = await probes(stop_at)
        await asyncio.gather(*attack)

        def answers(clients: SlowClients) -> SlowAnswers:
            answered = [(o.reply, o.answered_after_s or 0.0, o.bytes_sent) for o in clients.outcomes
                        if o.reply is not None]
            statuses: dict[str, int] = {}
            for reply, _after, _sent in answered:
                statuses[str(reply.status)] = statuses.get(str(reply.status), 0) + 1
            after = [seconds for _reply, seconds, _sent in answered]
            return {"connections": clients.count, "requests": len(clients.outcomes), "answered": len(answered),
                    "statuses": statuses, "answered_after_p50_ms": _ms(_percentile(after, 0.5)),
                    "answered_after_p95_ms": _ms(_percentile(after, 0.95)),
                    "max_body_bytes_sent": max((sent for _reply, _after, sent in answered), default=None)}

        return {
            "phase_seconds": args.seconds, "probe_rps": args.probe_rps,
            "quiet": quiet,
            "attack": {**attacked, "slow_anonymous": answers(anonymous), "slow_keyed": answers(keyed)},
            "health_success_ratio_under_attack": attacked["health"]["success_ratio"],
            "health_p95_ms_under_attack": attacked["health"]["p95_ms"],
            "health_p99_ms_under_attack": attacked["health"]["p99_ms"],
        }
