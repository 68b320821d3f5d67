"""Fixtures for the hub: hubs in the test's event loop, and a real provider beside them.

The hub forwards exchanges over its own HTTP/1.1 client, so the provider is a real server
on a loopback port: one for the whole session (it keeps no state but what it has seen,
which each test starts with empty). Tests of the server itself start real hubs with
``served_hub_factory``; ``client`` reaches both kinds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.asgi import InProcessApps
from tests.support.hub import Hub, InProcessHubs, hub_settings, query
from tests.support.provider import OPENAPI, create_provider
from tests.support.servers import ThreadServer

__all__ = ["Hub", "Network", "build_network", "hub_settings", "query"]


@pytest.fixture(scope="session")
def provider_server() -> Iterator[ThreadServer]:
    # A slow answer still being served at the end is not waited for.
    server = ThreadServer(create_provider(), graceful_seconds=0.5).start()
    yield server
    server.stop()


@pytest.fixture
def provider(provider_server: ThreadServer) -> ThreadServer:
    """The provider, with nothing seen yet."""
    provider_server.server.config.app.state.seen.clear()
    return provider_server


@pytest.fixture
async def apps() -> AsyncIterator[InProcessApps]:
    transport = InProcessApps()
    yield transport
    await transport.aclose()


@pytest.fixture
async def hub_factory(
    tmp_path: Path, database_url: str, apps: InProcessApps
) -> AsyncIterator[InProcessHubs]:
    """Start hubs in the test's event loop on the parametrized database (SQLite, then
    PostgreSQL)."""
    hubs = InProcessHubs(tmp_path / "data", database_url, apps)
    yield hubs
    await hubs.close()


@pytest.fixture
async def hub(hub_factory: InProcessHubs) -> Hub:
    return await hub_factory()


@dataclass
class Network:
    """A hub with a provider node ``PROV`` and consumers ``CONS`` (granted) and ``OTHER``."""

    hub: Hub
    provider: ThreadServer
    credentials: dict[str, dict[str, str]]

    async def token(self, client: httpx.AsyncClient, node: str) -> str:
        cred = self.credentials[node]
        resp = await client.post(
            f"{self.hub.url}/token",
            data={"grant_type": "client_credentials"},
            auth=(cred["client_id"], cred["client_secret"]),
        )
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token


async def build_network(hub: Hub, provider: ThreadServer, client: httpx.AsyncClient) -> Network:
    document = {
        "nodes": [
            {
                "code": "PROV",
                "name": "Cơ sở dữ liệu thử nghiệm",
                "kind": "national_database",
                "base_url": provider.url,
                "services": [
                    {"code": "svc", "base_path": "/svc", "openapi": OPENAPI},
                    {"code": "closed", "base_path": "/svc"},
                ],
            },
            {"code": "CONS", "name": "Tỉnh Thử", "kind": "province", "base_url": provider.url},
            {"code": "OTHER", "name": "Bộ Thử", "kind": "ministry", "base_url": provider.url},
        ],
        "grants": [{"consumer": "CONS", "provider": "PROV", "service": "svc"}],
    }
    resp = await client.post(f"{hub.url}/admin/registry", json=document, headers=hub.admin)
    assert resp.status_code == 200, resp.text
    creds = {
        c["node"]: {"client_id": c["client_id"], "client_secret": c["client_secret"]}
        for c in resp.json()["credentials"]
    }
    return Network(hub=hub, provider=provider, credentials=creds)


@pytest.fixture
async def client(apps: InProcessApps) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the hubs in process and any real server."""
    async with httpx.AsyncClient(timeout=10.0, transport=apps) as c:
        yield c


@pytest.fixture
async def network(hub: Hub, provider: ThreadServer, client: httpx.AsyncClient) -> Network:
    return await build_network(hub, provider, client)
