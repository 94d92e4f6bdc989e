"""Tenants and their API keys: what a key may do is its scopes; only a hash of it is ever stored."""
from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

KEY_PREFIX = "sf"
_KEY_FORMAT = re.compile(r"^sf_[a-z0-9]{8}_[A-Za-z0-9_\-]{32,64}$")


class Scope(str, enum.Enum):
    ingest = "ingest"
    read = "read"
    people = "people"
    admin = "admin"


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored key: its hash (the lookup id), tenant, scopes and whether it was revoked."""

    key_hash: str
    key_id: str
    tenant_id: str
    scopes: frozenset[Scope]
    created_at: datetime
    revoked: bool = False
    name: str = ""


@dataclass(frozen=True)
class Principal:
    """Who a request is: one tenant, with the key's scopes. The bootstrap admin key has no tenant."""

    tenant_id: str | None
    key_id: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        """A tenant's admin key may do everything in its tenant; the bootstrap admin key (no tenant) only the
        admin operations on tenants and keys."""
        if scope in self.scopes:
            return True
        return Scope.admin in self.scopes and self.tenant_id is not None

    def may_manage(self, tenant_id: str) -> bool:
        """Admin over that tenant: the bootstrap admin, or an admin key of the tenant itself."""
        return Scope.admin in self.scopes and self.tenant_id in (None, tenant_id)


def hash_key(key: str) -> str:
    """The id a key is stored under: SHA-256 hex. Keys are 190+ random bits, so no slow hash is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and its public id: `sf_<id>_<secret>`. Only the caller sees the key; store hash_key(key)."""
    key_id = secrets.token_hex(4)
    return f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}", key_id


def looks_like_key(key: str) -> bool:
    return bool(_KEY_FORMAT.match(key))


def same_secret(a: str, b: str) -> bool:
    """Constant-time comparison, so response timing does not reveal how much of a key matched."""
    return hmac.compare_digest(a.encode(), b.encode())
