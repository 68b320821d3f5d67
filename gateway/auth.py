"""Who is calling the gateway: a developer's API key (rate-limited), or the admin."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from common.errors import AdminTokenInvalid, InvalidApiKey, RateLimited
from gateway.keys import find_key
from gateway.models import ApiKey
from gateway.runtime import GatewayRuntime

__all__ = ["AdminDep", "KeyDep", "RuntimeDep", "require_admin", "require_key"]


def get_runtime(request: Request) -> GatewayRuntime:
    runtime: GatewayRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[GatewayRuntime, Depends(get_runtime)]


def _presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def require_key(request: Request, runtime: RuntimeDep) -> ApiKey:
    """The caller's API key, once its rate limit and quota admit the request."""
    presented = _presented_key(request)
    if not presented:
        raise InvalidApiKey(
            "send your key as 'X-API-Key: ngsp_...'",
            headers={"WWW-Authenticate": 'ApiKey realm="ngsp-gateway"'},
        )
    async with runtime.db.read_session() as session:
        key = await find_key(session, presented)
    if key is None:
        raise InvalidApiKey(
            "unknown or revoked API key",
            headers={"WWW-Authenticate": 'ApiKey realm="ngsp-gateway"'},
        )
    decision = await runtime.limiter.hit(key.id, key.rate_limit_per_minute, key.daily_quota)
    request.state.ratelimit_headers = decision.headers()
    if not decision.allowed:
        runtime.metrics.rate_limited.labels(str(key.id), decision.exceeded or "rate").inc()
        if decision.exceeded == "quota":
            raise RateLimited(
                f"daily quota of {key.daily_quota} requests used; it resets in "
                f"{decision.reset_seconds} s",
                code="quota_exceeded",
                headers=decision.headers(),
            )
        raise RateLimited(
            f"over {key.rate_limit_per_minute} requests a minute; retry in "
            f"{decision.reset_seconds} s",
            headers=decision.headers(),
        )
    return key


async def require_admin(request: Request, runtime: RuntimeDep) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), runtime.admin_token.encode()
    ):
        raise AdminTokenInvalid("send 'Authorization: Bearer <gateway admin token>'")


KeyDep = Annotated[ApiKey, Depends(require_key)]
AdminDep = Annotated[None, Depends(require_admin)]
