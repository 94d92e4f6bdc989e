"""FastAPI dependencies shared by the routers: the wiring context and the calling principal."""
from __future__ import annotations

from fastapi import Depends, Header, Request

from functions.gate import CALLER_STATE
from shared.domain.errors import Forbidden
from shared.domain.tenancy import Caller, Principal, Scope
from shared.wiring import AppContext, get_context


async def caller(
    request: Request,
    x_api_key: str | None = Header(default=None, alias="x-api-key", description="the tenant's API key"),
    authorization: str | None = Header(default=None, alias="Authorization", include_in_schema=False),
    context: AppContext = Depends(get_context),
) -> Caller:
    """Who calls: the request gate authenticated the headers before reading the body and left the caller in the
    request state; without the gate (an app built another way), the same check from the same headers."""
    checked = request.scope.get("state", {}).get(CALLER_STATE)
    if checked is not None:
        return checked
    return await context.auth.authenticate_request(x_api_key, authorization)


def require(scope: Scope):
    """A dependency that lets the request through only for a tenant's caller holding `scope`."""

    async def check(who: Caller = Depends(caller), context: AppContext = Depends(get_context)) -> Principal:
        return context.auth.require(who, scope)

    return check


async def tenant_manager(who: Caller = Depends(caller)) -> Caller:
    """The operator key, or a tenant's admin key (tenant and key management)."""
    if isinstance(who, Principal) and Scope.admin not in who.scopes:
        raise Forbidden("this key does not have the 'admin' scope")
    return who
