"""The admin API under ``/admin``: the registry, changed at runtime with the admin token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from national_hub import registry_service as ops
from national_hub.auth import RuntimeDep, require_admin
from national_hub.models import Credential, Grant, Node, Service
from national_hub.runtime import Runtime
from national_hub.schemas import (
    CredentialCreate,
    CredentialCreated,
    CredentialPublic,
    CredentialsPublic,
    GrantCreate,
    GrantPublic,
    GrantsPublic,
    NodeCreate,
    NodePublic,
    NodesPublic,
    NodeUpdate,
    RegistryApplied,
    RegistryDocument,
    ServiceCreate,
    ServicePublic,
    ServicesPublic,
    ServiceUpdate,
)

__all__ = ["router"]

#: A row id in a path: bounded, so no number too large for the database gets through.
RowId = Annotated[int, Path(ge=1, le=2**62)]

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


async def _session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """A write session; anything not committed by the endpoint is rolled back."""
    async with runtime.db.write_session() as session:
        yield session


async def _read_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.db.read_session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(_session)]
ReadSessionDep = Annotated[AsyncSession, Depends(_read_session)]


async def _commit(session: AsyncSession, runtime: Runtime) -> None:
    """Commit before answering, then make every worker reload the registry."""
    await ops.bump_version(session)
    await session.commit()
    await runtime.registry.changed()


def _node(n: Node) -> NodePublic:
    return NodePublic(
        code=n.code,
        name=n.name,
        kind=n.kind,
        base_url=n.base_url,
        connected=n.connected,
        enabled=n.enabled,
    )


def _service(s: Service) -> ServicePublic:
    return ServicePublic(
        provider=s.provider,
        code=s.code,
        version=s.version,
        description=s.description,
        base_path=s.base_path,
        has_openapi=s.openapi is not None,
        enabled=s.enabled,
    )


def _credential(c: Credential) -> CredentialPublic:
    return CredentialPublic(
        client_id=c.client_id, node=c.node, created_at=c.created_at, rotated_at=c.rotated_at
    )


def _remember(runtime: Runtime, created: CredentialCreated) -> None:
    if runtime.credentials is not None:
        runtime.credentials.set_node(
            created.node, client_id=created.client_id, client_secret=created.client_secret
        )


# -- nodes ------------------------------------------------------------------------------


@router.get("/nodes", response_model=NodesPublic)
async def list_nodes(session: ReadSessionDep) -> NodesPublic:
    nodes = (await session.scalars(select(Node).order_by(Node.code))).all()
    return NodesPublic(items=[_node(n) for n in nodes], count=len(nodes))


@router.post("/nodes", response_model=NodePublic, status_code=status.HTTP_201_CREATED)
async def create_node(data: NodeCreate, session: SessionDep, runtime: RuntimeDep) -> NodePublic:
    node = await ops.create_node(session, data=data)
    await _commit(session, runtime)
    return _node(node)


@router.get("/nodes/{code}", response_model=NodePublic)
async def get_node(code: str, session: ReadSessionDep) -> NodePublic:
    return _node(await ops.get_node(session, code=code))


@router.patch("/nodes/{code}", response_model=NodePublic)
async def update_node(
    code: str, data: NodeUpdate, session: SessionDep, runtime: RuntimeDep
) -> NodePublic:
    node = await ops.update_node(session, code=code, data=data)
    await _commit(session, runtime)
    return _node(node)


@router.delete("/nodes/{code}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_node(code: str, session: SessionDep, runtime: RuntimeDep) -> Response:
    await ops.delete_node(session, code=code)
    await _commit(session, runtime)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- services ---------------------------------------------------------------------------


@router.get("/services", response_model=ServicesPublic)
async def list_services(session: ReadSessionDep, provider: str | None = None) -> ServicesPublic:
    query = select(Service).order_by(Service.provider, Service.code)
    if provider is not None:
        query = query.where(Service.provider == provider)
    services = (await session.scalars(query)).all()
    return ServicesPublic(items=[_service(s) for s in services], count=len(services))


@router.post("/services", response_model=ServicePublic, status_code=status.HTTP_201_CREATED)
async def create_service(
    data: ServiceCreate, session: SessionDep, runtime: RuntimeDep
) -> ServicePublic:
    service = await ops.create_service(session, data=data)
    await _commit(session, runtime)
    return _service(service)


@router.get("/services/{provider}/{code}", response_model=ServicePublic)
async def get_service(provider: str, code: str, session: ReadSessionDep) -> ServicePublic:
    return _service(await ops.get_service(session, provider=provider, code=code))


@router.patch("/services/{provider}/{code}", response_model=ServicePublic)
async def update_service(
    provider: str, code: str, data: ServiceUpdate, session: SessionDep, runtime: RuntimeDep
) -> ServicePublic:
    service = await ops.update_service(session, provider=provider, code=code, data=data)
    await _commit(session, runtime)
    return _service(service)


@router.delete("/services/{provider}/{code}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_service(
    provider: str, code: str, session: SessionDep, runtime: RuntimeDep
) -> Response:
    await ops.delete_service(session, provider=provider, code=code)
    await _commit(session, runtime)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- grants -----------------------------------------------------------------------------


@router.get("/grants", response_model=GrantsPublic)
async def list_grants(session: ReadSessionDep, consumer: str | None = None) -> GrantsPublic:
    query = (
        select(Grant.id, Grant.consumer, Service.provider, Service.code)
        .join(Service, Service.id == Grant.service_id)
        .order_by(Grant.id)
    )
    if consumer is not None:
        query = query.where(Grant.consumer == consumer)
    rows = (await session.execute(query)).all()
    items = [GrantPublic(id=r[0], consumer=r[1], provider=r[2], service=r[3]) for r in rows]
    return GrantsPublic(items=items, count=len(items))


@router.post("/grants", response_model=GrantPublic, status_code=status.HTTP_201_CREATED)
async def create_grant(
    data: GrantCreate, session: SessionDep, runtime: RuntimeDep, response: Response
) -> GrantPublic:
    grant, new = await ops.create_grant(session, data=data)
    await _commit(session, runtime)
    if not new:
        response.status_code = status.HTTP_200_OK
    return GrantPublic(
        id=grant.id, consumer=data.consumer, provider=data.provider, service=data.service
    )


@router.delete("/grants/{grant_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_grant(grant_id: RowId, session: SessionDep, runtime: RuntimeDep) -> Response:
    await ops.delete_grant(session, grant_id=grant_id)
    await _commit(session, runtime)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- credentials ------------------------------------------------------------------------


@router.get("/nodes/{code}/credentials", response_model=CredentialsPublic)
async def list_credentials(code: str, session: ReadSessionDep) -> CredentialsPublic:
    await ops.get_node(session, code=code)
    creds = (await session.scalars(select(Credential).where(Credential.node == code))).all()
    return CredentialsPublic(items=[_credential(c) for c in creds], count=len(creds))


@router.post(
    "/nodes/{code}/credentials",
    response_model=CredentialCreated,
    status_code=status.HTTP_201_CREATED,
)
async def create_credential(
    code: str, session: SessionDep, runtime: RuntimeDep, data: CredentialCreate | None = None
) -> CredentialCreated:
    created = await ops.create_credential(session, node=code, data=data)
    await _commit(session, runtime)
    _remember(runtime, created)
    return created


@router.post("/credentials/{client_id}/rotate", response_model=CredentialCreated)
async def rotate_credential(
    client_id: str, session: SessionDep, runtime: RuntimeDep
) -> CredentialCreated:
    created = await ops.rotate_credential(session, client_id=client_id)
    await _commit(session, runtime)
    _remember(runtime, created)
    return created


@router.post("/credentials/{client_id}/disable", status_code=status.HTTP_204_NO_CONTENT)
async def disable_credential(client_id: str, session: SessionDep, runtime: RuntimeDep) -> Response:
    """Refuse the credential's outstanding tokens and any new login, until enabled again."""
    await ops.set_credential_enabled(session, client_id=client_id, enabled=False)
    await _commit(session, runtime)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/credentials/{client_id}/enable", status_code=status.HTTP_204_NO_CONTENT)
async def enable_credential(client_id: str, session: SessionDep, runtime: RuntimeDep) -> Response:
    await ops.set_credential_enabled(session, client_id=client_id, enabled=True)
    await _commit(session, runtime)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/credentials/{client_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_credential(client_id: str, session: SessionDep, runtime: RuntimeDep) -> Response:
    await ops.delete_credential(session, client_id=client_id)
    await _commit(session, runtime)
    if runtime.credentials is not None:
        runtime.credentials.remove_client(client_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- whole documents --------------------------------------------------------------------


@router.post("/registry", response_model=RegistryApplied)
async def apply_registry(
    document: RegistryDocument, session: SessionDep, runtime: RuntimeDep
) -> RegistryApplied:
    """Create or update the nodes, services, credentials and grants a document names."""
    nodes, services, grants, created = await ops.apply_document(session, document=document)
    await _commit(session, runtime)
    for credential in created:
        _remember(runtime, credential)
    return RegistryApplied(nodes=nodes, services=services, grants=grants, credentials=created)
