"""How the dashboard signs a tenant's people in: public, asked before anyone has a credential (functions/gate.py
PUBLIC_ROUTES). What it tells a stranger is in docs/dashboard.md ("What the sign-in route tells")."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from functions.routes.models import PROBLEMS, TenantIdPath
from shared.wiring import AppContext, get_context

router = APIRouter(tags=["sign-in"])

CACHE_CONTROL = "max-age=60"  # as long as the service keeps it (SIGN_IN_TTL_S)


class DashboardSignInOut(BaseModel):
    tenant_id: str = Field(alias="tenantId")
    issuer: str = Field(description="the OpenID Connect issuer (its discovery document is found from it)")
    client_id: str = Field(alias="clientId", description="the dashboard's public client id at the issuer")
    scope: str = Field(description="what the dashboard asks for, space-separated: `openid profile` and the "
                                   "tenant's dashboardScope")
    model_config = {"populate_by_name": True}


@router.get("/v1/tenants/{tenantId}/signin", response_model=DashboardSignInOut, response_model_by_alias=True,
            responses={400: PROBLEMS[400], 404: {**PROBLEMS[404], "description": "no such tenant, or one whose "
                                                 "people do not sign in to the dashboard (the same answer)"}},
            summary="How the dashboard signs the tenant's people in (no credential)")
async def dashboard_sign_in(tenantId: TenantIdPath, response: Response,
                            context: AppContext = Depends(get_context)) -> DashboardSignInOut:
    found = await context.identity.dashboard_sign_in(tenantId)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return DashboardSignInOut(tenant_id=tenantId, issuer=found.issuer, client_id=found.client_id, scope=found.scope)
