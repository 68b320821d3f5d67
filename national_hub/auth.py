"""Who is calling: the admin (admin token) or a node (access token), as FastAPI dependencies."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from common.errors import AdminTokenInvalid, Forbidden, ProblemError, TokenInvalid, TokenMissing
from national_hub.audit import record_refusal
from national_hub.registry import NodeInfo
from national_hub.routing import consumer_of
from national_hub.runtime import Runtime

__all__ = [
    "AdminDep",
    "Caller",
    "CallerDep",
    "NodeDep",
    "RuntimeDep",
    "get_runtime",
]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: the admin, or a node."""

    node: NodeInfo | None

    @property
    def is_admin(self) -> bool:
        return self.node is None


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise TokenMissing("send 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenInvalid("expected a Bearer token")
    return token.strip()


def _is_admin_token(runtime: Runtime, token: str) -> bool:
    return hmac.compare_digest(token.encode(), runtime.settings.admin_token_value().encode())


async def _node_for(runtime: Runtime, token: str) -> NodeInfo:
    claims = runtime.tokens.verify(token)
    return consumer_of(await runtime.registry.current(), claims)


async def require_admin(request: Request, runtime: RuntimeDep) -> None:
    """Admit only the admin token; a valid node token gets 403, anything else 401.

    Refusals go to the ledger (``audit.py``): the admin API is where an intruder would try.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token and _is_admin_token(runtime, token):
        return
    route = request.scope.get("route")
    path = getattr(route, "path", "/admin")
    node: NodeInfo | None = None
    if scheme.lower() == "bearer" and token:
        try:
            node = await _node_for(runtime, token)
        except (TokenInvalid, TokenMissing):
            node = None
    refusal: ProblemError = (
        Forbidden("node tokens cannot use the admin API")
        if node is not None
        else AdminTokenInvalid("send 'Authorization: Bearer <admin token>'")
    )
    await record_refusal(
        runtime,
        refusal,
        method=request.method,
        path=path,
        consumer=node.code if node is not None else None,
        source=request.client.host if request.client else None,
    )
    runtime.metrics.auth_failures.labels("admin_forbidden" if node else "invalid_admin_token").inc()
    raise refusal


async def require_node(request: Request, runtime: RuntimeDep) -> NodeInfo:
    """Admit a node's access token."""
    return await _node_for(runtime, _bearer(request))


async def require_caller(request: Request, runtime: RuntimeDep) -> Caller:
    """Admit the admin token or a node's access token."""
    token = _bearer(request)
    if _is_admin_token(runtime, token):
        return Caller(node=None)
    return Caller(node=await _node_for(runtime, token))


AdminDep = Annotated[None, Depends(require_admin)]
NodeDep = Annotated[NodeInfo, Depends(require_node)]
CallerDep = Annotated[Caller, Depends(require_caller)]
