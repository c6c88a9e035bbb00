"""Errors as RFC 9457 problem details, so API clients get one machine-readable error shape.

Every error response is `application/problem+json` with `type`, `title`, `status`, `detail`
and `instance`. Validation failures add an `errors` list naming each bad parameter and why.
Unhandled exceptions become a 500 that names only an incident id (also written to the log),
never the exception text, which may hold SQL, paths or data.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
NOT_FOUND_TYPE = "urn:smmc:problem:not-found"
INVALID_PARAMETERS_TYPE = "urn:smmc:problem:invalid-parameters"
INTERNAL_ERROR_TYPE = "urn:smmc:problem:internal-error"

logger = logging.getLogger(__name__)


class Problem(BaseModel):
    """RFC 9457 §3.1 members (documentation of the error responses in the OpenAPI)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str


class InvalidParameter(BaseModel):
    in_: str = Field(alias="in", description="query, path, header or body")
    name: str
    detail: str


def _problem_schema(with_errors: bool) -> dict[str, Any]:
    """Inline JSON schemas (no `$defs`: a `#/...` reference would resolve against the whole
    OpenAPI document, not this schema)."""
    schema = Problem.model_json_schema()
    if with_errors:
        schema["title"] = "ValidationProblem"
        schema["properties"]["errors"] = {
            "type": "array",
            "items": InvalidParameter.model_json_schema(by_alias=True),
        }
        schema["required"] = [*schema["required"], "errors"]
    return schema


_DOCUMENTED: dict[int, tuple[bool, str]] = {
    404: (False, "no record with this key"),
    422: (True, "invalid parameters, each named in `errors`"),
    500: (False, "internal error; `instance` is the incident id in the server log"),
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` documenting these statuses as `application/problem+json` (and
    replacing FastAPI's default 422 schema, which this app never sends)."""
    return {
        status: {
            "description": _DOCUMENTED[status][1],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _problem_schema(_DOCUMENTED[status][0])}},
        }
        for status in statuses
    }


class NotFoundError(Exception):
    """A record looked up by its natural key does not exist."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r} not found")
        self.kind = kind
        self.key = key


def problem_response(
    status: int,
    detail: str,
    instance: str,
    problem_type: str = "about:blank",
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": problem_type,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extensions,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _error_entries(errors: Sequence[Any]) -> list[dict[str, str]]:
    """FastAPI's error list without the `input` echo: only where, which parameter, and why."""
    entries = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())]
        entries.append(
            {
                "in": location[0] if location else "request",
                "name": ".".join(location[1:]),
                "detail": str(error.get("msg", "invalid value")),
            }
        )
    return entries


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    errors = _error_entries(exc.errors() if isinstance(exc, RequestValidationError) else [])
    names = ", ".join(sorted({entry["name"] or entry["in"] for entry in errors}))
    return problem_response(
        422,
        f"invalid request parameter(s): {names}",
        request.url.path,
        problem_type=INVALID_PARAMETERS_TYPE,
        title="Invalid request parameters",
        errors=errors,
    )


async def _not_found_handler(request: Request, exc: Exception) -> JSONResponse:
    detail = str(exc)
    return problem_response(
        404, detail, request.url.path, problem_type=NOT_FOUND_TYPE, title="Not found"
    )


async def _http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        return await _unhandled_handler(request, exc)
    phrase = HTTPStatus(exc.status_code).phrase
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    return problem_response(
        exc.status_code, detail, request.url.path, headers=dict(exc.headers or {})
    )


async def _unhandled_handler(request: Request, exc: Exception) -> JSONResponse:
    incident = uuid.uuid4()
    logger.error(
        "unhandled error on %s %s (incident %s)",
        request.method,
        request.url.path,
        incident,
        exc_info=exc,
    )
    return problem_response(
        500,
        f"an internal error occurred; quote incident {incident} to the operators",
        f"urn:uuid:{incident}",
        problem_type=INTERNAL_ERROR_TYPE,
        title="Internal server error",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(NotFoundError, _not_found_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
