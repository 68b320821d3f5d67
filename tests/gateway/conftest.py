"""Fixtures for the gateway: a real hub, the real simulated network and real gateways."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from gateway.app import create_app as create_gateway_app
from gateway.settings import GatewaySettings
from tests.conftest import IN_CI
from tests.support.hub import Hub
from tests.support.nodes import network_of
from tests.support.servers import ThreadServer, free_port

REDIS_URL = os.environ.get("NGSP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ADMIN = "gateway-admin-token-0123456789abcdef"


@dataclass
class Platform:
    """A hub, the simulated network, a gateway, and a key for the gateway."""

    hub: Hub
    nodes: ThreadServer
    gateway: ThreadServer
    key: str
    settings: GatewaySettings

    @property
    def network(self) -> Any:
        return network_of(self.nodes)

    async def new_key(self, client: httpx.AsyncClient, **limits: int) -> str:
        resp = await client.post(
            f"{self.gateway.url}/admin/keys",
            json={"name": "test", **limits},
            headers={"Authorization": f"Bearer {ADMIN}"},
        )
        assert resp.status_code == 201, resp.text
        key: str = resp.json()["key"]
        return key

    async def fault(self, client: httpx.AsyncClient, node: str, spec: dict[str, Any]) -> None:
        token = self.network.admin_token
        resp = await client.put(
            f"{self.nodes.url}/admin/faults/{node}",
            json=spec,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 200, resp.text


def gateway_settings(data_dir: Path, hub: Hub, credentials: Path, **extra: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "hub_url": hub.url,
        "credentials_file": credentials,
        "admin_token": ADMIN,
        "port": free_port(),
    }
    values.update(extra)
    return GatewaySettings(**values)


@pytest.fixture
def platform_factory(tmp_path: Path, network_factory: Any) -> Iterator[Any]:
    gateways: list[ThreadServer] = []

    def start(**gateway_extra: Any) -> Platform:
        # The hub counts savings by the same catalogue the gateway runs.
        same = {k: v for k, v in gateway_extra.items() if k == "procedures_file"}
        hub, nodes = network_factory(provider_timeout_seconds=2.0, **same)
        credentials = network_of(nodes).settings.credentials_path
        settings = gateway_settings(tmp_path / "gw", hub, credentials, **gateway_extra)
        gateway = ThreadServer(create_gateway_app(settings), port=settings.port).start()
        gateways.append(gateway)
        key = httpx.post(
            f"{gateway.url}/admin/keys",
            json={"name": "fixture"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        ).json()["key"]
        return Platform(hub=hub, nodes=nodes, gateway=gateway, key=key, settings=settings)

    yield start
    for gateway in gateways:
        gateway.stop()


@pytest.fixture
def platform(platform_factory: Any) -> Platform:
    started: Platform = platform_factory()
    return started


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30.0) as c:
        yield c


@pytest.fixture
def redis_url() -> str:
    """The real Redis; required in CI, skipped elsewhere if it is not running."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis is required in CI and is not reachable: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    return f"ngsp-test-{uuid.uuid4().hex[:8]}"
