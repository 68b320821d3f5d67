"""The gateway's app factory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from sqlalchemy import text

from common.edge import EdgeGuard, EdgeLimits
from common.errors import NotReady, install_error_handlers, problem_responses
from common.logs import quiet_libraries
from common.metrics import CONTENT_TYPE_LATEST, drop_created_series, render
from common.server import settle_heap
from gateway import admin, api
from gateway.auth import RuntimeDep
from gateway.runtime import open_runtime
from gateway.settings import GatewaySettings

__all__ = ["create_app", "create_app_from_env"]


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    """Build the gateway: procedures, dossiers, level-4 statistics, keys, health."""
    settings = settings or GatewaySettings()
    quiet_libraries()
    drop_created_series()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            app.state.runtime = runtime
            settle_heap()
            yield

    app = FastAPI(
        title="NGSP gateway (simulated National Public Service Portal)",
        version="1.0.0",
        description=(
            "Apps submit administrative procedures as dossiers; the gateway runs each "
            "procedure's exchanges through the hub as the receiving province. Send your "
            "API key as `X-API-Key`. Errors are application/problem+json with a `code`."
        ),
        lifespan=lifespan,
        responses=problem_responses(),
    )
    install_error_handlers(app)

    @app.middleware("http")
    async def ratelimit_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        headers: dict[str, str] | None = getattr(request.state, "ratelimit_headers", None)
        if headers:
            for name, value in headers.items():
                response.headers.setdefault(name, value)
        return response

    app.add_middleware(EdgeGuard, limits=EdgeLimits())
    app.include_router(api.router)
    app.include_router(admin.router)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"}},
    )
    async def metrics(runtime: RuntimeDep) -> Response:
        """Prometheus metrics."""
        return Response(render(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(runtime: RuntimeDep) -> dict[str, Any]:
        """The database and the rate-limit store answer; 503 otherwise."""
        try:
            async with runtime.db.reader.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise NotReady(f"the database does not answer: {type(exc).__name__}") from None
        if not await runtime.limiter.ping():
            raise NotReady("the rate-limit store does not answer")
        return {"status": "ready", "limits": "redis" if settings.redis_url else "memory"}

    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from the environment."""
    return create_app(GatewaySettings())
