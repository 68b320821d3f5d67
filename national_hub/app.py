"""The hub's app factory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from common.edge import EdgeGuard, EdgeLimits
from common.errors import install_error_handlers, problem_responses
from common.logs import quiet_libraries
from common.metrics import drop_created_series
from common.server import DOOR, HEADER_TIMEOUT, settle_heap
from national_hub import __version__, admin, health, metaservices, oauth, reports, savings
from national_hub.bootstrap import apply_registry_file
from national_hub.exchange import EXCHANGE_PREFIX, ExchangeHandler, door
from national_hub.runtime import open_runtime
from national_hub.settings import HubSettings

__all__ = ["create_app", "create_app_from_env"]

_EXCHANGE_DOC = {
    "parameters": [
        {"name": "X-Procedure", "in": "header", "required": False, "schema": {"type": "string"}},
        {"name": "X-Dossier", "in": "header", "required": False, "schema": {"type": "string"}},
        {"name": "X-Request-Id", "in": "header", "required": False, "schema": {"type": "string"}},
        {"name": "traceparent", "in": "header", "required": False, "schema": {"type": "string"}},
    ],
    "responses": {
        "200": {"description": "The provider's answer, with X-Transaction-Id"},
        "401": {"description": "missing_token or invalid_token"},
        "403": {"description": "not_granted"},
        "404": {"description": "unknown_provider or unknown_service"},
        "413": {"description": "payload_too_large"},
        "502": {"description": "provider_bad_response"},
        "503": {"description": "provider_unavailable or ledger_unavailable"},
        "504": {"description": "provider_timeout"},
    },
}


class HubApp(FastAPI):
    """The hub: a FastAPI app whose data plane is served before any middleware or routing.

    ``/exchange/...`` requests go straight to the exchange handler once the hub has
    started; every other request (and any request before startup) takes FastAPI's path.
    """

    exchange_handler: ExchangeHandler
    edge: EdgeGuard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"].startswith(EXCHANGE_PREFIX)
            and self.exchange_handler.runtime is not None
        ):
            await self.exchange_handler(scope, receive, send)
            return
        await self.edge(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_app(settings: HubSettings | None = None) -> FastAPI:
    """Build the hub: admin API, tokens, exchange, reports, metaservices, health."""
    settings = settings or HubSettings()
    quiet_libraries()
    drop_created_series()
    handler = ExchangeHandler()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with open_runtime(settings) as runtime:
            if runtime.settings.registry_file is not None:
                await apply_registry_file(runtime, runtime.settings.registry_file)
            app.state.runtime = runtime
            handler.bind(runtime)
            settle_heap()
            # The server's protocol (common.server) sheds floods at its door and gives
            # each request this long for its headers.
            yield {DOOR: door(runtime), HEADER_TIMEOUT: settings.read_timeout_seconds}
            handler.bind(None)

    app = HubApp(
        title="NGSP national hub (simulated)",
        version=__version__,
        description=(
            "Routes, authenticates and logs data-sharing exchanges between ministry and "
            "provincial nodes. Errors are application/problem+json with a stable `code`."
        ),
        lifespan=lifespan,
        responses=problem_responses(),
    )
    install_error_handlers(app)
    app.include_router(oauth.router)
    app.include_router(admin.router)
    app.include_router(metaservices.router)
    app.include_router(savings.router)
    app.include_router(reports.router)
    app.include_router(health.router)

    async def exchange(provider: str, service: str, path: str) -> None:
        """Documentation only: the data plane answers these requests before routing."""
        raise RuntimeError("served by the exchange handler")  # pragma: no cover

    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        app.add_api_route(
            "/exchange/{provider}/{service}/{path:path}",
            exchange,
            methods=[method],
            tags=["exchange"],
            openapi_extra=_EXCHANGE_DOC,
            summary="Call a provider's service through the hub",
            response_model=None,
            operation_id=f"exchange_{method.lower()}",
        )

    app.exchange_handler = handler
    app.edge = EdgeGuard(
        app._serve,
        EdgeLimits(
            max_header_bytes=settings.max_header_bytes,
            max_body_bytes=settings.max_request_bytes,
            read_timeout=settings.read_timeout_seconds,
            max_json_depth=settings.max_json_depth,
        ),
    )
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and worker processes: settings from the environment."""
    return create_app(HubSettings())
