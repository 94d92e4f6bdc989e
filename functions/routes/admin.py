"""Tenants, API keys and the people-finder audit log (admin scope)."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from functions.deps import require, tenant_manager
from functions.routes.models import PROBLEMS, PathId, TenantIdPath
from shared.domain.errors import Forbidden, NotFound
from shared.domain.tenancy import (
    TENANT_ID_MAX_LENGTH,
    TENANT_ID_PATTERN,
    Caller,
    Operator,
    Principal,
    Scope,
    may_manage,
)
from shared.wiring import AppContext, get_context

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
    key_id: str = Field(alias="keyId")
    user_id: str = Field(alias="userId")
    outcome: str
    level: str | None
    model_config = {"populate_by_name": True}


def _manage(who: Caller, tenant_id: str) -> None:
    if not may_manage(who, tenant_id):
        raise NotFound(f"no tenant '{tenant_id}'")  # another tenant's name must not be confirmed


def _tenant_out(t) -> TenantOut:
    return TenantOut(tenant_id=t.tenant_id, name=t.name, created_at=t.created_at)


def _key_out(r, cls=KeyOut, **extra):
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


@router.get("/v1/audit/people-lookups", response_model=list[AuditOut], response_model_by_alias=True,
            summary="Who looked up whom with the co-worker finder, newest first (tenant admin key)")
async def people_lookups(limit: int = Query(default=100, ge=1, le=1000),
                         who: Principal = Depends(require(Scope.admin)),
                         context: AppContext = Depends(get_context)) -> list[AuditOut]:
    entries = await context.people.audit(who.tenant_id, limit)
    return [AuditOut(at=e.at, key_id=e.key_id, user_id=e.user_id, outcome=e.outcome,
                     level=e.level.value if e.level else None) for e in entries]
