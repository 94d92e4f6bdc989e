"""The devkit issuer's browser sign-in (devkit/oidc_login.py): the authorization code flow with PKCE as the
dashboard drives it, and every way a request is refused (foreign redirect, no or wrong PKCE, a code used twice, an
unknown client)."""
from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from devkit.identity import KeyRing, issuer_url, with_devkit_issuer
from devkit.oidc_login import DEVKIT_DASHBOARD_CLIENT_ID, AuthorizationCodes, AuthorizationRequest, Client
from shared.domain.identity import IdentityConfig, discovery_url
from tests.support.identity import pooled_key

BASE = "http://127.0.0.1:7071"
ISSUER = issuer_url(BASE, "acme")
DASHBOARD = f"{BASE}/app/"
CLIENT_ID = "acme-dashboard"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_params(challenge: str, **overrides) -> dict[str, str]:
    params = {"client_id": CLIENT_ID, "redirect_uri": DASHBOARD, "response_type": "code",
              "scope": "openid profile api://acme/access_as_user", "state": "s-123", "nonce": "n-456",
              "code_challenge": challenge, "code_challenge_method": "S256", "response_mode": "fragment"}
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


@pytest.fixture
def ring(tmp_path) -> tuple[KeyRing, object]:
    ring = KeyRing([pooled_key(0)])
    path = tmp_path / "keys.json"
    ring.save(path)
    return ring, path


@pytest.fixture
async def client(ring):
    configs = {
        "acme": IdentityConfig("acme", ISSUER, "api://acme", None, "email", datetime.now(UTC),
                               dashboard_client_id=CLIENT_ID, dashboard_scope="api://acme/access_as_user"),
        # sign-in for the API, but no dashboard client
        "globex": IdentityConfig("globex", issuer_url(BASE, "globex"), "api://globex", None, "oid", datetime.now(UTC)),
    }

    async def identities(tenant_id: str):
        return configs.get(tenant_id)

    async def app(scope, receive, send):  # stands for the API
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    transport = httpx.ASGITransport(app=with_devkit_issuer(app, ring[1], identities))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


async def sign_in_as(http: httpx.AsyncClient, user: str, challenge: str, **overrides) -> dict[str, list[str]]:
    """The page, then its form posted as the browser would: the parameters the dashboard gets back."""
    page = await http.get(f"{ISSUER}/authorize", params=authorize_params(challenge, **overrides))
    assert page.status_code == 200, page.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    answer = await http.post(f"{ISSUER}/authorize", data={**fields, "login": user})
    assert answer.status_code == 303, answer.text
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == DASHBOARD
    return parse_qs(location.fragment or location.query)


async def test_discovery_names_the_endpoints_a_browser_flow_needs(client):
    document = (await client.get(discovery_url(ISSUER))).json()
    assert document["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert document["token_endpoint"] == f"{ISSUER}/token"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert "fragment" in document["response_modes_supported"]


async def test_code_flow_with_pkce_gives_the_tenants_audience_user_claim_and_the_nonce(client, ring):
    verifier, challenge = pkce()
    page = await client.get(f"{ISSUER}/authorize", params=authorize_params(challenge))
    assert "Sign in as" in page.text and "default-src 'none'" in page.headers["content-security-policy"]
    back = await sign_in_as(client, "ann@acme.example", challenge)
    assert back["state"] == ["s-123"] and len(back["code"]) == 1  # in the fragment: never sent to a server
    tokens = await client.post(f"{ISSUER}/token", data={
        "grant_type": "authorization_code", "code": back["code"][0], "redirect_uri": DASHBOARD,
        "client_id": CLIENT_ID, "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    assert tokens.headers["cache-control"] == "no-store"
    body = tokens.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    key = jwt.PyJWK(ring[0].signing.public_jwk()).key
    access = jwt.decode(body["access_token"], key, algorithms=["RS256"], audience="api://acme", issuer=ISSUER)
    assert access["email"] == "ann@acme.example"  # the user id claim the tenant is configured with
    identity = jwt.decode(body["id_token"], key, algorithms=["RS256"], audience=CLIENT_ID, issuer=ISSUER)
    assert identity["nonce"] == "n-456" and identity["sub"] == "ann@acme.example" and identity["name"] == "ann"


async def test_a_wrong_verifier_is_refused_and_spends_the_code(client):
    verifier, challenge = pkce()
    back = await sign_in_as(client, "ann@acme.example", challenge, response_mode=None)  # query: the default
    exchange = {"grant_type": "authorization_code", "code": back["code"][0], "redirect_uri": DASHBOARD,
                "client_id": CLIENT_ID}
    for wrong in (pkce()[0], "short", None):
        answer = await client.post(f"{ISSUER}/token", data={**exchange, **({"code_verifier": wrong} if wrong else {})})
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant", wrong
    # the right verifier comes too late: the code was spent by the first attempt
    late = await client.post(f"{ISSUER}/token", data={**exchange, "code_verifier": verifier})
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"


async def test_a_code_is_exchanged_once_and_only_by_its_client_redirect_and_tenant(client):
    verifier, challenge = pkce()
    exchange = {"grant_type": "authorization_code", "redirect_uri": DASHBOARD, "client_id": CLIENT_ID,
                "code_verifier": verifier}
    code = (await sign_in_as(client, "ann@acme.example", challenge))["code"][0]
    assert (await client.post(f"{ISSUER}/token", data={**exchange, "code": code})).status_code == 200
    again = await client.post(f"{ISSUER}/token", data={**exchange, "code": code})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    for changed in ({"client_id": "another-client"}, {"redirect_uri": "http://127.0.0.1:9999/app/"},
                    {"grant_type": "password"}):
        code = (await sign_in_as(client, "ann@acme.example", challenge))["code"][0]
        answer = await client.post(f"{ISSUER}/token", data={**exchange, "code": code, **changed})
        assert answer.status_code == 400, changed
        assert answer.json()["error"] in ("invalid_grant", "unsupported_grant_type"), changed
    code = (await sign_in_as(client, "ann@acme.example", challenge))["code"][0]
    elsewhere = await client.post(f"{issuer_url(BASE, 'globex')}/token", data={**exchange, "code": code})
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_grant"
    not_a_form = await client.post(f"{ISSUER}/token", json={**exchange, "code": code})
    assert not_a_form.status_code == 400 and not_a_form.json()["error"] == "invalid_request"


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example/app/", "http://10.0.0.4:7071/app/", "http://127.0.0.1:7071/app/other",
    "http://127.0.0.1:7071/", "http://127.0.0.1:7071/app/?next=https://evil.example", "http://127.0.0.1:7071/app/#x",
    "http://user@127.0.0.1:7071/app/", "javascript:alert(1)//127.0.0.1/app/", "http://127.0.0.1.evil.example/app/",
    "http://127.0.0.1:99999/app/", None,
])
async def test_a_foreign_redirect_is_refused_with_a_page_never_a_redirect(client, redirect_uri):
    _verifier, challenge = pkce()
    params = authorize_params(challenge, redirect_uri=redirect_uri)
    for answer in (await client.get(f"{ISSUER}/authorize", params=params),
                   await client.post(f"{ISSUER}/authorize", data={**params, "login": "ann@acme.example"})):
        assert answer.status_code == 400 and "location" not in answer.headers, redirect_uri
        assert "redirect_uri" in answer.text


@pytest.mark.parametrize(("change", "why"), [
    ({"code_challenge": None}, "PKCE"),
    ({"code_challenge_method": "plain"}, "PKCE"),
    ({"code_challenge_method": None}, "PKCE"),
    ({"code_challenge": "too-short"}, "S256"),
    ({"client_id": "someone-else"}, "client_id"),
    ({"client_id": None}, "client_id"),
    ({"response_type": "token"}, "response_type"),
    ({"scope": "profile"}, "openid"),
    ({"response_mode": "form_post"}, "response_mode"),
    ({"state": "x" * 600}, "state"),
])
async def test_an_authorization_request_without_pkce_or_with_a_foreign_client_is_refused(client, change, why):
    _verifier, challenge = pkce()
    answer = await client.get(f"{ISSUER}/authorize", params=authorize_params(challenge, **change))
    assert answer.status_code == 400 and why in answer.text, answer.text
    assert "<form" not in answer.text


async def test_a_tenant_without_a_dashboard_client_signs_no_one_in(client):
    _verifier, challenge = pkce()
    answer = await client.get(f"{issuer_url(BASE, 'globex')}/authorize", params=authorize_params(challenge))
    assert answer.status_code == 400 and "dashboardClientId" in answer.text
    unknown = await client.get(f"{issuer_url(BASE, 'nobody-here')}/authorize", params=authorize_params(challenge))
    assert unknown.status_code == 400


async def test_a_bad_user_id_shows_the_form_again(client):
    _verifier, challenge = pkce()
    answer = await client.post(f"{ISSUER}/authorize", data={**authorize_params(challenge), "login": "has space"})
    assert answer.status_code == 400 and "location" not in answer.headers
    assert "<form" in answer.text and "user id" in answer.text
    # what the page echoes back is escaped
    hostile = await client.get(f"{ISSUER}/authorize", params=authorize_params(challenge, state='"><script>x</script>'))
    assert hostile.status_code == 200 and "<script>x" not in hostile.text


async def test_without_the_app_beside_it_the_issuer_takes_the_devkit_client_id(ring):
    _verifier, challenge = pkce()
    transport = httpx.ASGITransport(app=with_devkit_issuer(lambda *a: None, ring[1]))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        ok = await http.get(f"{ISSUER}/authorize", params=authorize_params(challenge,
                                                                           client_id=DEVKIT_DASHBOARD_CLIENT_ID))
        assert ok.status_code == 200
        assert (await http.get(f"{ISSUER}/authorize", params=authorize_params(challenge))).status_code == 400


def test_codes_live_a_short_time():
    now = [0.0]
    codes = AuthorizationCodes(ttl_s=60, monotonic=lambda: now[0])
    request = AuthorizationRequest("acme", CLIENT_ID, DASHBOARD, "openid", None, None, "c" * 43, "fragment")
    early, late = codes.issue(request, "ann", Client(CLIENT_ID)), codes.issue(request, "bob", Client(CLIENT_ID))
    assert codes.redeem(early).user_id == "ann"  # type: ignore[union-attr]
    now[0] = 61
    assert codes.redeem(late) is None
