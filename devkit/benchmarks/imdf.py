"""`python -m devkit bench imdf [--units 2000] [--levels 3] [--json]`: a large IMDF venue brought in and served.

The venue is synthetic (`devkit.imdf_venue.generate_venue`: office levels with corridors, rooms, openings, stacked
elevators and stairs). Measured:
- in a child process (so its peak memory is its own): unpacking and importing the archive, then generating the
  navigation graph and building what the app builds on save (the same `AdminService._prepare`): seconds and peak
  RSS, against a child that only imports the modules (`baseline_rss_mb`);
- over real HTTP against `devkit serve --attach` on emulators this benchmark starts: `POST .../imdf` seconds,
  what the store holds (the Cosmos pointer document and the compressed model in Blob), then `--requests` routes
  between random rooms on different levels and `--requests` free-room queries from random rooms (p50/p95 ms, the
  first request of each kind left out), then one beacon plan (3 beacons above -85 dBm per room) and its seconds;
- in process on the stored model: the share of room pairs on different levels that are routable (every room on
  another level, from `--origins` random rooms; one search each).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from typing import Any

TENANT = "bench-imdf"
BUILDING = "venue"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=200, help="routes and free-room queries, each")
    parser.add_argument("--origins", type=int, default=300, help="rooms the routable share is measured from")
    parser.add_argument("--no-http", action="store_true", help="only the in-process import (no emulators)")
    parser.add_argument("--no-openings", action="store_true",
                        help="a venue without openings: every door is inferred from shared walls")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from devkit.imdf_venue import generate_venue
    from shared.domain.imdf import zip_archive

    archive = zip_archive(generate_venue(units=args.units, levels=args.levels, seed=args.seed,
                                         openings=not args.no_openings))
    result: dict[str, Any] = {"units": args.units, "levels": args.levels, "openings": not args.no_openings,
                              "archive_bytes": len(archive)}
    result.update(_import_in_child(archive))
    if not args.no_http:
        result.update(asyncio.run(_over_http(archive, args.requests, args.seed)))
    result.update(_routable_share(archive, args.origins, args.seed))
    return result


def _import_in_child(archive: bytes) -> dict[str, Any]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: its peak RSS is this work's alone
    with context.Pool(1) as pool:
        baseline = pool.apply(_child_baseline)
    with context.Pool(1) as pool:
        measured = pool.apply(_child_import, (archive,))
    measured["baseline_rss_mb"] = baseline
    return measured


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: kilobytes


def _child_baseline() -> float:
    import shared.domain.imdf
    import shared.services.admin  # noqa: F401

    return _peak_rss_mb()


def _child_import(archive: bytes) -> dict[str, Any]:
    from shared.domain import imdf
    from shared.domain.tenancy import BuildingRef
    from shared.services.admin import _prepare

    started = time.perf_counter()
    files = imdf.read_archive(archive)
    imported = imdf.import_imdf(files, BUILDING)
    parsed = time.perf_counter()
    site, generated = _prepare(BuildingRef(TENANT, BUILDING), imported.site)
    done = time.perf_counter()
    raw = site.model_dump_json(by_alias=True).encode()
    return {"import_s": round(done - started, 2), "imdf_to_site_s": round(parsed - started, 2),
            "navigation_and_checks_s": round(done - parsed, 2), "peak_rss_mb": _peak_rss_mb(),
            "spaces": len(site.spaces), "doors": len(site.doors), "warnings": len(imported.warnings),
            "nav_nodes": len(site.navigation.nodes), "nav_edges": len(site.navigation.edges),
            "unreachable_spaces": len(generated.unreachable_spaces) if generated else None,
            "site_json_bytes": len(raw)}


async def _over_http(archive: bytes, requests: int, seed: int) -> dict[str, Any]:
    from devkit.benchmarks.ingest import serving

    async with serving(None) as served:
        http = served.http
        operator = {"x-api-key": served.admin_key}
        (await http.post("/api/v1/tenants", json={"tenantId": TENANT, "name": "Bench IMDF"},
                         headers=operator)).raise_for_status()
        keys = {}
        for scope in ("admin", "read"):
            minted = await http.post(f"/api/v1/tenants/{TENANT}/keys", json={"scopes": [scope]}, headers=operator)
            minted.raise_for_status()
            keys[scope] = {"x-api-key": minted.json()["key"]}
        started = time.perf_counter()
        response = await http.post(f"/api/v1/buildings/{BUILDING}/imdf", content=archive, timeout=600,
                                   headers={**keys["admin"], "Content-Type": "application/zip"})
        import_s = time.perf_counter() - started
        if response.status_code != 201:
            raise RuntimeError(f"import answered {response.status_code}: {response.text[:1000]}")
        summary = response.json()
        stored = await _stored_size(served)
        site = (await http.get(f"/api/v1/buildings/{BUILDING}", headers=keys["read"])).json()
        rooms = _rooms(site)
        rng = random.Random(seed)
        by_level: dict[str, list[str]] = {}
        for room in rooms:
            by_level.setdefault(room["floor"], []).append(room["id"])
        levels = sorted(by_level)
        route_ms: list[float] = []
        route_status: dict[int, int] = {}
        for n in range(requests + 1):
            a, b = rng.sample(levels, 2) if len(levels) > 1 else (levels[0], levels[0])
            params = {"from": rng.choice(by_level[a]), "to": rng.choice(by_level[b])}
            t0 = time.perf_counter()
            answer = await http.get(f"/api/v1/buildings/{BUILDING}/route", params=params, headers=keys["read"])
            if n:
                route_ms.append((time.perf_counter() - t0) * 1000)
                route_status[answer.status_code] = route_status.get(answer.status_code, 0) + 1
        free_ms: list[float] = []
        free_status: dict[int, int] = {}
        for n in range(requests + 1):
            t0 = time.perf_counter()
            answer = await http.get(f"/api/v1/buildings/{BUILDING}/free-rooms",
                                    params={"near": rng.choice(rooms)["id"]}, headers=keys["read"])
            if n:
                free_ms.append((time.perf_counter() - t0) * 1000)
                free_status[answer.status_code] = free_status.get(answer.status_code, 0) + 1
        t0 = time.perf_counter()
        planned = await http.post(f"/api/v1/buildings/{BUILDING}/beacon-plan", json={}, headers=keys["admin"],
                                  timeout=600)
        plan_s = time.perf_counter() - t0
        plan = planned.json() if planned.status_code == 200 else {}
    return {"http_import_s": round(import_s, 2), "http_unreachable_spaces": len(summary["unreachableSpaces"]),
            **stored,
            "route_p50_ms": _pct(route_ms, 0.5), "route_p95_ms": _pct(route_ms, 0.95), "route_status": route_status,
            "free_rooms_p50_ms": _pct(free_ms, 0.5), "free_rooms_p95_ms": _pct(free_ms, 0.95),
            "free_rooms_status": free_status, "beacon_plan_status": planned.status_code,
            "beacon_plan_s": round(plan_s, 1), "planned_beacons": len(plan.get("beacons", [])),
            "planned_rooms_meeting_target": (plan.get("planned") or {}).get("roomsMeetingTarget"),
            "planned_rooms": (plan.get("planned") or {}).get("rooms"),
            "planned_predicted_room_accuracy": (plan.get("planned") or {}).get("predictedRoomAccuracy")}


async def _stored_size(served: Any) -> dict[str, Any]:
    """What the stores hold for the building: the Cosmos document and, where it points to one, the blob."""
    found: dict[str, Any] = {}
    item = await served.database.get_container_client("buildings").read_item(BUILDING, partition_key=TENANT)
    found["cosmos_document_bytes"] = len(json.dumps(item).encode())
    for key in ("compressedBytes", "rawBytes"):
        if key in item:
            found[f"blob_{key}"] = item[key]
    return found


def _rooms(site: dict[str, Any]) -> list[dict[str, Any]]:
    from shared.domain import space_kinds

    skip = space_kinds.WALKABLE | space_kinds.NOT_OCCUPIABLE | space_kinds.VERTICAL
    return [s for s in site["spaces"] if s["kind"] not in skip]


def _routable_share(archive: bytes, origins: int, seed: int) -> dict[str, Any]:
    from shared.domain import imdf
    from shared.domain.wayfinding import NavigationIndex, with_navigation

    site, _ = with_navigation(imdf.import_imdf(imdf.read_archive(archive), BUILDING).site)
    rooms = _rooms(site.model_dump(mode="json", by_alias=True))
    index = NavigationIndex.from_site(site)
    rng = random.Random(seed)
    sample = rng.sample(rooms, min(origins, len(rooms)))
    pairs = routable = 0
    for origin in sample:
        reached = index.distances_from(origin["id"])
        others = [r["id"] for r in rooms if r["floor"] != origin["floor"]]
        pairs += len(others)
        routable += sum(1 for r in others if r in reached)
    return {"cross_level_pairs": pairs, "cross_level_routable_share": round(routable / pairs, 4) if pairs else None}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)
