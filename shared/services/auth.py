"""Who is calling: an API key or a signed-in person's bearer token in, a Principal (tenant + scopes) out."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shared.domain.errors import ContractViolation, FieldError, Forbidden, InvalidToken, Unauthenticated
from shared.domain.identity import NOT_VALID, bearer_token
from shared.domain.ports import ApiKeyStore
from shared.domain.tenancy import (
    KEY_SCOPES,
    ApiKeyRecord,
    Caller,
    Operator,
    Principal,
    Scope,
    hash_key,
    looks_like_key,
    new_key,
    same_secret,
)
from shared.services.common import Clock, utc_now
from shared.services.identity import BearerTokenVerifier

logger = logging.getLogger(__name__)


class AuthService:
    """Checks keys against their stored hashes. Verified keys are cached per instance for `cache_ttl_s`, so a
    revocation takes effect within that time on every instance (and a busy ingest path costs no RU a request)."""

    def __init__(self, keys: ApiKeyStore, admin_key: str | None = None, cache_ttl_s: float = 60.0,
                 clock: Clock = utc_now, monotonic: Callable[[], float] = time.monotonic, tokens: BearerTokenVerifier | None = None) -> None:
        self._keys = keys
        self._tokens = tokens
        self._admin_hash = hash_key(admin_key) if admin_key else None
        self._cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, ApiKeyRecord | None]] = {}
        self._clock = clock
        self._monotonic = monotonic

    async def authenticate_request(self, api_key: str | None, authorization: str | None) -> Caller:
        """The caller of a request from its two credential headers: the bearer token when `Authorization` is
        present (a signed-in person), else the `x-api-key`. Reads no body; raises Unauthenticated (InvalidToken
        for a token that cannot be accepted)."""
        if authorization is not None:
            token = bearer_token(authorization)
            if self._tokens is None:
                raise InvalidToken(NOT_VALID)
            return await self._tokens.verify(token)
        return await self.authenticate(api_key)

    async def authenticate(self, presented: str | None) -> Caller:
        """The tenant's Principal for a tenant key, the Operator for the bootstrap admin key."""
        if not presented:
            raise Unauthenticated("an API key is required in the x-api-key header (or a bearer token)")
        presented_hash = hash_key(presented)
        if self._admin_hash is not None and same_secret(presented_hash, self._admin_hash):
            return Operator()
        if not looks_like_key(presented):
            raise Unauthenticated("the API key is not valid")
        record = await self._lookup(presented_hash)
        # The store is addressed by the hash; comparing again in constant time keeps timing flat if it ever is not.
        if record is None or record.revoked or not same_secret(record.key_hash, presented_hash):
            raise Unauthenticated("the API key is not valid")
        return Principal(tenant_id=record.tenant_id, key_id=record.key_id, scopes=record.scopes)

    @staticmethod
    def require(caller: Caller, scope: Scope) -> Principal:
        """The caller as a tenant's principal holding `scope`; Forbidden otherwise (the operator key reaches no
        tenant's data)."""
        if isinstance(caller, Operator):
            raise Forbidden("the bootstrap admin key manages tenants and keys only: use a key of the tenant")
        if not caller.allows(scope):
            raise Forbidden(f"this key does not have the '{scope.value}' scope")
        return caller

    async def mint_key(self, tenant_id: str, scopes: set[Scope], name: str = "") -> tuple[str, ApiKeyRecord]:
        """A new key for the tenant; the plain key is returned once and never stored."""
        if not_for_keys := sorted(s.value for s in set(scopes) - KEY_SCOPES):
            raise ContractViolation([FieldError("scopes", f"{', '.join(not_for_keys)}: only for signed-in people")])
        key, key_id = new_key()
        record = ApiKeyRecord(key_hash=hash_key(key), key_id=key_id, tenant_id=tenant_id, scopes=frozenset(scopes),
                              created_at=self._clock(), name=name)
        await self._keys.put(record)
        logger.info("minted key %s for tenant %s with scopes %s", key_id, tenant_id, sorted(s.value for s in scopes))
        return key, record

    def forget(self, key_hash: str) -> None:
        """Drop a cached key (after a revocation on this instance; others see it within the cache TTL)."""
        self._cache.pop(key_hash, None)

    async def _lookup(self, key_hash: str) -> ApiKeyRecord | None:
        now = self._monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self._keys.get(key_hash)
        if len(self._cache) > 10_000:  # bounded: unknown keys must not grow it without limit
            self._cache.clear()
        self._cache[key_hash] = (now + self._cache_ttl_s, record)
        return record


