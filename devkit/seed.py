"""`python -m devkit seed --url URL [--admin-key KEY] [--json]`: a demo tenant, its keys, its people's sign-in and
a simulated building, created through the public API of a running server (`python -m devkit serve`).

Sign-in points at the devkit's OpenID Connect issuer of that server (with the dashboard's client id, so people sign
in to `/app/#tenant=<tenantId>` too), and two people opt in with their own tokens (`PUT /api/v1/me/sharing`), so the
people finder works at once; their tokens are printed with the keys."""
from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

# Two demo people and the sharing each chooses for themselves.
DEMO_PEOPLE = (("ann", "floor"), ("bob", "space"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:7071")
    parser.add_argument("--admin-key", help="the bootstrap admin key (default: ADMIN_API_KEY of the environment, "
                                            "else of local.settings.json)")
    parser.add_argument("--tenant", help="tenant id (default: demo-<random>)")
    parser.add_argument("--floors", type=int, default=3)
    parser.add_argument("--length", type=float, default=60.0, help="the building's length in metres (more rooms)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--oidc-keys", type=Path, help="the devkit issuer's key file (default: the one serve uses)")
    parser.add_argument("--json", action="store_true", help="print only the JSON")


def seed(url: str, admin_key: str, tenant_id: str | None = None, floors: int = 3, seed_value: int = 7,
         keys_path: Path | None = None, length_m: float = 60.0) -> dict[str, Any]:
    """Create the tenant, one key per scope, its sign-in (the devkit issuer), the building, and two people who
    opt in; returns {tenantId, buildingId, keys, identity, people: [{userId, sharing, token}]}."""
    import httpx

    from devkit.identity import DEVKIT_AUDIENCE, DEVKIT_USER_CLAIM, KeyRing, default_keys_path, issue_token, issuer_url
    from devkit.oidc_login import DEVKIT_DASHBOARD_CLIENT_ID, DEVKIT_DASHBOARD_SCOPE
    from devkit.simulator import BuildingSpec, generate_building

    tenant_id = tenant_id or f"demo-{uuid.uuid4().hex[:8]}"
    site = generate_building(BuildingSpec(floors=floors, length_m=length_m), seed=seed_value)
    ring = KeyRing.load_or_create(keys_path or default_keys_path())
    with httpx.Client(base_url=url, timeout=30) as http:
        def call(method: str, path: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
            response = http.request(method, path, headers=headers, **kwargs)
            if response.status_code >= 400:
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
            return response

        admin = {"x-api-key": admin_key}
        call("POST", "/api/v1/tenants", admin, json={"tenantId": tenant_id, "name": f"Demo {tenant_id}"})
        keys = {}
        for scope in ("ingest", "read", "people", "admin"):
            minted = call("POST", f"/api/v1/tenants/{tenant_id}/keys", admin,
                          json={"scopes": [scope], "name": f"demo {scope}"}).json()
            keys[scope] = minted["key"]
        issuer = issuer_url(url, tenant_id)
        identity = call("PUT", f"/api/v1/tenants/{tenant_id}/identity", {"x-api-key": keys["admin"]},
                        json={"issuer": issuer, "audience": DEVKIT_AUDIENCE, "userClaim": DEVKIT_USER_CLAIM,
                              "dashboardClientId": DEVKIT_DASHBOARD_CLIENT_ID,
                              "dashboardScope": DEVKIT_DASHBOARD_SCOPE}).json()
        call("PUT", f"/api/v1/buildings/{site.building_id}", {"x-api-key": keys["admin"]},
             json=site.model_dump(mode="json", by_alias=True))
        people = []
        for name, level in DEMO_PEOPLE:
            user_id = f"{name}@{tenant_id}.example"
            token = issue_token(ring, issuer, user_id, lifetime_s=8 * 3600)
            call("PUT", "/api/v1/me/sharing", {"Authorization": f"Bearer {token}"}, json={"level": level})
            people.append({"userId": user_id, "sharing": level, "token": token})
    return {"tenantId": tenant_id, "buildingId": site.building_id, "keys": keys, "identity": identity,
            "people": people}


def main(args: argparse.Namespace) -> int:
    from devkit.local_settings import local_settings

    admin_key = args.admin_key or local_settings().get("ADMIN_API_KEY")
    if not admin_key:
        print("seed: no admin key: pass --admin-key or set ADMIN_API_KEY", file=sys.stderr)
        return 2
    try:
        result = seed(args.url, admin_key, args.tenant, args.floors, args.seed, args.oidc_keys, args.length)
    except Exception as exc:  # noqa: BLE001 - a CLI reports what failed instead of a traceback
        print(f"seed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0
