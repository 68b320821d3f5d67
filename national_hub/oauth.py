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

from common.contract import TOKEN_SCOPE
from common.errors import ProblemError, lookup, problem_response
from national_hub.audit import record_refusal
from national_hub.auth import RuntimeDep
from national_hub.schemas import TokenResponse
from national_hub.tokens import parse_basic_auth, verify_secret

__all__ = ["router"]

router = APIRouter(tags=["oauth2"])

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_FORM_BYTES = 8192


class OAuthError(ProblemError, code="invalid_request"):
    """An RFC 6749 §5.2 error, whose ``error`` member is its code."""

    def __init__(
        self,
        description: str,
        *,
        code: str | None = None,
        node: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        problem = self.problem if code is None else lookup(code)
        headers = dict(_NO_STORE)
        if problem.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="ngsp"'
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        #: The node the client id belongs to, when it names a registered one.
        self.node = node
        super().__init__(
            description,
            code=code,
            headers=headers,
            extra={"error": problem.code, "error_description": description},
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
            err,
            method="POST",
            path="/token",
            consumer=err.node,
            source=request.client.host if request.client else None,
        )
        return problem_response(err)


async def _secret_matches(secret: str, stored: str) -> bool:
    # A slow hash (an operator's chosen secret) is checked off the event loop.
    if stored.startswith("scrypt$"):
        return await asyncio.to_thread(verify_secret, secret, stored)
    return verify_secret(secret, stored)


async def _issue(request: Request, runtime: RuntimeDep) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("send the parameters as application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise OAuthError("request body too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise OAuthError("the body is not UTF-8") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            # RFC 6749 §3.2: parameters must not be repeated.
            raise OAuthError(f"parameter {key!r} is repeated")
        form[key] = value

    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError("grant_type is required")
    if grant_type != "client_credentials":
        raise OAuthError(
            f"grant type {grant_type!r} is not supported", code="unsupported_grant_type"
        )

    basic_header = request.headers.get("authorization")
    basic = parse_basic_auth(basic_header) if basic_header else None
    if basic_header and basic is None:
        raise OAuthError("malformed Basic credentials", code="invalid_client")
    if basic is not None and ("client_secret" in form):
        raise OAuthError("use one client authentication method, not two")
    if basic is not None:
        client_id, secret = basic
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not client_id or not secret:
        raise OAuthError("client authentication required", code="invalid_client")

    scope = form.get("scope")
    if scope is not None:
        allowed = set(TOKEN_SCOPE.split())
        if not set(scope.split()) <= allowed:
            raise OAuthError(f"scope may only contain: {TOKEN_SCOPE}", code="invalid_scope")

    snapshot = await runtime.registry.current()
    credential = snapshot.credentials.get(client_id)
    owner = credential.node if credential else None
    locked = runtime.logins.locked_for(client_id)
    if locked is not None:
        raise OAuthError(
            f"too many failed attempts for this client; try again in {math.ceil(locked)} s",
            code="too_many_attempts",
            node=owner,
            retry_after=locked,
        )
    if credential is None or not await _secret_matches(secret, credential.secret_hash):
        runtime.logins.failed(client_id)
        raise OAuthError("unknown client or wrong secret", code="invalid_client", node=owner)
    if not credential.enabled:
        raise OAuthError("this client is disabled", code="invalid_client", node=owner)
    node = snapshot.nodes.get(credential.node)
    if node is None or not node.active:
        raise OAuthError(
            f"node {credential.node} is disabled or not connected",
            code="invalid_client",
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
