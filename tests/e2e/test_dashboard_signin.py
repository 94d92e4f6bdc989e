"""Signing in to the dashboard with the organization, in a real browser: Debian's chromium driven by Playwright against
`devkit serve` (the fixtures of test_dashboard.py: a seeded tenant whose identity is the devkit issuer, with the
dashboard's client id). The whole authorization code flow with PKCE runs through the devkit's sign-in page."""
from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

from devkit.identity import KeyRing, issue_token, issuer_url
from tests.e2e import test_dashboard

# The same seeded tenant as the dashboard's tests (sign-in at the devkit issuer, with the dashboard's
# client id); the system's chromium and a page that may talk to the app only come from tests/e2e/conftest.py.
tenant = test_dashboard.tenant

DATA = "/api/v1/buildings"


def sign_in(page, server: str, tenant: dict, user: str) -> dict:
    """Open /app/#tenant=..., sign in as `user` on the devkit's page; returns what was seen on the way."""
    seen: dict = {"requests": [], "codes": []}
    page.on("request", lambda request: seen["requests"].append(request))

    def code_of(response) -> None:
        if response.url.endswith("/authorize") and response.status == 303:
            location = urlsplit(response.headers["location"])
            seen["codes"] += parse_qs(location.fragment).get("code", [])
            seen["location"] = location

    page.on("response", code_of)
    page.goto(f"{server}/app/#tenant={tenant['tenantId']}&building={tenant['buildingId']}")
    page.wait_for_selector("#org-form:not([hidden])")
    assert page.input_value("#tenant-input") == tenant["tenantId"]  # from the fragment
    assert page.locator("#key-form:not([hidden])").count() == 1  # the API key stays the other choice
    page.click("#org-form button[type=submit]")
    page.wait_for_selector("input[name=login]")  # the devkit issuer's page
    assert urlsplit(page.url).path == f"/devkit/oidc/{tenant['tenantId']}/authorize"
    page.fill("input[name=login]", user)
    page.click("form button[type=submit]")
    page.wait_for_selector("[data-space-id][data-status]", state="attached", timeout=20_000)
    return seen


def stored_user(page) -> dict:
    raw = page.evaluate("""() => Object.keys(sessionStorage).filter(k => k.startsWith('oidc.user:'))
                                 .map(k => sessionStorage.getItem(k))""")
    assert len(raw) == 1, raw
    return json.loads(raw[0])


def test_a_person_signs_in_with_the_organization_and_the_api_sees_only_their_token(page, live_server, tenant):
    user = f"ann@{tenant['tenantId']}.example"
    seen = sign_in(page, live_server, tenant, user)

    # back on the dashboard, the building loaded, the person named, the code gone from the address bar
    assert page.locator("#building option").count() == 1
    assert page.input_value("#building") == tenant["buildingId"]
    assert page.text_content("#who") == "Signed in as ann"
    assert page.locator("#signout:not([hidden])").count() == 1
    assert page.locator("#org-form[hidden]").count() == 1 and page.locator("#forget[hidden]").count() == 1
    assert "code=" not in page.url and "state=" not in page.url
    assert seen["location"].path == "/app/" and seen["codes"], "the code came back in the fragment"
    stored = stored_user(page)
    access, identity = stored["access_token"], stored["id_token"]
    assert stored["profile"]["preferred_username"] == user
    assert page.evaluate("sessionStorage.getItem('spaceflow.apiKey')") is None
    assert page.evaluate("Object.keys(localStorage).length") == 0  # nothing outlives the tab

    requests = seen["requests"]
    data = [r for r in requests if urlsplit(r.url).path.startswith(DATA)]
    assert len(data) >= 3  # buildings, the site, its floor's plan and spaces...
    for request in data:
        headers = request.all_headers()
        assert headers.get("authorization") == f"Bearer {access}", request.url
        assert "x-api-key" not in headers, request.url
    exchange = [r for r in requests if r.method == "POST" and urlsplit(r.url).path.endswith("/token")]
    assert len(exchange) == 1 and "code_verifier=" in (exchange[0].post_data or "")  # PKCE, in the body
    public = [r for r in requests if urlsplit(r.url).path == f"/api/v1/tenants/{tenant['tenantId']}/signin"]
    assert public and not {"authorization", "x-api-key"} & set(public[0].all_headers())
    # no token and no code in any URL a server was sent (the code travelled in the fragment, which stays in the
    # browser, and in the token request's body)
    secrets = [access, identity, *seen["codes"]]
    assert not [r.url for r in requests if any(secret in r.url for secret in secrets)]

    # a signed-in person may see who shares (the co-worker finder's rules), unlike a read key
    with page.expect_response(lambda r: urlsplit(r.url).path.endswith("/people")) as listed:
        page.check("#show-people")
    assert listed.value.status == 200
    assert listed.value.request.all_headers().get("authorization") == f"Bearer {access}"
    assert page.is_checked("#show-people") and page.text_content("#people-note") == ""

    # the token is the person's: the API knows them (their own sharing choice, set by devkit seed)
    sharing = page.evaluate("""(token) => fetch('/api/v1/me/sharing', {headers: {authorization: 'Bearer ' + token}})
                               .then(r => r.json())""", access)
    assert sharing["level"] == "floor"

    # sign out: back to the choice of sign-in, the tokens gone
    page.click("#signout")
    page.wait_for_selector("#org-form:not([hidden])")
    assert page.locator("#key-form:not([hidden])").count() == 1
    assert page.locator("#who[hidden]").count() == 1 and page.locator("#signout[hidden]").count() == 1
    assert page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('oidc.user:')).length") == 0


def test_an_expired_token_sends_the_person_back_to_sign_in(page, live_server, tenant, devkit_keys):
    user = f"bob@{tenant['tenantId']}.example"
    sign_in(page, live_server, tenant, user)
    key = page.evaluate("Object.keys(sessionStorage).find(k => k.startsWith('oidc.user:'))")
    stored = stored_user(page)
    # The same person's token, as it is two hours later: the API answers 401 "the token has expired".
    stored["access_token"] = issue_token(KeyRing.load(devkit_keys), issuer_url(live_server, tenant["tenantId"]),
                                         user, now=time.time() - 7200)
    page.evaluate("([k, v]) => sessionStorage.setItem(k, v)", [key, json.dumps(stored)])
    page.reload()
    page.wait_for_selector("#org-form:not([hidden])", timeout=20_000)
    assert "sign in again" in page.text_content("#error")
    assert page.locator("#who[hidden]").count() == 1
    assert page.evaluate("Object.keys(sessionStorage).filter(k => k.startsWith('oidc.user:')).length") == 0
    assert page.input_value("#tenant-input") == tenant["tenantId"]  # one click from signing in again


def test_a_tenant_without_dashboard_sign_in_is_told_so(page, live_server):
    page.goto(f"{live_server}/app/#tenant=nobody-here")
    page.wait_for_selector("#org-form:not([hidden])")
    page.click("#org-form button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "does not sign people in to the dashboard" in page.text_content("#error")
    assert urlsplit(page.url).path == "/app/"  # no redirect anywhere
