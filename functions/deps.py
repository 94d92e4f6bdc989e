"""FastAPI dependencies shared by the routers: the wiring context and the calling principal."""
from __future__ import annotations

from fastapi import Depends, Header

from shared.domain.errors import Forbidden
from shared.domain.tenancy import Caller, Principal, Scope
from shared.wiring import AppContext, get_context


async def caller(
    x_api_key: str | None = Header(default=None, alias="x-api-key", description="the tenant's API key"),
    context: AppContext = Depends(get_context),
) -> Caller:
    return await context.auth.authenticate(x_api_key)


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
