"""The one handler: every error a FastAPI app raises becomes a problem+json answer."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from common.contract import PROBLEM_CONTENT_TYPE
from common.errors._catalogue import lookup
from common.errors._errors import InvalidRequest, ProblemError
from common.errors._render import problem_response

__all__ = ["ProblemDetails", "install_error_handlers", "problem_responses"]


class ProblemDetails(BaseModel):
    """An RFC 9457 problem details body, with the platform's stable ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None


_PROBLEM_STATUSES = {
    400: "Invalid request (the body names the field)",
    401: "Missing or invalid credentials",
    403: "Authenticated, but not allowed",
    404: "Not found",
    405: "Method not allowed",
    408: "The request arrived too slowly",
    409: "Conflicts with what exists",
    413: "Body too large",
    415: "Unsupported media type",
    422: "Well formed, but cannot be processed",
    429: "Too many requests (see Retry-After)",
    431: "Headers too large",
    503: "Unavailable or shedding load (see Retry-After)",
}


def problem_responses(*extra: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the problem+json answers every route may give."""
    ref = {"$ref": "#/components/schemas/ProblemDetails"}
    return {
        status: {
            "model": ProblemDetails,
            "description": description,
            "content": {PROBLEM_CONTENT_TYPE: {"schema": ref}},
        }
        for status, description in {**_PROBLEM_STATUSES, **dict.fromkeys(extra, "Error")}.items()
    }


#: The code of an HTTP error the framework raises (a route not found, a method not
#: allowed), by its status; any other status is ``http_error``.
_HTTP_ERROR_CODES = {
    problem.status: problem.code
    for problem in map(
        lookup,
        (
            "invalid_request",
            "not_found",
            "method_not_allowed",
            "payload_too_large",
            "unsupported_media_type",
        ),
    )
}


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Make every error the app raises a problem+json answer."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem_response(exc, request.url.path)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"field": _field_name(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        err = InvalidRequest(f"{first['field']}: {first['message']}", extra={"errors": errors})
        return problem_response(err, request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        err = ProblemError(
            exc.detail if isinstance(exc.detail, str) else None,
            code=_HTTP_ERROR_CODES.get(exc.status_code, "http_error"),
            status=exc.status_code,
            headers=exc.headers,
        )
        return problem_response(err, request.url.path)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
