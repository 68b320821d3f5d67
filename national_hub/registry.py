"""The registry: nodes, services, grants and credentials, and the hub's cached view of it.

The data plane never queries the registry tables. It reads an immutable ``Snapshot``
held in memory, rebuilt whenever the registry changes. A change made through one worker
process must reach the others at once, so every change writes a fresh random value to a
small memory-mapped file in the data directory (``registry.gen``); each worker compares
that value with the one it last loaded on every request (a memory read) and reloads when
they differ. Replicas on other machines, which share only the database, also reload
every ``poll_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from national_hub.models import Credential, Grant, Node, RegistryVersion, Service
from national_hub.paths import PathTemplates

__all__ = [
    "CredentialInfo",
    "NodeInfo",
    "RegistryCache",
    "ServiceInfo",
    "SharedGeneration",
    "Snapshot",
    "load_snapshot",
]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    code: str
    name: str
    kind: str
    base_url: str
    connected: bool
    enabled: bool

    @property
    def active(self) -> bool:
        """Whether the node may call or be called through the hub."""
        return self.connected and self.enabled


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    id: int
    provider: str
    code: str
    version: str
    description: str
    #: The provider's base URL joined with the service's base path, without a final slash.
    upstream: str
    enabled: bool
    has_openapi: bool
    templates: PathTemplates = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    client_id: str
    node: str
    secret_hash: str
    #: Tokens carry it; a token of another generation is refused.
    generation: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An immutable view of the whole registry."""

    nodes: dict[str, NodeInfo]
    services: dict[tuple[str, str], ServiceInfo]
    grants: frozenset[tuple[str, int]]
    credentials: dict[str, CredentialInfo]

    def services_of(self, provider: str) -> list[ServiceInfo]:
        return sorted(
            (s for s in self.services.values() if s.provider == provider), key=lambda s: s.code
        )

    def granted_services(self, consumer: str) -> list[ServiceInfo]:
        """Services ``consumer`` may call now (granted, enabled, provider active)."""
        result = []
        for service in self.services.values():
            provider = self.nodes.get(service.provider)
            if (
                (consumer, service.id) in self.grants
                and service.enabled
                and provider is not None
                and provider.active
            ):
                result.append(service)
        return sorted(result, key=lambda s: (s.provider, s.code))


log = logging.getLogger("ngsp.hub.registry")

EMPTY = Snapshot(nodes={}, services={}, grants=frozenset(), credentials={})


def _upstream(base_url: str, base_path: str) -> str:
    base = base_url.rstrip("/")
    if base_path:
        base += "/" + base_path.strip("/")
    return base


async def load_snapshot(session: AsyncSession) -> Snapshot:
    """Read the whole registry into a snapshot."""
    nodes = {
        n.code: NodeInfo(
            code=n.code,
            name=n.name,
            kind=n.kind,
            base_url=n.base_url,
            connected=n.connected,
            enabled=n.enabled,
        )
        for n in (await session.scalars(select(Node))).all()
    }
    services: dict[tuple[str, str], ServiceInfo] = {}
    for s in (await session.scalars(select(Service))).all():
        node = nodes.get(s.provider)
        document: dict[str, Any] | None = None
        if s.openapi:
            with contextlib.suppress(orjson.JSONDecodeError):
                loaded = orjson.loads(s.openapi)
                document = loaded if isinstance(loaded, dict) else None
        services[(s.provider, s.code)] = ServiceInfo(
            id=s.id,
            provider=s.provider,
            code=s.code,
            version=s.version,
            description=s.description,
            upstream=_upstream(node.base_url if node else "", s.base_path),
            enabled=s.enabled,
            has_openapi=document is not None,
            templates=PathTemplates.from_openapi(document),
        )
    grants = frozenset(
        (g.consumer, g.service_id) for g in (await session.scalars(select(Grant))).all()
    )
    credentials = {
        c.client_id: CredentialInfo(
            client_id=c.client_id,
            node=c.node,
            secret_hash=c.secret_hash,
            generation=c.generation,
            enabled=c.enabled,
        )
        for c in (await session.scalars(select(Credential))).all()
    }
    return Snapshot(nodes=nodes, services=services, grants=grants, credentials=credentials)


async def _version(session: AsyncSession) -> int:
    value = await session.scalar(select(RegistryVersion.version).where(RegistryVersion.id == 1))
    return int(value or 0)


class SharedGeneration:
    """An 8-byte value in a memory-mapped file that every worker on this host can see."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.write(fd, b"\0" * 8)
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def read(self) -> int:
        value: int = struct.unpack_from("<Q", self._map, 0)[0]
        return value

    def bump(self) -> None:
        """Announce a change. A random value, so that concurrent bumps never cancel out."""
        struct.pack_into("<Q", self._map, 0, int.from_bytes(os.urandom(8), "little"))

    def close(self) -> None:
        self._map.close()


class RegistryCache:
    """Holds the current snapshot and reloads it when the registry changes."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        generation: SharedGeneration,
        *,
        poll_seconds: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._generation = generation
        self._seen = -1
        self._lock = asyncio.Lock()
        self._poll_seconds = poll_seconds
        self._poller: asyncio.Task[None] | None = None
        self._db_version = -1
        self.snapshot: Snapshot = EMPTY

    async def start(self) -> None:
        await self.reload()
        self._poller = asyncio.create_task(self._poll(), name="registry-poll")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self._generation.close()

    async def current(self) -> Snapshot:
        """The snapshot, reloaded first if any worker changed the registry."""
        if self._generation.read() != self._seen:
            await self.reload()
        return self.snapshot

    async def reload(self) -> None:
        async with self._lock:
            seen = self._generation.read()
            async with self._sessions() as session:
                version = await _version(session)
                self.snapshot = await load_snapshot(session)
            self._seen = seen
            self._db_version = version

    async def changed(self) -> None:
        """Call after committing a registry change."""
        self._generation.bump()
        await self.reload()

    async def _poll(self) -> None:
        """For replicas on other hosts: reload when the database's version moves.

        Reading one row is cheap; rebuilding the snapshot is not (tens of milliseconds on
        the event loop with a national roster), so it happens only after a change.
        """
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                async with self._sessions() as session:
                    version = await _version(session)
                if version != self._db_version:
                    await self.reload()
            except Exception as exc:  # the database may be down for a moment; keep polling
                log.warning("registry poll failed: %s", exc)
