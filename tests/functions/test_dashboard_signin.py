"""The dashboard's sign-in through the HTTP API (in-memory adapters): the identity configuration's dashboard client,
the public route that tells the dashboard how a tenant signs in (and tells strangers no more than it must), the
gate letting exactly that route through without a credential, and the pages' Content-Security-Policy."""
from __future__ import annotations

import httpx
import pytest

from functions.gate import PUBLIC_ROUTES
from functions.http_api import create_api
from shared.settings import load_settings
from shared.wiring import build_in_memory_context, set_context
from tests.functions.conftest import LOCAL_VALUES
from tests.functions.test_query_api import ADMIN, new_tenant
from tests.support.identity import configure_sign_in

ENTRA = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
CLIENT = "6731de76-14a6-49ae-97bc-6eba6914391e"


@pytest.fixture
async def acme(api, memory_context):
    keys = await new_tenant(api, "acme")
    keys["issuer"] = await configure_sign_in(api, "acme", keys["admin"], memory_context.issuer_documents)
    return keys


def identity(issuer, **dashboard) -> dict:
    return {"issuer": issuer.issuer, "audience": issuer.audience, "userClaim": "oid", **dashboard}


def is_problem(response: httpx.Response, status: int) -> bool:
    return (response.status_code == status and response.headers["content-type"].startswith("application/problem+json")
            and response.json()["status"] == status)


async def test_the_identity_takes_a_dashboard_client_checked_like_its_other_fields(api, acme):
    put = await api.put("/api/v1/tenants/acme/identity", headers=acme["admin"],
                        json=identity(acme["issuer"], dashboardClientId="spaceflow-dashboard"))
    assert put.status_code == 200, put.text
    got = (await api.get("/api/v1/tenants/acme/identity", headers=acme["admin"])).json()
    assert got["dashboardClientId"] == "spaceflow-dashboard" and got["dashboardScope"] is None
    bad = await api.put("/api/v1/tenants/acme/identity", headers=acme["admin"],
                        json=identity(acme["issuer"], dashboardClientId="has space", dashboardScope="a  b"))
    assert is_problem(bad, 400)
    assert {e["field"] for e in bad.json()["errors"]} == {"dashboardClientId", "dashboardScope"}
    alone = await api.put("/api/v1/tenants/acme/identity", headers=acme["admin"],
                          json=identity(acme["issuer"], dashboardScope="api://x/access_as_user"))
    assert is_problem(alone, 400) and alone.json()["errors"][0]["field"] == "dashboardScope"
    too_long = await api.put("/api/v1/tenants/acme/identity", headers=acme["admin"],
                             json=identity(acme["issuer"], dashboardClientId="x" * 5000))
    assert is_problem(too_long, 400) and too_long.json()["errors"][0]["field"] == "dashboardClientId"
    # Entra ID: without the API's scope the dashboard would get a token for Microsoft Graph, which the API refuses
    entra = {"issuer": ENTRA, "audience": f"api://{CLIENT}", "dashboardClientId": CLIENT}
    refused = await api.put("/api/v1/tenants/acme/identity", headers=ADMIN, json=entra)
    assert is_problem(refused, 400) and refused.json()["errors"][0]["field"] == "dashboardScope"
    accepted = await api.put("/api/v1/tenants/acme/identity", headers=ADMIN,
                             json={**entra, "dashboardScope": f"api://{CLIENT}/access_as_user"})
    assert accepted.status_code == 200 and accepted.json()["dashboardScope"] == f"api://{CLIENT}/access_as_user"


async def test_the_sign_in_route_tells_anyone_the_issuer_client_and_scope(api, acme):
    await api.put("/api/v1/tenants/acme/identity", headers=acme["admin"],
                  json=identity(acme["issuer"], dashboardClientId="spaceflow-dashboard",
                                dashboardScope="api://spaceflow-devkit/access_as_user"))
    answer = await api.get("/api/v1/tenants/acme/signin")  # no credential at all
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"tenantId": "acme", "issuer": acme["issuer"].issuer, "clientId": "spaceflow-dashboard",
                             "scope": "openid profile api://spaceflow-devkit/access_as_user"}
    assert answer.headers["cache-control"] == "max-age=60"
    # the rest of the configuration (audience, keys, user claim) is not in it
    assert not {"audience", "jwksUri", "userClaim"} & set(answer.json())


async def test_unknown_tenant_and_tenant_without_sign_in_are_the_same_404(api, acme):
    await new_tenant(api, "globex")  # a tenant without any identity provider
    await api.put("/api/v1/tenants/acme/identity", headers=acme["admin"], json=identity(acme["issuer"]))  # no client
    answers = {t: await api.get(f"/api/v1/tenants/{t}/signin") for t in ("acme", "globex", "nobody-here")}
    for tenant_id, answer in answers.items():
        assert is_problem(answer, 404), tenant_id
        assert answer.json()["detail"] == f"no sign-in for tenant '{tenant_id}'"
        assert set(answer.json()) == set(answers["nobody-here"].json())
        assert "cache-control" not in answer.headers
    # turning the dashboard client on, then sign-in off, shows at once on this instance
    await api.put("/api/v1/tenants/acme/identity", headers=acme["admin"],
                  json=identity(acme["issuer"], dashboardClientId="dash"))
    assert (await api.get("/api/v1/tenants/acme/signin")).json()["clientId"] == "dash"
    assert (await api.delete("/api/v1/tenants/acme/identity", headers=acme["admin"])).status_code == 204
    assert is_problem(await api.get("/api/v1/tenants/acme/signin"), 404)


@pytest.mark.parametrize("tenant_id", ["ACME", "ac", "a" * 64, "acme_corp", "%2E%2E", "-acme", "acme%00"])
async def test_a_bad_tenant_id_is_a_400_naming_it(api, tenant_id):
    answer = await api.get(f"/api/v1/tenants/{tenant_id}/signin")
    assert is_problem(answer, 400), answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["path.tenantId"]


async def test_only_get_on_that_one_path_is_public(api, acme):
    await api.put("/api/v1/tenants/acme/identity", headers=acme["admin"],
                  json=identity(acme["issuer"], dashboardClientId="dash"))
    assert [(method, pattern.pattern) for method, pattern in PUBLIC_ROUTES] == [
        ("GET", r"/api/v1/tenants/[^/]+/signin"),
        ("POST", r"/api/v1/graph/notifications/[^/]+/[^/]+/[^/]+")]  # Graph's, checked by clientState (bookings)
    for method, path in (("POST", "/api/v1/tenants/acme/signin"), ("PUT", "/api/v1/tenants/acme/signin"),
                         ("GET", "/api/v1/graph/notifications/acme/hq/r-oak"),
                         ("POST", "/api/v1/graph/notifications/acme/hq"),
                         ("POST", "/api/v1/graph/notifications/acme/hq/r-oak/x"),
                         ("DELETE", "/api/v1/tenants/acme/signin"), ("GET", "/api/v1/tenants/acme/signin/x"),
                         ("GET", "/api/v1/tenants/acme/signin/"), ("GET", "/api/v1/tenants/acme/identity"),
                         ("GET", "/api/v1/tenants/acme/keys"), ("GET", "/api/v1/tenants/signin"),
                         ("GET", "/api/v1/tenants/acme/x/signin")):
        answer = await api.request(method, path, content=b"{}" if method != "GET" else None)
        assert answer.status_code == 401, (method, path, answer.status_code)
        assert answer.headers["connection"] == "close"


async def test_strangers_repeating_a_tenant_id_cost_one_read_a_minute(api, acme, memory_context, monkeypatch):
    reads: list[str] = []
    original = memory_context.tenants.get_identity

    async def counted(tenant_id: str):
        reads.append(tenant_id)
        return await original(tenant_id)

    monkeypatch.setattr(memory_context.tenants, "get_identity", counted)
    for _ in range(20):
        assert (await api.get("/api/v1/tenants/nobody-here/signin")).status_code == 404
        assert (await api.get("/api/v1/tenants/acme/signin")).status_code == 404
    assert sorted(reads) == ["acme", "nobody-here"]


async def test_the_openapi_document_says_the_route_needs_no_credential(api):
    operation = (await api.get("/api/openapi.json")).json()["paths"]["/api/v1/tenants/{tenantId}/signin"]["get"]
    assert operation["security"] == [] and "401" not in operation["responses"]
    assert {"200", "400", "404", "503"} <= set(operation["responses"])


async def test_the_pages_may_connect_to_the_sign_in_origins_of_the_settings(api):
    for path in ("/api/docs", "/app/"):
        policy = (await api.get(path)).headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["connect-src"] == "'self' https://login.microsoftonline.com", path
    own = build_in_memory_context(load_settings({**LOCAL_VALUES, "DASHBOARD_SIGNIN_ORIGINS":
                                                 "https://idp.example.com:8443, https://*.ciamlogin.com"}))
    set_context(own)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api()), base_url="http://test") as client:
        policy = (await client.get("/app/")).headers["content-security-policy"]
    assert "connect-src 'self' https://idp.example.com:8443 https://*.ciamlogin.com;" in policy
