"""Identity rules, pure: which issuers and key locations a tenant may configure, the Authorization header, token
lifetimes with leeway, the user id claim, the dashboard's sign-in (client id, scope, the origins it may reach)."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.domain.errors import InvalidToken, Unauthenticated
from shared.domain.identity import (
    EXPIRED,
    NOT_VALID,
    SIGNED_IN_SCOPES,
    IdentityConfig,
    bearer_token,
    dashboard_problems,
    dashboard_sign_in,
    default_user_claim,
    discovery_url,
    identity_problems,
    sign_in_origins,
    signed_in_principal,
    token_time_problem,
    uri_problem,
    user_id_from,
)
from shared.domain.tenancy import Scope


@pytest.mark.parametrize("url", [
    "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
    "https://sts.windows.net/9188040d-6c67-4c5b-b112-36a304b66dad/",
    "https://idp.example.com:8443/realms/acme",
    "https://8.8.8.8/keys",
])
def test_public_https_issuers_are_accepted(url):
    assert uri_problem(url, allow_loopback=False, issuer=True) is None


@pytest.mark.parametrize(("url", "why"), [
    ("http://idp.example.com/", "https"),
    ("ftp://idp.example.com/", "https"),
    ("https://user:pw@idp.example.com/", "user name"),
    ("https://idp.example.com/#frag", "fragment"),
    ("https://10.0.0.4/keys", "internal"),
    ("https://169.254.169.254/metadata", "internal"),  # the instance metadata endpoint
    ("https://[fd00::1]/keys", "internal"),
    ("https://192.168.1.1/keys", "internal"),
    ("https://127.0.0.1/keys", "loopback"),
    ("http://localhost:7071/devkit/oidc/acme", "loopback"),
    ("https://idp.example.com:99999/", "not a URL"),
    ("https://idp.example.com/a b", "printable"),
    ("https://" + "a" * 600 + ".example/", "at most"),
    ("not a url", "printable"),
])
def test_unusable_or_internal_locations_are_refused(url, why):
    assert why in (uri_problem(url, allow_loopback=False) or "")


def test_loopback_over_http_only_when_local_development_allows_it():
    devkit = "http://127.0.0.1:7071/devkit/oidc/acme"
    assert uri_problem(devkit, allow_loopback=True, issuer=True) is None
    assert uri_problem("http://[::1]:7071/x", allow_loopback=True) is None
    assert uri_problem(devkit, allow_loopback=False, issuer=True) is not None
    # allowing loopback opens nothing else
    assert "internal" in uri_problem("https://10.1.2.3/keys", allow_loopback=True)
    assert "https" in uri_problem("http://idp.example.com/", allow_loopback=True)


def test_an_issuer_has_no_query_string_but_a_key_location_may():
    assert "query" in uri_problem("https://idp.example.com/?tenant=a", allow_loopback=False, issuer=True)
    assert uri_problem("https://idp.example.com/keys?tenant=a", allow_loopback=False) is None


def test_identity_problems_name_every_bad_field():
    errors = identity_problems("http://idp.example.com", "", "https://10.0.0.1/k", "exp", allow_loopback=False)
    assert [e.field for e in errors] == ["issuer", "audience", "jwksUri", "userClaim"]
    assert identity_problems("https://idp.example.com", "api://spaceflow", None, "oid", allow_loopback=False) == []


def test_entra_issuers_default_to_oid_others_to_sub():
    assert default_user_claim("https://login.microsoftonline.com/tid/v2.0") == "oid"
    assert default_user_claim("https://sts.windows.net/tid/") == "oid"
    assert default_user_claim("https://contoso.ciamlogin.com/tid/v2.0") == "oid"
    assert default_user_claim("https://accounts.google.com") == "sub"
    assert default_user_claim("https://login.microsoftonline.com.evil.example/") == "sub"


def test_discovery_url_drops_one_trailing_slash_of_the_issuer():
    assert discovery_url("https://sts.windows.net/tid/") == "https://sts.windows.net/tid/.well-known/openid-configuration"
    assert discovery_url("https://idp.example.com") == "https://idp.example.com/.well-known/openid-configuration"


def test_the_bearer_scheme_and_a_compact_token():
    assert bearer_token("Bearer aaa.bbb.ccc") == "aaa.bbb.ccc"
    assert bearer_token("bearer   aaa.bbb.ccc ") == "aaa.bbb.ccc"
    for other_scheme in ("Basic dXNlcjpwdw==", "ApiKey sf_x", "aaa.bbb.ccc", ""):
        with pytest.raises(Unauthenticated) as raised:
            bearer_token(other_scheme)
        assert not isinstance(raised.value, InvalidToken)
    for malformed in ("Bearer", "Bearer ", "Bearer a.b", "Bearer a.b.c.d", "Bearer a.b.c d", "Bearer a$.b.c",
                      "Bearer " + "a" * 9000 + ".b.c"):
        with pytest.raises(InvalidToken, match=NOT_VALID):
            bearer_token(malformed)


@pytest.mark.parametrize(("claims", "now", "problem"), [
    ({"exp": 1000}, 999, None),
    ({"exp": 1000}, 1059, None),  # within the leeway
    ({"exp": 1000}, 1061, EXPIRED),
    ({"exp": 1000, "nbf": 1100}, 1000 - 100, NOT_VALID),
    ({"exp": 2000, "nbf": 1050}, 1000, None),  # nbf within the leeway
    ({"exp": 2000, "iat": 1200}, 1000, NOT_VALID),  # issued in the future
    ({}, 1000, NOT_VALID),
    ({"exp": "1000"}, 999, NOT_VALID),
    ({"exp": True}, 0, NOT_VALID),
    ({"exp": 2000, "nbf": "soon"}, 1000, NOT_VALID),
])
def test_token_lifetime_with_leeway(claims, now, problem):
    assert token_time_problem(claims, now, leeway_s=60) == problem


def test_the_user_id_must_be_addressable():
    assert user_id_from({"oid": "4f2a-b9"}, "oid") == "4f2a-b9"
    assert user_id_from({"sub": "ann@acme.example"}, "sub") == "ann@acme.example"
    for bad in ({"oid": ""}, {"oid": 42}, {"oid": ["a"]}, {"oid": "has space"}, {"oid": "é"}, {"oid": "x" * 129}, {}):
        assert user_id_from(bad, "oid") is None


def test_a_signed_in_person_reads_and_acts_as_themselves_and_nothing_more():
    person = signed_in_principal("acme", "ann@acme.example")
    assert person.user_id == "ann@acme.example" and person.tenant_id == "acme"
    assert person.scopes == SIGNED_IN_SCOPES
    assert person.allows(Scope.read) and person.allows(Scope.people_as_self)
    for scope in (Scope.admin, Scope.people, Scope.ingest):
        assert not person.allows(scope)


ENTRA = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
KEYCLOAK = "https://idp.example.com/realms/acme"
CLIENT = "6731de76-14a6-49ae-97bc-6eba6914391e"


def test_a_dashboard_client_and_its_scope_are_checked_like_the_other_fields():
    assert dashboard_problems(ENTRA, CLIENT, f"api://{CLIENT}/access_as_user") == []
    assert dashboard_problems(KEYCLOAK, "spaceflow-dashboard", None) == []  # others issue tokens without a scope
    assert dashboard_problems(KEYCLOAK, None, None) == []
    for client_id in ("", "has space", "a" * 129, "<script>", "-leading", "x\u00e9", "a?b=c", "a#b"):
        assert [e.field for e in dashboard_problems(KEYCLOAK, client_id, None)] == ["dashboardClientId"], client_id
    for scope in ("", " ", "a  b", "a b c d e f", 'a"b', "a\\b", "x" * 257, "a\tb", "api://x/\u00e9"):
        assert [e.field for e in dashboard_problems(KEYCLOAK, "dash", scope)] == ["dashboardScope"], scope
    assert "only with dashboardClientId" in dashboard_problems(KEYCLOAK, None, "api://x/y")[0].message
    # Entra hands out a token for this API only for a scope the API exposes: without one the dashboard would loop
    [missing] = dashboard_problems(ENTRA, CLIENT, None)
    assert missing.field == "dashboardScope" and "access_as_user" in missing.message
    # every bad field of the whole configuration at once
    errors = identity_problems("http://idp.example.com", "api://x", None, "sub", allow_loopback=False,
                               dashboard_client_id="bad id", dashboard_scope="a  b")
    assert [e.field for e in errors] == ["issuer", "dashboardClientId", "dashboardScope"]


def test_the_dashboard_asks_for_openid_profile_and_the_tenants_scope_once_each():
    base = IdentityConfig("acme", ENTRA, "api://x", None, "oid", datetime(2025, 1, 1, tzinfo=UTC))
    assert dashboard_sign_in(base) is None  # no dashboard client: no dashboard sign-in
    entra = IdentityConfig("acme", ENTRA, "api://x", None, "oid", base.updated_at, dashboard_client_id=CLIENT,
                           dashboard_scope=f"api://{CLIENT}/access_as_user openid")
    found = dashboard_sign_in(entra)
    assert found is not None and found.issuer == ENTRA and found.client_id == CLIENT
    assert found.scope == f"openid profile api://{CLIENT}/access_as_user"
    plain = IdentityConfig("acme", KEYCLOAK, "api://x", None, "sub", base.updated_at, dashboard_client_id="dash")
    assert dashboard_sign_in(plain).scope == "openid profile"  # type: ignore[union-attr]


def test_sign_in_origins_are_bare_origins():
    assert sign_in_origins("https://login.microsoftonline.com") == ("https://login.microsoftonline.com",)
    assert sign_in_origins(" https://Login.MicrosoftOnline.com/, https://*.ciamlogin.com  https://idp.example.com:8443"
                           ",https://login.microsoftonline.com") == (
        "https://login.microsoftonline.com", "https://*.ciamlogin.com", "https://idp.example.com:8443")
    assert sign_in_origins("") == ()
    assert sign_in_origins("http://127.0.0.1:8080") == ("http://127.0.0.1:8080",)  # a local issuer only over http
    for bad in ("http://idp.example.com", "https://idp.example.com/path", "https://idp.example.com; script-src *",
                "'unsafe-inline'", "*", "https://*", "https://user@idp.example.com", "data:", "https://a..b",
                "https://idp.example.com?x", "https://*.*.example.com", ",".join(["https://a.example"] * 11)):
        with pytest.raises(ValueError):
            sign_in_origins(bad)
