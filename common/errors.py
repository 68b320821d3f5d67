"""The hub's errors and the one handler that renders them.

Every answer the hub makes itself is ``application/problem+json`` with a stable ``code``:

* 400 ``invalid_request`` — a body, query or path parameter failed validation
* 401 ``invalid_token`` / ``missing_token`` / ``invalid_admin_token``
* 401 ``invalid_client`` — ``/token`` client authentication failed (RFC 6749 §5.2)
* 400 ``unsupported_grant_type`` / ``invalid_grant`` / ``invalid_scope`` — ``/token``
* 403 ``not_granted`` — the consumer holds no grant for the service
* 403 ``forbidden`` — a node token used where the admin token is required
* 404 ``unknown_provider`` / ``unknown_service`` / ``not_found``
* 405 ``method_not_allowed``
* 409 ``conflict`` — the resource exists with other content
* 413 ``payload_too_large``
* 415 ``unsupported_media_type``
* 502 ``provider_bad_response`` — the provider answered something that is not HTTP
* 503 ``provider_unavailable`` — the provider refused the connection
* 504 ``provider_timeout`` — no answer within the provider timeout
* 503 ``provider_circuit_open`` — the provider failed repeatedly; refused at once
* 503 ``provider_busy`` — too many exchanges already wait on this provider
* 503 ``hub_overloaded`` — the hub sheds load; retry after ``Retry-After``
* 503 ``not_ready`` — the database or the ledger writer is down
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from common.contract import PROBLEM_CONTENT_TYPE, ProblemError

__all__ = [
    "AdminTokenInvalid",
    "Conflict",
    "Forbidden",
    "HubOverloaded",
    "InvalidRequest",
    "NotFound",
    "NotGranted",
    "NotReady",
    "PayloadTooLarge",
    "ProblemDetails",
    "ProviderBadResponse",
    "ProviderBusy",
    "ProviderCircuitOpen",
    "ProviderTimeout",
    "ProviderUnavailable",
    "TokenInvalid",
    "TokenMissing",
    "UnknownProvider",
    "UnknownService",
    "install_error_handlers",
    "problem_response",
    "problem_responses",
]


class InvalidRequest(ProblemError):
    status = 400
    code = "invalid_request"
    title = "Invalid request"


class TokenMissing(ProblemError):
    status = 401
    code = "missing_token"
    title = "Bearer token required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="ngsp"'})


class TokenInvalid(ProblemError):
    status = 401
    code = "invalid_token"
    title = "Invalid bearer token"

    def __init__(self, detail: str | None = None) -> None:
        desc = (detail or self.title).replace('"', "'")
        super().__init__(
            detail,
            headers={
                "WWW-Authenticate": (
                    f'Bearer realm="ngsp", error="invalid_token", error_description="{desc}"'
                )
            },
        )


class AdminTokenInvalid(ProblemError):
    status = 401
    code = "invalid_admin_token"
    title = "Admin token required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="ngsp-admin"'})


class Forbidden(ProblemError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotGranted(ProblemError):
    status = 403
    code = "not_granted"
    title = "No grant for this service"


class NotFound(ProblemError):
    status = 404
    code = "not_found"
    title = "Not found"


class UnknownProvider(ProblemError):
    status = 404
    code = "unknown_provider"
    title = "Unknown provider"


class UnknownService(ProblemError):
    status = 404
    code = "unknown_service"
    title = "Unknown service"


class Conflict(ProblemError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(ProblemError):
    status = 413
    code = "payload_too_large"
    title = "Request body too large"


class ProviderBadResponse(ProblemError):
    status = 502
    code = "provider_bad_response"
    title = "Provider sent an unusable response"


class ProviderUnavailable(ProblemError):
    status = 503
    code = "provider_unavailable"
    title = "Provider unavailable"


class ProviderTimeout(ProblemError):
    status = 504
    code = "provider_timeout"
    title = "Provider timed out"


class ProviderCircuitOpen(ProblemError):
    status = 503
    code = "provider_circuit_open"
    title = "Provider failing: circuit open"


class ProviderBusy(ProblemError):
    status = 503
    code = "provider_busy"
    title = "Too many exchanges waiting on this provider"


class HubOverloaded(ProblemError):
    status = 503
    code = "hub_overloaded"
    title = "The hub is over capacity"


class NotReady(ProblemError):
    status = 503
    code = "not_ready"
    title = "Not ready"


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


def problem_response(error: ProblemError, instance: str | None = None) -> Response:
    """Render a problem error as a response."""
    return Response(
        content=error.body(instance),
        status_code=error.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=error.headers,
    )


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
        codes = {
            400: ("invalid_request", "Invalid request"),
            404: ("not_found", "Not found"),
            405: ("method_not_allowed", "Method not allowed"),
            413: ("payload_too_large", "Request body too large"),
            415: ("unsupported_media_type", "Unsupported media type"),
        }
        code, title = codes.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        err = ProblemError(
            detail, code=code, status=exc.status_code, title=title, headers=exc.headers
        )
        return problem_response(err, request.url.path)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
