"""The devkit's issuer: one key file shared by every devkit process, rotation, and the discovery document and key
set it serves beside the app (never through it)."""
from __future__ import annotations

import argparse
import os
import stat

import httpx
import jwt

from devkit import oidc_keys
from devkit.identity import ISSUER_PATH, KeyRing, issue_token, issuer_url, with_devkit_issuer
from shared.domain.identity import discovery_url
from tests.support.identity import pooled_key


def test_the_key_file_is_created_once_private_and_shared(tmp_path):
    path = tmp_path / "keys.json"
    first = KeyRing.load_or_create(path)
    assert KeyRing.load_or_create(path).signing == first.signing  # another process sees the same key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_rotate_then_retire_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "keys.json"
    KeyRing([pooled_key(0)]).save(path)
    oidc_keys.main(argparse.Namespace(action="rotate", alg="ES256", keys=path))
    ring = KeyRing.load(path)
    assert [k.kid for k in ring.keys] == [pooled_key(0).kid, ring.signing.kid] and ring.signing.alg == "ES256"
    oidc_keys.main(argparse.Namespace(action="retire", alg=None, keys=path))
    assert [k.kid for k in KeyRing.load(path).keys] == [ring.signing.kid]
    assert ring.signing.kid in capsys.readouterr().out


async def test_the_issuer_serves_discovery_and_keys_beside_the_app(tmp_path):
    path = tmp_path / "keys.json"
    ring = KeyRing([pooled_key(0)])
    ring.save(path)

    async def app(scope, receive, send):  # stands for the API: must not see the issuer's paths
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    transport = httpx.ASGITransport(app=with_devkit_issuer(app, path))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:7071") as client:
        issuer = issuer_url("http://127.0.0.1:7071", "acme")
        discovery = (await client.get(discovery_url(issuer))).json()
        assert discovery["issuer"] == issuer and discovery["jwks_uri"] == issuer + "/jwks"
        keys = (await client.get(discovery["jwks_uri"])).json()["keys"]
        assert [k["kid"] for k in keys] == [ring.signing.kid] and "d" not in keys[0]  # public parts only
        ring.rotate()
        ring.save(path)  # as `devkit oidc-keys rotate` in another process: served at once
        assert len((await client.get(discovery["jwks_uri"])).json()["keys"]) == 2
        assert (await client.get(f"{ISSUER_PATH}/Not_A_Tenant/jwks")).status_code == 404
        assert (await client.get("/api/health")).status_code == 418
    token = issue_token(ring, issuer, "ann@acme.example")
    claims = jwt.decode(token, jwt.PyJWK(ring.signing.public_jwk()).key, algorithms=["RS256"],
                        audience="api://spaceflow-devkit", issuer=issuer)
    assert claims["oid"] == claims["sub"] == "ann@acme.example"
    assert jwt.get_unverified_header(token)["kid"] == ring.signing.kid
