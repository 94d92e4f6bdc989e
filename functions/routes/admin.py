"""Tenants, their API keys and identity providers, and the co-worker finder's audit log (admin scope)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from functions.deps import require, tenant_manager
from functions.problems import PROBLEM_JSON
from functions.routes.models import PROBLEMS, PathId, TenantIdPath
from shared.domain.errors import Forbidden, NotFound
from shared.domain.identity import (
    MAX_AUDIENCE_LENGTH,
    MAX_CLIENT_ID_LENGTH,
    MAX_SCOPE_LENGTH,
    MAX_URI_LENGTH,
    IdentityConfig,
    discovery_url,
)
from shared.domain.people import SharingChange, SharingLevel, Tenant
from shared.domain.tenancy import (
    TENANT_ID_MAX_LENGTH,
    TENANT_ID_PATTERN,
    ApiKeyRecord,
    Caller,
    Operator,
    Principal,
    Scope,
    may_manage,
)
from shared.wiring import AppContext, get_context

KeyOutT = TypeVar("KeyOutT", bound="KeyOut")

router = APIRouter(tags=["admin"], responses=PROBLEMS)


class TenantIn(BaseModel):
    tenant_id: str = Field(alias="tenantId", min_length=3, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=128)
    model_config = {"extra": "forbid", "populate_by_name": True}


class TenantOut(BaseModel):
    tenant_id: str = Field(alias="tenantId")
    name: str
    created_at: datetime = Field(alias="createdAt")
    model_config = {"populate_by_name": True}


class KeyIn(BaseModel):
    scopes: list[Scope] = Field(min_length=1, max_length=4)
    name: str = Field(default="", max_length=128)
    model_config = {"extra": "forbid"}


class KeyOut(BaseModel):
    key_id: str = Field(alias="keyId")
    scopes: list[Scope]
    name: str
    created_at: datetime = Field(alias="createdAt")
    revoked: bool
    model_config = {"populate_by_name": True}


class NewKeyOut(KeyOut):
    key: str = Field(description="shown once: only a hash is stored")


class AuditOut(BaseModel):
    at: datetime
    key_id: str | None = Field(alias="keyId", description="the API key that looked (an integrator); null for a person")
    by_user_id: str | None = Field(alias="byUserId", description="the signed-in person who looked")
    user_id: str = Field(alias="userId", description="whom they looked up")
    outcome: str
    level: str | None
    model_config = {"populate_by_name": True}


class SharingChangeOut(BaseModel):
    at: datetime
    user_id: str = Field(alias="userId", description="whose sharing changed")
    by_user_id: str | None = Field(alias="byUserId", description="the person themselves, when they changed it")
    by_key_id: str | None = Field(alias="byKeyId", description="the API key that changed it (narrowing only)")
    from_level: SharingLevel | None = Field(alias="fromLevel", description="null: never set before")
    from_until: datetime | None = Field(alias="fromUntil")
    to_level: SharingLevel = Field(alias="toLevel")
    to_until: datetime | None = Field(alias="toUntil")
    model_config = {"populate_by_name": True}


class IdentityIn(BaseModel):
    issuer: str = Field(min_length=1, max_length=MAX_URI_LENGTH,
                        description="the `iss` of the tenant's tokens, e.g. https://login.microsoftonline.com/{tid}/v2.0")
    audience: str = Field(min_length=1, max_length=MAX_AUDIENCE_LENGTH,
                          description="the `aud` the tokens must carry: the API's application id (URI)")
    jwks_uri: str | None = Field(default=None, alias="jwksUri", max_length=MAX_URI_LENGTH,
                                 description="the issuer's key set; omitted: found by OpenID Connect discovery")
    user_claim: str | None = Field(default=None, alias="userClaim", max_length=64,
                                   description="the claim holding the person's user id (the SDK's userId); "
                                               "default oid for Entra ID, sub otherwise")
    dashboard_client_id: str | None = Field(
        default=None, alias="dashboardClientId", max_length=MAX_CLIENT_ID_LENGTH,
        description="the dashboard's public client (an SPA registration at the issuer, redirect URI "
                    "https://<app>/app/): with it, people sign in to /app/ themselves; public (GET .../signin)")
    dashboard_scope: str | None = Field(
        default=None, alias="dashboardScope", max_length=MAX_SCOPE_LENGTH,
        description="scopes the dashboard asks for besides `openid profile`, space-separated: for Entra ID the "
                    "scope the API exposes, e.g. api://<app id>/access_as_user (required there)")
    model_config = {"extra": "forbid", "populate_by_name": True}


class IdentityOut(BaseModel):
    tenant_id: str = Field(alias="tenantId")
    issuer: str
    audience: str
    jwks_uri: str | None = Field(alias="jwksUri")
    discovery_url: str | None = Field(alias="discoveryUrl", description="where the key set is found, without jwksUri")
    user_claim: str = Field(alias="userClaim")
    dashboard_client_id: str | None = Field(alias="dashboardClientId")
    dashboard_scope: str | None = Field(alias="dashboardScope")
    updated_at: datetime = Field(alias="updatedAt")
    model_config = {"populate_by_name": True}


_CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "another tenant has configured this issuer",
                   "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}}


def _manage(who: Caller, tenant_id: str) -> None:
    if not may_manage(who, tenant_id):
        raise NotFound(f"no tenant '{tenant_id}'")  # another tenant's name must not be confirmed


def _identity_out(c: IdentityConfig) -> IdentityOut:
    return IdentityOut(tenant_id=c.tenant_id, issuer=c.issuer, audience=c.audience, jwks_uri=c.jwks_uri,
                       discovery_url=None if c.jwks_uri else discovery_url(c.issuer), user_claim=c.user_claim,
                       dashboard_client_id=c.dashboard_client_id, dashboard_scope=c.dashboard_scope,
                       updated_at=c.updated_at)


def _tenant_out(t: Tenant) -> TenantOut:
    return TenantOut(tenant_id=t.tenant_id, name=t.name, created_at=t.created_at)


def _key_out(r: ApiKeyRecord, cls: type[KeyOutT] = KeyOut, **extra: Any) -> KeyOutT:  # type: ignore[assignment]
    return cls(key_id=r.key_id, scopes=sorted(r.scopes, key=lambda s: s.value), name=r.name,
               created_at=r.created_at, revoked=r.revoked, **extra)


@router.post("/v1/tenants", status_code=201, response_model=TenantOut, response_model_by_alias=True,
             summary="Create a tenant (bootstrap admin key)")
async def create_tenant(body: TenantIn, who: Caller = Depends(tenant_manager),
                        context: AppContext = Depends(get_context)) -> TenantOut:
    if not isinstance(who, Operator):
        raise Forbidden("only the bootstrap admin key creates tenants")
    return _tenant_out(await context.admin.create_tenant(body.tenant_id, body.name))


@router.get("/v1/tenants", response_model=list[TenantOut], response_model_by_alias=True,
            summary="Tenants: all of them for the bootstrap admin key, its own for a tenant's admin key")
async def list_tenants(who: Caller = Depends(tenant_manager),
                       context: AppContext = Depends(get_context)) -> list[TenantOut]:
    if isinstance(who, Operator):
        return [_tenant_out(t) for t in await context.admin.list_tenants()]
    return [_tenant_out(await context.admin.tenant(who.tenant_id))]


@router.post("/v1/tenants/{tenantId}/keys", status_code=201, response_model=NewKeyOut, response_model_by_alias=True,
             summary="Mint an API key for the tenant; the key is in this answer only")
async def mint_key(tenantId: TenantIdPath, body: KeyIn, who: Caller = Depends(tenant_manager),
                   context: AppContext = Depends(get_context)) -> NewKeyOut:
    _manage(who, tenantId)
    key, record = await context.admin.mint_key(tenantId, set(body.scopes), body.name)
    return _key_out(record, NewKeyOut, key=key)


@router.get("/v1/tenants/{tenantId}/keys", response_model=list[KeyOut], response_model_by_alias=True,
            summary="The tenant's keys (never the keys themselves)")
async def list_keys(tenantId: TenantIdPath, who: Caller = Depends(tenant_manager),
                    context: AppContext = Depends(get_context)) -> list[KeyOut]:
    _manage(who, tenantId)
    return [_key_out(r) for r in await context.admin.list_keys(tenantId)]


@router.delete("/v1/tenants/{tenantId}/keys/{keyId}", status_code=204, response_class=Response,
               summary="Revoke a key (other instances stop accepting it within a minute)")
async def revoke_key(tenantId: TenantIdPath, keyId: PathId, who: Caller = Depends(tenant_manager),
                     context: AppContext = Depends(get_context)) -> Response:
    _manage(who, tenantId)
    await context.admin.revoke_key(tenantId, keyId)
    return Response(status_code=204)


@router.put("/v1/tenants/{tenantId}/identity", response_model=IdentityOut, response_model_by_alias=True,
            responses=_CONFLICT,
            summary="Set where the tenant's people sign in: their OpenID Connect issuer (Entra ID), audience, keys")
async def put_identity(tenantId: TenantIdPath, body: IdentityIn, who: Caller = Depends(tenant_manager),
                       context: AppContext = Depends(get_context)) -> IdentityOut:
    _manage(who, tenantId)
    return _identity_out(await context.identity.put(tenantId, body.issuer, body.audience, body.jwks_uri,
                                                    body.user_claim, body.dashboard_client_id, body.dashboard_scope))


@router.get("/v1/tenants/{tenantId}/identity", response_model=IdentityOut, response_model_by_alias=True,
            summary="The tenant's identity provider (404 when its people cannot sign in)")
async def get_identity(tenantId: TenantIdPath, who: Caller = Depends(tenant_manager),
                       context: AppContext = Depends(get_context)) -> IdentityOut:
    _manage(who, tenantId)
    return _identity_out(await context.identity.get(tenantId))


@router.delete("/v1/tenants/{tenantId}/identity", status_code=204, response_class=Response,
               summary="Turn sign-in off: the tenant's bearer tokens are refused (within a minute on every instance)")
async def delete_identity(tenantId: TenantIdPath, who: Caller = Depends(tenant_manager),
                          context: AppContext = Depends(get_context)) -> Response:
    _manage(who, tenantId)
    await context.identity.delete(tenantId)
    return Response(status_code=204)


@router.get("/v1/audit/people-lookups", response_model=list[AuditOut], response_model_by_alias=True,
            summary="Who looked up whom with the co-worker finder, newest first (tenant admin key)")
async def people_lookups(limit: int = Query(default=100, ge=1, le=1000),
                         who: Principal = Depends(require(Scope.admin)),
                         context: AppContext = Depends(get_context)) -> list[AuditOut]:
    entries = await context.people.audit(who.tenant_id, limit)
    return [AuditOut(at=e.at, key_id=e.key_id, by_user_id=e.by_user_id, user_id=e.user_id, outcome=e.outcome,
                     level=e.level.value if e.level else None) for e in entries]


def _change_out(c: SharingChange) -> SharingChangeOut:
    return SharingChangeOut(at=c.at, user_id=c.user_id, by_user_id=c.by_user_id, by_key_id=c.by_key_id,
                            from_level=c.from_level, from_until=c.from_until, to_level=c.to_level,
                            to_until=c.to_until)


@router.get("/v1/audit/sharing-changes", response_model=list[SharingChangeOut], response_model_by_alias=True,
            summary="Who changed whose sharing, from what to what, newest first (tenant admin key)")
async def sharing_changes(limit: int = Query(default=100, ge=1, le=1000),
                          who: Principal = Depends(require(Scope.admin)),
                          context: AppContext = Depends(get_context)) -> list[SharingChangeOut]:
    return [_change_out(c) for c in await context.people.sharing_changes(who.tenant_id, limit)]
