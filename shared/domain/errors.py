"""Domain errors that the HTTP layer maps to problem+json, each naming the fields at fault."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class FieldError:
    """One offending field: a JSON path such as `sightings[3].rssi` and a message a person can act on."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class DomainError(Exception):
    """Base of the errors a service raises on purpose."""


class ContractViolation(DomainError):
    """Input that breaks a contract; `errors` names every offending field."""

    def __init__(self, errors: list[FieldError], title: str = "The request body is invalid"):
        if not errors:
            raise ValueError("a ContractViolation needs at least one field error")
        self.errors = errors
        self.title = title
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """Render a pydantic error location as a JSON path: ('sightings', 3, 'rssi') -> 'sightings[3].rssi'.

    Keys that are not plain names are quoted (`["a.b"]`) so every path points at exactly one place.
    """
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            path += f".{part}" if path else part
        else:
            path += f"[{json.dumps(part)}]"
    return path or "$"


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """One FieldError per pydantic error, located by JSON path."""
    return [FieldError(json_path(tuple(err["loc"]), prefix), _message(err)) for err in exc.errors(include_url=False)]


def _message(err: ErrorDetails) -> str:
    message = err["msg"]
    # pydantic prefixes custom ValueErrors with "Value error, "; the field path already says where.
    return message.removeprefix("Value error, ")


def validate_model(model: type[ModelT], data: object, *, context: dict[str, Any] | None = None) -> ModelT:
    """model.model_validate that raises ContractViolation instead of pydantic's ValidationError."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise ContractViolation(field_errors(exc)) from None


class Unauthenticated(DomainError):
    """No credentials, an unknown or revoked API key, or an unusable Authorization header (401)."""


class InvalidToken(Unauthenticated):
    """A bearer token that cannot be accepted (401 with `WWW-Authenticate: Bearer error="invalid_token"`). The
    message says "expired" or "not valid", never which other check failed: that would help a forger more than
    a client."""


class Forbidden(DomainError):
    """A valid key without the scope the operation needs (403)."""


class NotFound(DomainError):
    """Nothing there for this caller: also what another tenant's resource looks like (404)."""


class Conflict(DomainError):
    """The request clashes with what is stored (409); `details` are extra problem fields naming what clashes."""

    def __init__(self, message: str, **details: Any) -> None:
        self.details = details
        super().__init__(message)
