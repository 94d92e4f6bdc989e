"""Signed-in people: each tenant's identity provider, its keys, and bearer tokens verified against them.

A token names its issuer; the issuer (unverified, only used to pick the candidate) leads to the one tenant that
configured it, and the token is then verified against that tenant's configuration alone: signature with a key
of the issuer's key set (RS256/ES256), `iss`, `aud`, `exp`/`nbf`/`iat` with a small leeway, and the user id claim.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt

from shared.domain.errors import ContractViolation, InvalidToken, NotFound
from shared.domain.identity import (
    ALLOWED_ALGORITHMS,
    CLOCK_LEEWAY_S,
    EXPIRED,
    MAX_KID_LENGTH,
    MAX_URI_LENGTH,
    NO_USER_ID,
    NOT_VALID,
    DashboardSignIn,
    IdentityConfig,
    dashboard_sign_in,
    default_user_claim,
    discovery_url,
    identity_problems,
    signed_in_principal,
    token_time_problem,
    uri_problem,
    user_id_from,
)
from shared.domain.ports import AlreadyExists, DependencyUnavailable, IssuerDocuments, TenantDirectory
from shared.domain.tenancy import Principal
from shared.services.common import Clock, utc_now

logger = logging.getLogger(__name__)

JWKS_TTL_S = 3600.0  # keys are refetched hourly even when every kid is known (rotations, revoked keys)
# An unknown kid refetches the key set, but at most once a minute per tenant: tokens with made-up kids cannot
# make us hammer the issuer, and a genuine rotation is picked up within a minute.
JWKS_MIN_REFETCH_S = 60.0
# While the issuer cannot be reached, the last key set it served is used for this long, then no token is.
JWKS_MAX_STALE_S = 24 * 3600.0
CONFIG_TTL_S = 60.0  # an identity change made on another instance takes effect within this time
# The dashboard's sign-in of a tenant is asked for without a credential: answers (a 404 too) are kept this long,
# so a stranger repeating one tenant id costs no store read, and a change shows within the time.
SIGN_IN_TTL_S = 60.0
MAX_KEYS = 100
_CACHE_LIMIT = 10_000  # issuers looked up per instance; made-up issuers must not grow the cache without bound
DEPENDENCY = "identity provider"


@dataclass
class _KeySet:
    source: tuple[str, str | None]  # (issuer, configured jwks_uri): a changed configuration discards the set
    keys: dict[str, jwt.PyJWK]
    fetched_at: float | None  # monotonic time of the last successful fetch; None: never fetched
    attempted_at: float  # monotonic time of the last attempt, successful or not


def parse_key_set(document: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS by kid: RSA (2048 bits or more) for RS256 and P-256 for ES256, public
    only. Other keys are skipped one by one, so one odd key does not take the issuer's others down."""
    raw = document.get("keys")
    if not isinstance(raw, list):
        raise TypeError("the key set has no 'keys' list")
    keys: dict[str, jwt.PyJWK] = {}
    for item in raw[:MAX_KEYS]:
        if not isinstance(item, dict):
            continue
        kid = item.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
            continue
        if item.get("use", "sig") != "sig" or item.get("kty") not in ("RSA", "EC") or "d" in item:
            continue
        if "alg" in item and item["alg"] not in ALLOWED_ALGORITHMS:
            continue
        try:
            key = jwt.PyJWK(item)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        if key.algorithm_name not in ALLOWED_ALGORITHMS:
            continue
        if key.algorithm_name == "RS256" and getattr(key.key, "key_size", 0) < 2048:
            continue
        keys[kid] = key
    return keys


class IssuerKeys:
    """Each tenant's signing keys, fetched from its issuer and cached: refreshed after `ttl_s`, refetched on an
    unknown kid (key rotation) at most every `min_refetch_s`. Concurrent requests share one fetch."""

    def __init__(self, documents: IssuerDocuments, *, allow_loopback: bool, monotonic: Callable[[], float] = time.monotonic,
                 ttl_s: float = JWKS_TTL_S, min_refetch_s: float = JWKS_MIN_REFETCH_S,
                 max_stale_s: float = JWKS_MAX_STALE_S) -> None:
        self._documents = documents
        self._allow_loopback = allow_loopback
        self._monotonic = monotonic
        self._ttl_s = ttl_s
        self._min_refetch_s = min_refetch_s
        self._max_stale_s = max_stale_s
        self._sets: dict[str, _KeySet] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def key(self, config: IdentityConfig, kid: str) -> jwt.PyJWK | None:
        """The tenant's key of that id, or None. DependencyUnavailable when the issuer's keys cannot be had."""
        source = (config.issuer, config.jwks_uri)
        entry = self._sets.get(config.tenant_id)
        if entry is not None and entry.source != source:
            entry = None
        now = self._monotonic()
        if entry is None:
            due = True
        else:
            may_retry = now - entry.attempted_at >= self._min_refetch_s
            expired = entry.fetched_at is None or now - entry.fetched_at >= self._ttl_s
            due = may_retry and (expired or kid not in entry.keys)
        if due:
            entry = await self._refresh(config, entry)
        assert entry is not None
        if entry.fetched_at is None or self._monotonic() - entry.fetched_at > self._max_stale_s:
            raise DependencyUnavailable(DEPENDENCY, "the issuer's keys could not be fetched",
                                        retry_after_s=int(self._min_refetch_s))
        return entry.keys.get(kid)

    def forget(self, tenant_id: str) -> None:
        self._sets.pop(tenant_id, None)

    async def _refresh(self, config: IdentityConfig, seen: _KeySet | None) -> _KeySet:
        lock = self._locks.setdefault(config.tenant_id, asyncio.Lock())
        async with lock:
            current = self._sets.get(config.tenant_id)
            if current is not None and current is not seen and current.source == (config.issuer, config.jwks_uri):
                return current  # another request refreshed it while this one waited
            try:
                keys = await self._fetch(config)
            except (DependencyUnavailable, ValueError, TypeError) as exc:
                logger.warning("keys of tenant %s's issuer could not be fetched: %s", config.tenant_id, exc)
                kept = seen.keys if seen is not None else {}
                entry = _KeySet((config.issuer, config.jwks_uri), kept, seen.fetched_at if seen else None,
                                self._monotonic())
            else:
                now = self._monotonic()
                entry = _KeySet((config.issuer, config.jwks_uri), keys, now, now)
                logger.info("fetched %d signing keys of tenant %s's issuer", len(keys), config.tenant_id)
            self._sets[config.tenant_id] = entry
            return entry

    async def _fetch(self, config: IdentityConfig) -> dict[str, jwt.PyJWK]:
        jwks_uri = config.jwks_uri
        if jwks_uri is None:
            discovery = await self._documents.fetch_json(discovery_url(config.issuer))
            if discovery.get("issuer") != config.issuer:
                raise ValueError("the discovery document names another issuer")
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str) or uri_problem(jwks_uri, self._allow_loopback):
                raise ValueError("the discovery document has no acceptable jwks_uri")
        return parse_key_set(await self._documents.fetch_json(jwks_uri))


class BearerTokenVerifier:
    """A bearer token in, the signed-in person's Principal out; InvalidToken otherwise. `wall_clock` is real
    time in seconds (tokens carry real times even when the app runs on a simulated clock)."""

    def __init__(self, tenants: TenantDirectory, keys: IssuerKeys, *, wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, config_ttl_s: float = CONFIG_TTL_S,
                 leeway_s: float = CLOCK_LEEWAY_S) -> None:
        self._tenants = tenants
        self._keys = keys
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._config_ttl_s = config_ttl_s
        self._leeway_s = leeway_s
        self._configs: dict[str, tuple[float, IdentityConfig | None]] = {}

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise self._reject("not a JWT") from None
        alg, kid, issuer = header.get("alg"), header.get("kid"), unverified.get("iss")
        if alg not in ALLOWED_ALGORITHMS:
            raise self._reject(f"algorithm {str(alg)[:20]!r}")
        if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
            raise self._reject("no kid")
        if not isinstance(issuer, str) or not issuer or len(issuer) > MAX_URI_LENGTH:
            raise self._reject("no iss")
        config = await self._config_for(issuer)
        if config is None:
            raise self._reject("issuer of no tenant")
        key = await self._keys.key(config, kid)
        if key is None or key.algorithm_name != alg:
            raise self._reject("unknown kid or a key of another algorithm", config.tenant_id)
        try:
            claims = jwt.decode(
                token, key=key, algorithms=[alg], audience=config.audience, issuer=config.issuer,
                # Times are checked below against an injectable clock; PyJWT would read the system's.
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise self._reject(type(exc).__name__, config.tenant_id) from None
        if problem := token_time_problem(claims, self._wall_clock(), self._leeway_s):
            if problem == EXPIRED:
                raise InvalidToken(EXPIRED)
            raise self._reject("not yet valid", config.tenant_id)
        user_id = user_id_from(claims, config.user_claim)
        if user_id is None:
            logger.info("bearer token of tenant %s has no usable '%s' claim", config.tenant_id, config.user_claim)
            raise InvalidToken(NO_USER_ID)
        return signed_in_principal(config.tenant_id, user_id)

    def forget(self, issuers: Iterable[str]) -> None:
        """Drop cached configurations (after a change on this instance; others see it within the TTL)."""
        for issuer in issuers:
            self._configs.pop(issuer, None)

    @staticmethod
    def _reject(reason: str, tenant_id: str | None = None) -> InvalidToken:
        # The reason goes to the log for whoever runs the tenant's sign-in, never to the caller.
        logger.info("bearer token rejected (%s)%s", reason, f" for tenant {tenant_id}" if tenant_id else "")
        return InvalidToken(NOT_VALID)

    async def _config_for(self, issuer: str) -> IdentityConfig | None:
        now = self._monotonic()
        cached = self._configs.get(issuer)
        if cached is not None and cached[0] > now:
            return cached[1]
        tenant_id = await self._tenants.issuer_owner(issuer)
        config = await self._tenants.get_identity(tenant_id) if tenant_id else None
        if config is not None and config.issuer != issuer:
            config = None  # a stale claim: the tenant has moved to another issuer since
        if len(self._configs) > _CACHE_LIMIT:
            self._configs.clear()
        self._configs[issuer] = (now + self._config_ttl_s, config)
        return config


class IdentityService:
    """Each tenant's identity provider, as its admin (or the operator) sets it. An issuer belongs to one tenant
    at most, so a token's issuer names the one configuration to verify it against."""

    def __init__(self, tenants: TenantDirectory, verifier: BearerTokenVerifier, keys: IssuerKeys, *,
                 allow_loopback: bool, clock: Clock = utc_now, monotonic: Callable[[], float] = time.monotonic,
                 sign_in_ttl_s: float = SIGN_IN_TTL_S) -> None:
        self._tenants = tenants
        self._verifier = verifier
        self._keys = keys
        self._allow_loopback = allow_loopback
        self._clock = clock
        self._monotonic = monotonic
        self._sign_in_ttl_s = sign_in_ttl_s
        self._sign_ins: dict[str, tuple[float, DashboardSignIn | None]] = {}

    async def put(self, tenant_id: str, issuer: str, audience: str, jwks_uri: str | None,
                  user_claim: str | None, dashboard_client_id: str | None = None,
                  dashboard_scope: str | None = None) -> IdentityConfig:
        if await self._tenants.get_tenant(tenant_id) is None:
            raise NotFound(f"no tenant '{tenant_id}'")
        claim = user_claim or default_user_claim(issuer)
        if errors := identity_problems(issuer, audience, jwks_uri, claim, self._allow_loopback,
                                       dashboard_client_id, dashboard_scope):
            raise ContractViolation(errors)
        previous = await self._tenants.get_identity(tenant_id)
        owner = await self._tenants.issuer_owner(issuer)
        if owner is not None and owner != tenant_id:
            held = await self._tenants.get_identity(owner)
            if held is not None and held.issuer == issuer:
                raise AlreadyExists("this issuer is configured for another tenant")
            await self._tenants.release_issuer(issuer, owner)  # a claim left behind by an interrupted change
        await self._tenants.claim_issuer(issuer, tenant_id)
        config = IdentityConfig(tenant_id, issuer, audience, jwks_uri, claim, self._clock(),
                                dashboard_client_id=dashboard_client_id, dashboard_scope=dashboard_scope)
        await self._tenants.put_identity(config)
        if previous is not None and previous.issuer != issuer:
            await self._tenants.release_issuer(previous.issuer, tenant_id)
        self._forget(tenant_id, previous, config)
        logger.info("identity provider of tenant %s set", tenant_id)
        return config

    async def get(self, tenant_id: str) -> IdentityConfig:
        config = await self._tenants.get_identity(tenant_id)
        if config is None:
            raise NotFound(f"tenant '{tenant_id}' has no identity provider configured")
        return config

    async def dashboard_sign_in(self, tenant_id: str) -> DashboardSignIn:
        """How the dashboard signs the tenant's people in (no credential asked: the route is public). NotFound,
        worded the same, for a tenant that does not exist and for one without dashboard sign-in; both cost the
        same one read of the identity configuration (the tenant itself is not looked up)."""
        now = self._monotonic()
        cached = self._sign_ins.get(tenant_id)
        if cached is not None and cached[0] > now:
            found = cached[1]
        else:
            config = await self._tenants.get_identity(tenant_id)
            found = dashboard_sign_in(config) if config is not None else None
            if len(self._sign_ins) >= _CACHE_LIMIT:
                self._sign_ins.clear()  # made-up tenant ids must not grow the cache without bound
            self._sign_ins[tenant_id] = (now + self._sign_in_ttl_s, found)
        if found is None:
            raise NotFound(f"no sign-in for tenant '{tenant_id}'")
        return found

    async def delete(self, tenant_id: str) -> None:
        """Sign-in off for the tenant: its people's tokens are refused (within CONFIG_TTL_S on other instances)."""
        config = await self.get(tenant_id)
        await self._tenants.delete_identity(tenant_id)
        await self._tenants.release_issuer(config.issuer, tenant_id)
        self._forget(tenant_id, config)
        logger.info("identity provider of tenant %s removed", tenant_id)

    def _forget(self, tenant_id: str, *configs: IdentityConfig | None) -> None:
        self._verifier.forget(c.issuer for c in configs if c is not None)
        self._keys.forget(tenant_id)
        self._sign_ins.pop(tenant_id, None)
