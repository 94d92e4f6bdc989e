"""FastAPI dependencies shared by the routers: the wiring context and the calling principal."""
from __future__ import annotations

from fastapi import Depends, Header

from shared.domain.tenancy import Principal, Scope
from shared.wiring import AppContext, get_context


async def principal(
    x_api_key: str | None = Header(default=None, alias="x-api-key", description="the tenant's API key"),
    context: AppContext = Depends(get_context),
) -> Principal:
    return await context.auth.authenticate(x_api_key)


def require(scope: Scope):
    """A dependency that lets the request through only with a key holding `scope`."""

    async def check(who: Principal = Depends(principal), context: AppContext = Depends(get_context)) -> Principal:
        context.auth.require(who, scope)
        return who

    return check
