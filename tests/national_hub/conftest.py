"""Fixtures for the hub: a real hub and a real provider on loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.hub import Hub, HubFactory, hub_settings, query
from tests.support.provider import OPENAPI, create_provider
from tests.support.servers import ThreadServer, serve

__all__ = ["Hub", "Network", "build_network", "hub_settings", "query"]


@pytest.fixture
def provider() -> Iterator[ThreadServer]:
    with serve(create_provider()) as server:
        yield server


@pytest.fixture
def hub(hub_factory: HubFactory) -> Hub:
    started: Hub = hub_factory()
    return started


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
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as c:
        yield c


@pytest.fixture
async def network(hub: Hub, provider: ThreadServer, client: httpx.AsyncClient) -> Network:
    return await build_network(hub, provider, client)
