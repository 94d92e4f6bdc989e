"""What the routers share: the types of path and query ids, and the problem documentation.

Every path parameter is one of the types below, so an id that could not name a document (`.`, `..`, `#`, `?`,
`\\`, a 100,000-character string...) is a 400 naming `path.<param>` before any store sees it. The patterns live
in shared/domain/tenancy.py, beside the documents' own.
"""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query

from functions.problems import PROBLEM_JSON
from shared.domain.tenancy import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    TENANT_ID_MAX_LENGTH,
    TENANT_ID_PATTERN,
    USER_ID_MAX_LENGTH,
    USER_ID_PATTERN,
)

# Annotated, not `= Path(...)` defaults: FastAPI copies an Annotated Path for each parameter, whereas a shared
# default instance would take the alias of the first parameter it was used for.
PathId = Annotated[str, Path(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN,
                             description="an id: letters, digits, `.`, `_`, `-`, starting with a letter or digit")]
TenantIdPath = Annotated[str, Path(min_length=3, max_length=TENANT_ID_MAX_LENGTH, pattern=TENANT_ID_PATTERN,
                                   description="the tenant id: lower-case letters, digits and `-`")]
UserIdPath = Annotated[str, Path(min_length=1, max_length=USER_ID_MAX_LENGTH, pattern=USER_ID_PATTERN,
                                 description="the opted-in user id the SDK sends (an e-mail address or UPN is fine)")]


def id_query(alias: str | None = None, description: str | None = None) -> Any:
    """An optional query parameter that holds an id: the path ids' pattern and bound. (A function, so that each
    parameter gets its own instance: see above.)"""
    return Query(default=None, alias=alias, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN, description=description)


_problem = {"content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}

PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "invalid input; `errors` names each field", **_problem},
    401: {"description": "no API key, or an unknown or revoked one", **_problem},
    403: {"description": "the key lacks the scope this needs", **_problem},
    404: {"description": "not found (also another tenant's resource)", **_problem},
}
