"""Fixtures for the hub: a real hub and a real provider on loopback ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from national_hub.app import create_app
from national_hub.settings import HubSettings
from tests.support.provider import OPENAPI, create_provider
from tests.support.servers import ThreadServer, serve


@dataclass
class Hub:
    """A running hub and what a test needs to call it."""

    server: ThreadServer
    settings: HubSettings
    admin_token: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def runtime(self) -> Any:
        return self.server.server.config.app.state.runtime

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


def hub_settings(data_dir: Path, database_url: str, **overrides: Any) -> HubSettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "provider_timeout_seconds": 1.0,
        "admin_token": "test-admin-token-0123456789abcdef0123",
        "signing_key": "test-signing-key-0123456789abcdef0123",
    }
    values.update(overrides)
    return HubSettings(**values)


async def query(target: Hub | str, sql: str, **params: Any) -> list[Any]:
    """Run SQL against a hub's database (or a database URL) from the test's event loop."""
    url = target if isinstance(target, str) else target.settings.sqlalchemy_url
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


@pytest.fixture
def provider() -> Iterator[ThreadServer]:
    with serve(create_provider()) as server:
        yield server


@pytest.fixture
def hub_factory(tmp_path: Path, database_url: str) -> Iterator[Any]:
    started: list[ThreadServer] = []

    def start(**overrides: Any) -> Hub:
        settings = hub_settings(tmp_path / "data", database_url, **overrides)
        server = ThreadServer(create_app(settings), port=overrides.get("port"))
        settings = settings.model_copy(update={"port": server.port})
        server.start()
        started.append(server)
        return Hub(server=server, settings=settings, admin_token=settings.admin_token_value())

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def hub(hub_factory: Any) -> Hub:
    hub: Hub = hub_factory()
    return hub


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
