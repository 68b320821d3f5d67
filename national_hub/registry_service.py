"""Changes to the registry: keyword-only functions over a session, raising domain errors.

The caller commits and then calls ``RegistryCache.changed()`` so that every worker sees
the change before the admin API answers.
"""

from __future__ import annotations

import datetime as dt

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import Conflict, InvalidRequest, NotFound
from national_hub.models import Credential, Grant, Node, RegistryVersion, Service
from national_hub.schemas import (
    CredentialCreate,
    CredentialCreated,
    GrantCreate,
    NodeCreate,
    NodeUpdate,
    RegistryDocument,
    ServiceCreate,
    ServiceFields,
    ServiceUpdate,
)
from national_hub.tokens import hash_secret, new_client_id, new_generation, new_secret

__all__ = [
    "apply_document",
    "bump_version",
    "create_credential",
    "create_grant",
    "create_node",
    "create_service",
    "delete_credential",
    "delete_grant",
    "delete_node",
    "delete_service",
    "get_node",
    "get_service",
    "rotate_credential",
    "set_credential_enabled",
    "update_node",
    "update_service",
]


async def bump_version(session: AsyncSession) -> None:
    """Mark the registry changed, in the transaction that changes it (see ``registry.py``)."""
    await session.execute(
        update(RegistryVersion)
        .where(RegistryVersion.id == 1)
        .values(version=RegistryVersion.version + 1)
    )


async def get_node(session: AsyncSession, *, code: str) -> Node:
    node = await session.get(Node, code)
    if node is None:
        raise NotFound(f"no node {code!r}")
    return node


async def create_node(session: AsyncSession, *, data: NodeCreate) -> Node:
    if await session.get(Node, data.code) is not None:
        raise Conflict(f"node {data.code!r} exists")
    node = Node(**data.model_dump())
    session.add(node)
    await session.flush()
    return node


async def update_node(session: AsyncSession, *, code: str, data: NodeUpdate) -> Node:
    node = await get_node(session, code=code)
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            raise InvalidRequest(f"{key}: may not be null")
        setattr(node, key, value)
    await session.flush()
    return node


async def delete_node(session: AsyncSession, *, code: str) -> None:
    node = await get_node(session, code=code)
    await session.delete(node)
    await session.flush()


async def get_service(session: AsyncSession, *, provider: str, code: str) -> Service:
    service = await session.scalar(
        select(Service).where(Service.provider == provider, Service.code == code)
    )
    if service is None:
        raise NotFound(f"no service {provider}/{code}")
    return service


def _openapi_text(document: dict[str, object] | None) -> str | None:
    return None if document is None else orjson.dumps(document).decode()


async def create_service(session: AsyncSession, *, data: ServiceCreate) -> Service:
    await get_node(session, code=data.provider)
    existing = await session.scalar(
        select(Service).where(Service.provider == data.provider, Service.code == data.code)
    )
    if existing is not None:
        raise Conflict(f"service {data.provider}/{data.code} exists")
    service = Service(
        provider=data.provider,
        code=data.code,
        version=data.version,
        description=data.description,
        base_path=data.base_path,
        openapi=_openapi_text(data.openapi),
        enabled=data.enabled,
    )
    session.add(service)
    await session.flush()
    return service


async def update_service(
    session: AsyncSession, *, provider: str, code: str, data: ServiceUpdate
) -> Service:
    service = await get_service(session, provider=provider, code=code)
    for key, value in data.model_dump(exclude_unset=True).items():
        if key == "openapi":
            service.openapi = _openapi_text(value)
        elif value is None:
            raise InvalidRequest(f"{key}: may not be null")
        else:
            setattr(service, key, value)
    await session.flush()
    return service


async def delete_service(session: AsyncSession, *, provider: str, code: str) -> None:
    service = await get_service(session, provider=provider, code=code)
    await session.delete(service)
    await session.flush()


async def create_grant(session: AsyncSession, *, data: GrantCreate) -> tuple[Grant, bool]:
    """Grant ``consumer`` the service; returns the grant and whether it is new."""
    await get_node(session, code=data.consumer)
    service = await get_service(session, provider=data.provider, code=data.service)
    existing = await session.scalar(
        select(Grant).where(Grant.consumer == data.consumer, Grant.service_id == service.id)
    )
    if existing is not None:
        return existing, False
    grant = Grant(consumer=data.consumer, service_id=service.id)
    session.add(grant)
    await session.flush()
    return grant, True


async def delete_grant(session: AsyncSession, *, grant_id: int) -> None:
    grant = await session.get(Grant, grant_id)
    if grant is None:
        raise NotFound(f"no grant {grant_id}")
    await session.delete(grant)
    await session.flush()


async def create_credential(
    session: AsyncSession, *, node: str, data: CredentialCreate | None = None
) -> CredentialCreated:
    await get_node(session, code=node)
    client_id = (data.client_id if data else None) or new_client_id(node)
    chosen = data.client_secret if data else None
    secret = chosen or new_secret()
    if await session.get(Credential, client_id) is not None:
        raise Conflict(f"client id {client_id!r} exists")
    session.add(
        Credential(
            client_id=client_id,
            node=node,
            # A secret an operator chose may be guessable: a slow, salted hash for it.
            secret_hash=hash_secret(secret, chosen=chosen is not None),
            generation=new_generation(),
            enabled=True,
        )
    )
    await session.flush()
    return CredentialCreated(client_id=client_id, client_secret=secret, node=node)


async def rotate_credential(session: AsyncSession, *, client_id: str) -> CredentialCreated:
    """Give a credential a new secret; the old secret gets no new token from now on."""
    credential = await session.get(Credential, client_id)
    if credential is None:
        raise NotFound(f"no client {client_id!r}")
    secret = new_secret()
    credential.secret_hash = hash_secret(secret)
    credential.generation = new_generation()  # its outstanding tokens end here
    credential.rotated_at = dt.datetime.now(dt.UTC)
    await session.flush()
    return CredentialCreated(client_id=client_id, client_secret=secret, node=credential.node)


async def set_credential_enabled(session: AsyncSession, *, client_id: str, enabled: bool) -> None:
    """Disable a credential (its tokens end, it gets no new one) or enable it again."""
    credential = await session.get(Credential, client_id)
    if credential is None:
        raise NotFound(f"no client {client_id!r}")
    if credential.enabled != enabled:
        credential.enabled = enabled
        credential.generation = new_generation()
    await session.flush()


async def delete_credential(session: AsyncSession, *, client_id: str) -> None:
    credential = await session.get(Credential, client_id)
    if credential is None:
        raise NotFound(f"no client {client_id!r}")
    await session.delete(credential)
    await session.flush()


async def apply_document(
    session: AsyncSession, *, document: RegistryDocument
) -> tuple[int, int, int, list[CredentialCreated]]:
    """Create or update everything a registry document names (idempotent).

    Nodes and services are upserted; grants are added; a node that lists credentials gets
    those it lacks, and a node with none at all gets one generated. Returns the counts and
    the credentials created now (with their secrets).
    """
    created: list[CredentialCreated] = []
    services = 0
    for spec in document.nodes:
        node = await session.get(Node, spec.code)
        fields = spec.model_dump(include={"name", "kind", "base_url", "connected", "enabled"})
        if node is None:
            node = Node(code=spec.code, **fields)
            session.add(node)
        else:
            for key, value in fields.items():
                setattr(node, key, value)
        await session.flush()
        for svc in spec.services:
            await _upsert_service(session, provider=spec.code, spec=svc, code=svc.code)
            services += 1
        for cred in spec.credentials:
            if cred.client_id and await session.get(Credential, cred.client_id) is not None:
                continue
            created.append(await create_credential(session, node=spec.code, data=cred))
        if not spec.credentials:
            has_any = await session.scalar(
                select(Credential.client_id).where(Credential.node == spec.code).limit(1)
            )
            if has_any is None:
                created.append(await create_credential(session, node=spec.code))
    for g in document.grants:
        await create_grant(session, data=GrantCreate(**g.model_dump()))
    return len(document.nodes), services, len(document.grants), created


async def _upsert_service(
    session: AsyncSession, *, provider: str, spec: ServiceFields, code: str
) -> None:
    service = await session.scalar(
        select(Service).where(Service.provider == provider, Service.code == code)
    )
    if service is None:
        service = Service(provider=provider, code=code)
        session.add(service)
    service.version = spec.version
    service.description = spec.description
    service.base_path = spec.base_path
    service.openapi = _openapi_text(spec.openapi)
    service.enabled = spec.enabled
    await session.flush()
