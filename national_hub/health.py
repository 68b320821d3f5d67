"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import text

from common.errors import NotReady
from national_hub.auth import RuntimeDep
from national_hub.metrics import CONTENT_TYPE_LATEST, render

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics (every worker's, when several run)."""
    return Response(render(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> dict[str, str]:
    """The database answers and the ledger writer runs; 503 otherwise."""
    if not runtime.ledger.running:
        raise NotReady("the ledger writer is not running")
    try:
        async with runtime.db.reader.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        raise NotReady(f"the database does not answer: {type(exc).__name__}") from None
    return {"status": "ready", "database": runtime.db.writer.dialect.name}
