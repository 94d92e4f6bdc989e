"""FastAPI dependencies shared by the routers: the wiring context and the calling principal."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Header, Request

from functions.gate import CALLER_STATE
from shared.domain.errors import Forbidden
from shared.domain.tenancy import Caller, Principal, Scope
from shared.wiring import AppContext, get_context


async def caller(
    request: Request,
    x_api_key: str | None = Header(default=None, alias="x-api-key", description="the tenant's API key"),
    authorization: str | None = Header(default=None, alias="authorization",
                                       description="`Bearer <token>` of a person signed in with the tenant's issuer"),
    context: AppContext = Depends(get_context),
) -> Caller:
    """Who calls: the request gate authenticated the headers before reading the body and left the caller in the
    request state; without the gate (an app built another way), the same check from the same headers."""
    checked: Caller | None = request.scope.get("state", {}).get(CALLER_STATE)
    if checked is not None:
        return checked
    return await context.auth.authenticate_request(x_api_key, authorization)


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets the request through only for a tenant's caller holding `scope`."""

    async def check(who: Caller = Depends(caller), context: AppContext = Depends(get_context)) -> Principal:
        return context.auth.require(who, scope)

    return check


def require_any(*scopes: Scope) -> Callable[..., Awaitable[Principal]]:
    """A tenant's caller holding at least one of `scopes` (a route both integrators' keys and people use)."""

    async def check(who: Caller = Depends(caller), context: AppContext = Depends(get_context)) -> Principal:
        if isinstance(who, Principal) and any(who.allows(scope) for scope in scopes):
            return who
        return context.auth.require(who, scopes[0])  # raises the usual Forbidden

    return check


async def signed_in(who: Caller = Depends(caller)) -> Principal:
    """A person signed in with a bearer token (the /me routes); an API key is Forbidden here."""
    if not isinstance(who, Principal) or who.user_id is None or not who.allows(Scope.people_as_self):
        raise Forbidden("this is for a signed-in person: send 'Authorization: Bearer <token>' from the tenant's issuer")
    return who


async def tenant_manager(who: Caller = Depends(caller)) -> Caller:
    """The operator key, or a tenant's admin key (tenant and key management)."""
    if isinstance(who, Principal) and Scope.admin not in who.scopes:
        raise Forbidden("this key does not have the 'admin' scope")
    return who
