"""Tenants and their API keys: what a key may do is its scopes; only a hash of it is ever stored."""
from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from shared.domain.errors import ContractViolation, FieldError

KEY_PREFIX = "sf"
_KEY_FORMAT = re.compile(r"^sf_[a-z0-9]{8}_[A-Za-z0-9_\-]{32,64}$")


class Scope(str, enum.Enum):
    ingest = "ingest"
    read = "read"
    people = "people"
    admin = "admin"
    # A booking system's key: PUT/DELETE bookings and read them back (docs/bookings.md).
    bookings = "bookings"
    # A signed-in person acting as themselves (bearer token): look up colleagues, manage their own sharing.
    # Never a key's scope: a key has no person to act as.
    people_as_self = "people-as-self"


KEY_SCOPES = frozenset({Scope.ingest, Scope.read, Scope.people, Scope.admin, Scope.bookings})


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


TENANT_ID_MAX_LENGTH = 63
TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{2,62}$"
_TENANT_ID = re.compile(TENANT_ID_PATTERN)
# Building, space, team and key ids in paths and documents: no '/', '|', '#', '?', '\\', no '.' or '..', bounded.
ID_MAX_LENGTH = 64
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
_ID = re.compile(ID_PATTERN)
# User ids (the SDK's opted-in `userId`, team members, the people finder's path): ids that may also be e-mail
# addresses or UPNs, so '@' and '+' too; still none of the characters above, and bounded.
USER_ID_MAX_LENGTH = 128
USER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+\-]{0,127}$"
_USER_ID = re.compile(USER_ID_PATTERN)
KEY_SEPARATOR = "|"


# fullmatch, not match: `$` in a Python pattern also matches before a final newline ("hq\n"); pydantic's regex
# engine, which checks the same patterns on input, does not.
def is_tenant_id(text: str) -> bool:
    return bool(_TENANT_ID.fullmatch(text))


def is_id(text: str) -> bool:
    """A building, space, team or key id: what every path id and document id must look like."""
    return bool(_ID.fullmatch(text))


def is_user_id(text: str) -> bool:
    """A user id as the SDK sends it and the people finder and teams name it."""
    return bool(_USER_ID.fullmatch(text))


@dataclass(frozen=True, order=True)
class BuildingRef:
    """One building of one tenant. Everything below the routes names a building this way, never by its id alone:
    two tenants may both call their building `hq`."""

    tenant_id: str
    building_id: str

    def __post_init__(self) -> None:
        if not is_tenant_id(self.tenant_id):
            raise ValueError(f"not a tenant id: {self.tenant_id[:80]!r}")
        if not is_id(self.building_id):
            raise ValueError(f"not a building id: {self.building_id[:80]!r}")

    @property
    def key(self) -> str:
        """The partition key of the building's live state: `tenantId|buildingId` (docs/data-model.md)."""
        return f"{self.tenant_id}{KEY_SEPARATOR}{self.building_id}"

    @classmethod
    def from_key(cls, key: str) -> BuildingRef:
        tenant_id, sep, building_id = key.partition(KEY_SEPARATOR)
        if not sep:
            raise ValueError(f"not a building key: {key[:80]!r}")
        return cls(tenant_id, building_id)

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Principal:
    """Who a request is within a tenant: a key's scopes, and the person when a user signed in. The tenant is
    never missing: the bootstrap admin key is an `Operator`, not a Principal."""

    tenant_id: str
    key_id: str
    scopes: frozenset[Scope]
    user_id: str | None = None  # the signed-in person (bearer token); None for an API key

    def allows(self, scope: Scope) -> bool:
        """A tenant's admin key may do everything in its tenant."""
        return scope in self.scopes or Scope.admin in self.scopes

    def building(self, building_id: str) -> BuildingRef:
        """This tenant's building of that id; ContractViolation naming `path.buildingId` for an id that is not one."""
        if not is_id(building_id):
            raise ContractViolation([FieldError("path.buildingId", f"must match {ID_PATTERN}")],
                                    title="The request is invalid")
        return BuildingRef(self.tenant_id, building_id)


@dataclass(frozen=True)
class Operator:
    """The bootstrap admin key (ADMIN_API_KEY): creates tenants and their keys, and reads instance counters.
    It belongs to no tenant, so it can reach no tenant's buildings or people."""

    key_id: str = "bootstrap-admin"


Caller = Principal | Operator


def may_manage(caller: Caller, tenant_id: str) -> bool:
    """Admin over that tenant: the operator, or an admin key of the tenant itself."""
    if isinstance(caller, Operator):
        return True
    return Scope.admin in caller.scopes and caller.tenant_id == tenant_id


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
