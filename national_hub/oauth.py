"""``POST /token``: OAuth2 client credentials grant (RFC 6749 §4.4).

Errors follow RFC 6749 §5.2 (``error`` and ``error_description``) and are at the same
time problem+json bodies whose ``code`` equals ``error``, so OAuth2 client libraries and
our own clients read the same answer.
"""

from __future__ import annotations

import asyncio
import math
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from common.contract import PROBLEM_CONTENT_TYPE, TOKEN_SCOPE, Outcome, ProblemError
from national_hub.audit import record_refusal
from national_hub.auth import RuntimeDep
from national_hub.schemas import TokenResponse
from national_hub.tokens import parse_basic_auth, verify_secret

__all__ = ["router"]

router = APIRouter(tags=["oauth2"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_REFUSAL_OUTCOMES = {
    401: Outcome.UNAUTHORIZED,
    403: Outcome.FORBIDDEN,
    413: Outcome.TOO_LARGE,
    429: Outcome.OVERLOADED,
}
_MAX_FORM_BYTES = 8192


class OAuthError(ProblemError):
    """An RFC 6749 §5.2 error."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        node: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        headers = dict(_NO_STORE)
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="ngsp"'
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        #: The node the client id belongs to, when it names a registered one.
        self.node = node
        super().__init__(
            description,
            code=error,
            status=status,
            title=error.replace("_", " ").capitalize(),
            headers=headers,
            extra={"error": error, "error_description": description},
        )


def _oauth_response(err: OAuthError) -> Response:
    return Response(
        content=err.body(),
        status_code=err.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=err.headers,
    )


_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "scope": {"type": "string"},
                    },
                }
            }
        },
    },
    "responses": {
        "400": {"description": "invalid_request, unsupported_grant_type or invalid_scope"},
        "401": {"description": "invalid_client"},
        "429": {"description": "too_many_attempts: failed attempts locked the client id"},
    },
}


@router.post("/token", response_model=TokenResponse, openapi_extra=_FORM_SCHEMA)
async def issue_token(request: Request, runtime: RuntimeDep) -> Response:
    """Exchange a node's client id and secret for a short-lived access token."""
    try:
        return await _issue(request, runtime)
    except OAuthError as err:
        runtime.metrics.auth_failures.labels(err.code).inc()
        await record_refusal(
            runtime,
            method="POST",
            path="/token",
            status=err.status,
            outcome=_REFUSAL_OUTCOMES.get(err.status, Outcome.BAD_REQUEST),
            consumer=err.node,
        )
        return _oauth_response(err)


async def _secret_matches(secret: str, stored: str) -> bool:
    # A slow hash (an operator's chosen secret) is checked off the event loop.
    if stored.startswith("scrypt$"):
        return await asyncio.to_thread(verify_secret, secret, stored)
    return verify_secret(secret, stored)


async def _issue(request: Request, runtime: RuntimeDep) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError(
            "invalid_request", "send the parameters as application/x-www-form-urlencoded"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise OAuthError("invalid_request", "request body too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the body is not UTF-8") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            # RFC 6749 §3.2: parameters must not be repeated.
            raise OAuthError("invalid_request", f"parameter {key!r} is repeated")
        form[key] = value

    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("invalid_request", "grant_type is required")
    if grant_type != "client_credentials":
        raise OAuthError("unsupported_grant_type", f"grant type {grant_type!r} is not supported")

    basic_header = request.headers.get("authorization")
    basic = parse_basic_auth(basic_header) if basic_header else None
    if basic_header and basic is None:
        raise OAuthError("invalid_client", "malformed Basic credentials", status=401)
    if basic is not None and ("client_secret" in form):
        raise OAuthError("invalid_request", "use one client authentication method, not two")
    if basic is not None:
        client_id, secret = basic
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise OAuthError("invalid_client", "client authentication required", status=401)

    scope = form.get("scope")
    if scope is not None:
        allowed = set(TOKEN_SCOPE.split())
        if not set(scope.split()) <= allowed:
            raise OAuthError("invalid_scope", f"scope may only contain: {TOKEN_SCOPE}")

    snapshot = await runtime.registry.current()
    credential = snapshot.credentials.get(client_id)
    owner = credential.node if credential else None
    locked = runtime.logins.locked_for(client_id)
    if locked is not None:
        raise OAuthError(
            "too_many_attempts",
            f"too many failed attempts for this client; try again in {math.ceil(locked)} s",
            status=429,
            node=owner,
            retry_after=locked,
        )
    if credential is None or not await _secret_matches(secret, credential.secret_hash):
        runtime.logins.failed(client_id)
        raise OAuthError("invalid_client", "unknown client or wrong secret", status=401, node=owner)
    if not credential.enabled:
        raise OAuthError("invalid_client", "this client is disabled", status=401, node=owner)
    node = snapshot.nodes.get(credential.node)
    if node is None or not node.active:
        raise OAuthError(
            "invalid_client",
            f"node {credential.node} is disabled or not connected",
            status=401,
            node=owner,
        )
    runtime.logins.succeeded(client_id)
    token = runtime.tokens.issue(
        node=node.code, client_id=client_id, generation=credential.generation
    )
    runtime.metrics.tokens.labels(node.code).inc()
    payload = TokenResponse(
        access_token=token, expires_in=runtime.tokens.ttl_seconds, scope=TOKEN_SCOPE
    )
    return JSONResponse(payload.model_dump(), headers=_NO_STORE)
