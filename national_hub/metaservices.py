"""Metaservices, as X-Road's listClients, listMethods, allowedMethods and getOpenAPI."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import select

from common.errors import NotFound
from national_hub.auth import CallerDep, NodeDep, RuntimeDep
from national_hub.models import Service
from national_hub.registry import ServiceInfo
from national_hub.schemas import NodePublic, NodesPublic, ServicePublic, ServicesPublic

__all__ = ["router"]

router = APIRouter(tags=["metaservices"])


def _service(s: ServiceInfo) -> ServicePublic:
    return ServicePublic(
        provider=s.provider,
        code=s.code,
        version=s.version,
        description=s.description,
        base_path="",
        has_openapi=s.has_openapi,
        enabled=s.enabled,
    )


@router.get("/nodes", response_model=NodesPublic)
async def list_nodes(caller: CallerDep, runtime: RuntimeDep) -> NodesPublic:
    """Every node on the platform (listClients); base URLs only for the admin."""
    snapshot = await runtime.registry.current()
    items = [
        NodePublic(
            code=n.code,
            name=n.name,
            kind=n.kind,
            base_url=n.base_url if caller.is_admin else None,
            connected=n.connected,
            enabled=n.enabled,
        )
        for n in sorted(snapshot.nodes.values(), key=lambda n: n.code)
    ]
    return NodesPublic(items=items, count=len(items))


@router.get("/nodes/{code}/services", response_model=ServicesPublic)
async def list_services(code: str, caller: CallerDep, runtime: RuntimeDep) -> ServicesPublic:
    """The services a provider offers (listMethods)."""
    snapshot = await runtime.registry.current()
    if code not in snapshot.nodes:
        raise NotFound(f"no node {code!r}")
    items = [_service(s) for s in snapshot.services_of(code)]
    return ServicesPublic(items=items, count=len(items))


@router.get(
    "/nodes/{code}/services/{service}/openapi",
    responses={200: {"content": {"application/json": {}}, "description": "OpenAPI document"}},
)
async def service_openapi(
    code: str, service: str, caller: CallerDep, runtime: RuntimeDep
) -> JSONResponse:
    """The OpenAPI document a provider published for a service (getOpenAPI)."""
    async with runtime.db.read_session() as session:
        row = await session.scalar(
            select(Service.openapi).where(Service.provider == code, Service.code == service)
        )
    if row is None:
        raise NotFound(f"no OpenAPI document for {code}/{service}")
    document: Any = orjson.loads(row)
    return JSONResponse(document)


@router.get("/me/services", response_model=ServicesPublic)
async def my_services(node: NodeDep, runtime: RuntimeDep) -> ServicesPublic:
    """The services the calling node may call now (allowedMethods)."""
    snapshot = await runtime.registry.current()
    items = [_service(s) for s in snapshot.granted_services(node.code)]
    return ServicesPublic(items=items, count=len(items))
