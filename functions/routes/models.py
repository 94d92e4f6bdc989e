"""Response models and problem documentation shared by the routers."""
from __future__ import annotations

from functions.problems import PROBLEM_JSON

_problem = {"content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}

PROBLEMS = {
    400: {"description": "invalid input; `errors` names each field", **_problem},
    401: {"description": "no API key, or an unknown or revoked one", **_problem},
    403: {"description": "the key lacks the scope this needs", **_problem},
    404: {"description": "not found (also another tenant's resource)", **_problem},
}
