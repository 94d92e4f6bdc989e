"""Identity rules, pure: which issuers and key locations a tenant may configure, the Authorization header, token
lifetimes with leeway, the user id claim."""
from __future__ import annotations

import pytest

from shared.domain.errors import InvalidToken, Unauthenticated
from shared.domain.identity import (
    EXPIRED,
    NOT_VALID,
    SIGNED_IN_SCOPES,
    bearer_token,
    default_user_claim,
    discovery_url,
    identity_problems,
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
