"""`python -m devkit seed --url URL [--admin-key KEY] [--json]`: a demo tenant, its keys and a simulated building,
created through the public API of a running server (`python -m devkit serve`)."""
from __future__ import annotations

import argparse
import json
import sys
import uuid


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:7071")
    parser.add_argument("--admin-key", help="the bootstrap admin key (default: ADMIN_API_KEY of the environment, "
                                            "else of local.settings.json)")
    parser.add_argument("--tenant", help="tenant id (default: demo-<random>)")
    parser.add_argument("--floors", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print only the JSON")


def seed(url: str, admin_key: str, tenant_id: str | None = None, floors: int = 3, seed_value: int = 7) -> dict:
    """Create the tenant, one key per scope and the building; returns {tenantId, buildingId, keys}."""
    import httpx

    from devkit.simulator import BuildingSpec, generate_building

    tenant_id = tenant_id or f"demo-{uuid.uuid4().hex[:8]}"
    site = generate_building(BuildingSpec(floors=floors), seed=seed_value)
    with httpx.Client(base_url=url, timeout=30) as http:
        def call(method: str, path: str, key: str, **kwargs) -> httpx.Response:
            response = http.request(method, path, headers={"x-api-key": key}, **kwargs)
            if response.status_code >= 400:
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
            return response

        call("POST", "/api/v1/tenants", admin_key, json={"tenantId": tenant_id, "name": f"Demo {tenant_id}"})
        keys = {}
        for scope in ("ingest", "read", "people", "admin"):
            minted = call("POST", f"/api/v1/tenants/{tenant_id}/keys", admin_key,
                          json={"scopes": [scope], "name": f"demo {scope}"}).json()
            keys[scope] = minted["key"]
        call("PUT", f"/api/v1/buildings/{site.building_id}", keys["admin"],
             json=site.model_dump(mode="json", by_alias=True))
    return {"tenantId": tenant_id, "buildingId": site.building_id, "keys": keys}


def main(args: argparse.Namespace) -> int:
    from devkit.local_settings import local_settings

    admin_key = args.admin_key or local_settings().get("ADMIN_API_KEY")
    if not admin_key:
        print("seed: no admin key: pass --admin-key or set ADMIN_API_KEY", file=sys.stderr)
        return 2
    try:
        result = seed(args.url, admin_key, args.tenant, args.floors, args.seed)
    except Exception as exc:  # noqa: BLE001 - a CLI reports what failed instead of a traceback
        print(f"seed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0
