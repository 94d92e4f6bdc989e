"""Bearer tokens verified against each tenant's issuer, with an in-memory key set and injected clocks: issuer,
audience, lifetime, signature, algorithm confusion, key rotation and its rate limit, tenants kept apart."""
from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from devkit.identity import KeyRing
from shared.adapters.memory import InMemoryApiKeyStore, InMemoryIssuerDocuments, InMemoryTenantDirectory
from shared.domain.errors import ContractViolation, InvalidToken, NotFound, Unauthenticated
from shared.domain.identity import EXPIRED, NO_USER_ID, NOT_VALID, SIGNED_IN_SCOPES
from shared.domain.people import Tenant
from shared.domain.ports import AlreadyExists, DependencyUnavailable
from shared.domain.tenancy import Principal, Scope
from shared.services.auth import AuthService
from shared.services.identity import (
    JWKS_MIN_REFETCH_S,
    JWKS_TTL_S,
    BearerTokenVerifier,
    IdentityService,
    IssuerKeys,
)
from tests.support.identity import FakeIssuer, pooled_key

T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
ANN = "ann@acme.example"


@dataclass
class Clocks:
    wall: float
    mono: float = 1000.0


@pytest.fixture
async def env():
    tenants = InMemoryTenantDirectory()
    for tenant_id in ("acme", "globex"):
        await tenants.create_tenant(Tenant(tenant_id, tenant_id.title(), T0))
    documents = InMemoryIssuerDocuments()
    clocks = Clocks(wall=float(int(time.time())))
    keys = IssuerKeys(documents, allow_loopback=True, monotonic=lambda: clocks.mono)
    verifier = BearerTokenVerifier(tenants, keys, wall_clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    identity = IdentityService(tenants, verifier, keys, allow_loopback=True, clock=lambda: T0)
    acme = FakeIssuer(documents, "acme").publish()
    await identity.put("acme", acme.issuer, acme.audience, None, "oid")
    return SimpleNamespace(tenants=tenants, documents=documents, clocks=clocks, verifier=verifier,
                           identity=identity, acme=acme, keys=keys)


def token(env, user: str = ANN, **kwargs) -> str:
    kwargs.setdefault("now", env.clocks.wall)
    return env.acme.token(user, **kwargs)


async def rejected(env, presented: str) -> str:
    with pytest.raises(InvalidToken) as raised:
        await env.verifier.verify(presented)
    return str(raised.value)


async def test_a_good_token_is_the_person_of_its_tenant(env):
    person = await env.verifier.verify(token(env))
    assert person == Principal("acme", f"user:{ANN}", SIGNED_IN_SCOPES, user_id=ANN)


async def test_the_configured_claim_is_the_user_id(env):
    await env.identity.put("acme", env.acme.issuer, env.acme.audience, None, "employee_id")
    assert (await env.verifier.verify(token(env, extra={"employee_id": "E1234"}))).user_id == "E1234"
    assert await rejected(env, token(env)) == NO_USER_ID  # no employee_id claim
    assert await rejected(env, token(env, extra={"employee_id": 1234})) == NO_USER_ID


async def test_a_token_of_an_unknown_issuer_is_not_valid(env):
    stranger = FakeIssuer(env.documents, "initech").publish()
    assert await rejected(env, stranger.token(ANN, now=env.clocks.wall)) == NOT_VALID


async def test_a_token_for_another_audience_is_not_valid(env):
    assert await rejected(env, token(env, audience="api://someone-else")) == NOT_VALID
    assert await rejected(env, token(env, extra={"aud": None})) == NOT_VALID


async def test_expiry_and_not_before_with_a_small_leeway(env):
    issued = token(env, lifetime_s=600)
    env.clocks.wall += 600 + 30  # past exp, within the leeway
    assert (await env.verifier.verify(issued)).user_id == ANN
    env.clocks.wall += 60
    assert await rejected(env, issued) == EXPIRED
    early = token(env, extra={"nbf": env.clocks.wall + 600})
    assert await rejected(env, early) == NOT_VALID
    assert await rejected(env, token(env, extra={"exp": None})) == NOT_VALID  # exp is required


async def test_a_bad_signature_is_not_valid(env):
    published_kid = env.acme.ring.signing.kid
    forger = KeyRing([pooled_key(7)])
    claims = jwt.decode(token(env), options={"verify_signature": False})
    forged = jwt.encode(claims, forger.signing.private_key(), algorithm="RS256", headers={"kid": published_kid})
    assert await rejected(env, forged) == NOT_VALID
    header, payload, signature = token(env).split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered["oid"] = "boss@acme.example"
    body = base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=").decode()
    assert await rejected(env, f"{header}.{body}.{signature}") == NOT_VALID


async def test_alg_none_and_hmac_with_the_public_key_are_refused(env):
    claims = jwt.decode(token(env), options={"verify_signature": False})
    kid = env.acme.ring.signing.kid
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
    assert await rejected(env, unsigned) == NOT_VALID
    # The classic confusion: HS256 "signed" with the issuer's public key, which anyone can fetch.
    public_pem = env.acme.ring.signing.private_key().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    import hashlib
    import hmac
    signature = base64.urlsafe_b64encode(
        hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()).rstrip(b"=")
    assert await rejected(env, b".".join([header, payload, signature]).decode()) == NOT_VALID


async def test_a_kid_of_an_es256_key_does_not_verify_an_rs256_header(env):
    env.acme.ring.keys.append(pooled_key(3, "ES256"))
    env.acme.publish()
    env.keys.forget("acme")
    es_kid = env.acme.ring.keys[-1].kid
    assert (await env.verifier.verify(token(env, kid=es_kid))).user_id == ANN  # ES256 is fine on its own
    claims = jwt.decode(token(env), options={"verify_signature": False})
    rs = jwt.encode(claims, env.acme.ring.keys[0].private_key(), algorithm="RS256", headers={"kid": es_kid})
    assert await rejected(env, rs) == NOT_VALID


async def test_key_rotation_new_key_after_refetch_old_key_gone_after_removal(env):
    old = token(env)
    assert (await env.verifier.verify(old)).user_id == ANN
    assert env.acme.jwks_fetches() == 1
    env.acme.ring.keys.append(pooled_key(1))  # the issuer rotates: a new key signs, the old one stays published
    env.acme.publish()
    new = token(env)
    # Just fetched: an unknown kid is not worth another fetch yet (made-up kids must not hammer the issuer).
    assert await rejected(env, new) == NOT_VALID
    assert env.acme.jwks_fetches() == 1
    env.clocks.mono += JWKS_MIN_REFETCH_S
    assert (await env.verifier.verify(new)).user_id == ANN
    assert (await env.verifier.verify(old)).user_id == ANN
    assert env.acme.jwks_fetches() == 2
    env.acme.ring.retire()  # the old key is withdrawn
    env.acme.publish()
    env.clocks.mono += JWKS_TTL_S
    assert await rejected(env, old) == NOT_VALID
    assert (await env.verifier.verify(new)).user_id == ANN
    assert env.acme.jwks_fetches() == 3


async def test_made_up_kids_cost_at_most_one_fetch_a_minute(env):
    await env.verifier.verify(token(env))
    claims = jwt.decode(token(env), options={"verify_signature": False})
    signer = env.acme.ring.signing.private_key()
    for n in range(50):
        garbage = jwt.encode(claims, signer, algorithm="RS256", headers={"kid": f"made-up-{n}"})
        assert await rejected(env, garbage) == NOT_VALID
        env.clocks.mono += 1  # 50 tokens over 50 seconds
    assert env.acme.jwks_fetches() == 1
    env.clocks.mono += JWKS_MIN_REFETCH_S
    await rejected(env, jwt.encode(claims, signer, algorithm="RS256", headers={"kid": "made-up-again"}))
    assert env.acme.jwks_fetches() == 2


async def test_concurrent_requests_on_a_cold_cache_share_one_fetch(env):
    tokens = [token(env, user=f"p{n}@acme.example") for n in range(20)]
    people = await asyncio.gather(*(env.verifier.verify(t) for t in tokens))
    assert {p.user_id for p in people} == {f"p{n}@acme.example" for n in range(20)}
    assert env.acme.jwks_fetches() == 1


async def test_an_unreachable_issuer_is_a_503_and_is_not_hammered(env):
    env.documents.withdraw(env.acme.jwks_uri)
    for _ in range(5):
        with pytest.raises(DependencyUnavailable):
            await env.verifier.verify(token(env))
    assert env.acme.jwks_fetches() == 1
    env.acme.publish()
    env.clocks.mono += JWKS_MIN_REFETCH_S
    assert (await env.verifier.verify(token(env))).user_id == ANN


async def test_keys_already_fetched_outlive_a_short_issuer_outage(env):
    await env.verifier.verify(token(env))
    env.documents.withdraw(env.acme.jwks_uri)
    env.clocks.mono += JWKS_TTL_S  # due for a refresh, which fails
    assert (await env.verifier.verify(token(env))).user_id == ANN
    assert env.acme.jwks_fetches() == 2


async def test_a_discovery_document_naming_another_issuer_is_not_trusted(env):
    env.documents.serve(env.acme.issuer + "/.well-known/openid-configuration",
                        {"issuer": "https://evil.example", "jwks_uri": env.acme.jwks_uri})
    with pytest.raises(DependencyUnavailable):
        await env.verifier.verify(token(env))


async def test_a_configured_jwks_uri_skips_discovery(env):
    await env.identity.put("acme", env.acme.issuer, env.acme.audience, env.acme.jwks_uri, "oid")
    env.documents.withdraw(env.acme.issuer + "/.well-known/openid-configuration")
    assert (await env.verifier.verify(token(env))).user_id == ANN


async def test_one_issuer_one_tenant(env):
    with pytest.raises(AlreadyExists):
        await env.identity.put("globex", env.acme.issuer, "api://globex", None, None)
    # A token of acme's issuer is acme's person, whatever else it claims.
    person = await env.verifier.verify(token(env, extra={"tid": "globex", "tenant": "globex"}))
    assert person.tenant_id == "acme"
    # Once acme moves to another issuer, the old one is free, and acme's old tokens are refused.
    old_token = token(env)
    moved = FakeIssuer(env.documents, "acme-new", ring=env.acme.ring).publish()
    await env.identity.put("acme", moved.issuer, moved.audience, None, "oid")
    assert await rejected(env, old_token) == NOT_VALID
    await env.identity.put("globex", env.acme.issuer, env.acme.audience, None, "oid")
    assert (await env.verifier.verify(old_token)).tenant_id == "globex"


async def test_a_claim_left_behind_does_not_block_the_issuer(env):
    await env.tenants.claim_issuer("https://idp.example.com/stale", "acme")  # as after an interrupted change
    config = await env.identity.put("globex", "https://idp.example.com/stale", "api://globex", None, None)
    assert config.user_claim == "sub"
    assert await env.tenants.issuer_owner("https://idp.example.com/stale") == "globex"


async def test_sign_in_can_be_turned_off(env):
    issued = token(env)
    await env.verifier.verify(issued)
    await env.identity.delete("acme")
    assert await rejected(env, issued) == NOT_VALID
    with pytest.raises(NotFound):
        await env.identity.get("acme")


async def test_configuration_is_validated_and_only_for_a_tenant(env):
    with pytest.raises(ContractViolation) as raised:
        await env.identity.put("acme", "https://10.0.0.1/", "", "http://idp.example.com/keys", "iat")
    assert {e.field for e in raised.value.errors} == {"issuer", "audience", "jwksUri", "userClaim"}
    with pytest.raises(NotFound):
        await env.identity.put("initech", "https://idp.example.com/", "api://x", None, None)


async def test_authenticate_request_takes_the_bearer_token_when_there_is_one(env):
    keys = InMemoryApiKeyStore()
    auth = AuthService(keys, tokens=env.verifier)
    key, _ = await auth.mint_key("acme", {Scope.read}, "r")
    by_key = await auth.authenticate_request(key, None)
    assert by_key.user_id is None and by_key.scopes == frozenset({Scope.read})
    by_token = await auth.authenticate_request(key, f"Bearer {token(env)}")  # the token wins over the key
    assert by_token.user_id == ANN
    with pytest.raises(InvalidToken):
        await auth.authenticate_request(key, "Bearer not-a-token")
    with pytest.raises(Unauthenticated) as wrong_scheme:
        await auth.authenticate_request(None, f"Basic {key}")
    assert not isinstance(wrong_scheme.value, InvalidToken)
    with pytest.raises(Unauthenticated):
        await auth.authenticate_request(None, None)
    without_verifier = AuthService(keys)
    with pytest.raises(InvalidToken):
        await without_verifier.authenticate_request(None, f"Bearer {token(env)}")


async def test_keys_cannot_be_minted_with_a_signed_in_scope(env):
    auth = AuthService(InMemoryApiKeyStore())
    with pytest.raises(ContractViolation, match="people-as-self"):
        await auth.mint_key("acme", {Scope.read, Scope.people_as_self}, "x")
