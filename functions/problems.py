"""RFC 9457 problem+json for every error the HTTP API returns, including FastAPI's own."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.domain import imdf
from shared.domain.errors import (
    Conflict,
    ContractViolation,
    Forbidden,
    InvalidToken,
    NotFound,
    Unauthenticated,
    json_path,
)
from shared.domain.ports import AlreadyExists, DependencyUnavailable, PreconditionFailed
from shared.services.sites import SiteUnavailable

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://spaceflow.dev/problems/"


def problem(status: int, title: str, detail: str | None = None, *, type_: str = "about:blank",
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def contract_problem(exc: ContractViolation) -> JSONResponse:
    """400 naming every offending field."""
    return problem(400, exc.title, f"{len(exc.errors)} field(s) are invalid",
                   type_=PROBLEM_BASE + "invalid-body", errors=[e.as_dict() for e in exc.errors])


def domain_problem(exc: Exception) -> JSONResponse | None:
    """The answer to a domain error that maps to one status (401, 403, 404, 409, 412, 503), None for another
    exception. The request gate answers with it too, so a 401 is the same document wherever it is decided."""
    if isinstance(exc, DependencyUnavailable):
        return problem(503, "Service unavailable", str(exc), type_=PROBLEM_BASE + "dependency-unavailable",
                       headers={"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, InvalidToken):
        # RFC 6750 section 3: the challenge names the error; the description is the detail, one of a few fixed
        # texts (never the token, nor which check failed).
        challenge = f'Bearer realm="spaceflow", error="invalid_token", error_description="{exc}"'
        return problem(401, "Unauthorized", str(exc), type_=PROBLEM_BASE + "invalid-token",
                       headers={"WWW-Authenticate": challenge})
    if isinstance(exc, Conflict):
        return problem(409, "Conflict", str(exc), type_=PROBLEM_BASE + "conflict", **exc.details)
    if isinstance(exc, imdf.ImdfError):
        where: dict[str, Any] = {k: v for k, v in (("file", exc.file), ("featureId", exc.feature_id)) if v is not None}
        if isinstance(exc, imdf.ArchiveTooLarge):
            return problem(413, "Content Too Large", str(exc), type_=PROBLEM_BASE + "archive-too-large", **where)
        field = exc.file or "$"
        if exc.feature_id:
            field += f"#{exc.feature_id}"
        return problem(400, "The IMDF archive is invalid", str(exc), type_=PROBLEM_BASE + "invalid-imdf",
                       errors=[{"field": field, "message": exc.message}], **where)
    if isinstance(exc, SiteUnavailable):
        # Not transient: an operator must fix or re-save the building. Only this building answers so.
        return problem(503, "Building unavailable", str(exc), type_=PROBLEM_BASE + "site-unavailable",
                       buildingId=exc.building.building_id)
    for exc_type, (status, title, slug, headers) in _DOMAIN_PROBLEMS.items():
        if isinstance(exc, exc_type):
            return problem(status, title, str(exc), type_=PROBLEM_BASE + slug, headers=headers)
    return None


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ContractViolation)
    async def _contract(request: Request, exc: ContractViolation) -> JSONResponse:
        return contract_problem(exc)

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            # FastAPI prefixes the location with where the value came from: body, query, path, header.
            where, rest = (loc[0], loc[1:]) if loc and loc[0] in ("body", "query", "path", "header", "cookie") else ("body", loc)
            field = json_path(rest) if where == "body" else f"{where}.{json_path(rest)}"
            errors.append({"field": field, "message": str(err.get("msg", "invalid")).removeprefix("Value error, ")})
        return problem(400, "The request is invalid", f"{len(errors)} field(s) are invalid",
                       type_=PROBLEM_BASE + "invalid-request", errors=errors)

    for exc_type in (*_DOMAIN_PROBLEMS, DependencyUnavailable, Conflict, SiteUnavailable, imdf.ImdfError):
        app.add_exception_handler(exc_type, _domain_handler)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else None
        return problem(exc.status_code, _reason(exc.status_code), detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal server error", "an unexpected error occurred; it has been logged")


# Domain errors that map to a status one to one: (status, title, problem type, extra headers).
_DOMAIN_PROBLEMS = {
    Unauthenticated: (401, "Unauthorized", "unauthenticated",
                      {"WWW-Authenticate": 'ApiKey header="x-api-key", Bearer realm="spaceflow"'}),
    Forbidden: (403, "Forbidden", "missing-scope", None),
    NotFound: (404, "Not found", "not-found", None),
    AlreadyExists: (409, "Conflict", "already-exists", None),
    PreconditionFailed: (412, "Precondition failed", "stale-version", None),
}


async def _domain_handler(request: Request, exc: Exception) -> JSONResponse:
    return domain_problem(exc) or problem(500, "Internal server error")  # registered for domain errors only


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
