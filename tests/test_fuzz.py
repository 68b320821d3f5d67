"""Property-based API fuzzing over the OpenAPI of the hub, the gateway and the nodes.

Schemathesis generates requests from each service's OpenAPI description (valid ones and
deliberately broken ones) and checks every answer: no 5xx, a documented status code, a
documented content type, and a body that matches the documented schema. CI runs a
bounded pass (``NGSP_FUZZ_EXAMPLES``, default 8 per operation); a long pass is one
command: ``NGSP_FUZZ_EXAMPLES=1000 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app as create_gateway_app
from tests.gateway.conftest import ADMIN, gateway_settings
from tests.support.hub import Hub, hub_starter
from tests.support.nodes import network_of, nodes_starter
from tests.support.servers import ThreadServer

EXAMPLES = int(os.environ.get("NGSP_FUZZ_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


class Stack:
    def __init__(self, hub: Hub, nodes: ThreadServer, gateway: ThreadServer, key: str) -> None:
        self.hub = hub
        self.nodes = nodes
        self.gateway = gateway
        self.key = key

    def node_token(self) -> str:
        network = network_of(self.nodes)
        cred = __import__("json").loads(network.settings.credentials_path.read_text())["nodes"]
        p01 = cred["P01"]
        resp = httpx.post(
            f"{self.hub.url}/token",
            data={"grant_type": "client_credentials"},
            auth=(p01["client_id"], p01["client_secret"]),
        )
        token: str = resp.json()["access_token"]
        return token


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("fuzz")
    start_hub, stop_hub = hub_starter(tmp / "data", f"sqlite+aiosqlite:///{tmp / 'hub.db'}")
    start_nodes, stop_nodes = nodes_starter(tmp / "data")
    hub = start_hub()
    nodes = start_nodes(hub)
    settings_ = gateway_settings(tmp / "gw", hub, network_of(nodes).settings.credentials_path)
    gateway = ThreadServer(create_gateway_app(settings_), port=settings_.port).start()
    key = httpx.post(
        f"{gateway.url}/admin/keys",
        json={"name": "fuzz", "rate_limit_per_minute": 1_000_000},
        headers={"Authorization": f"Bearer {ADMIN}"},
    ).json()["key"]
    yield Stack(hub, nodes, gateway, key)
    gateway.stop()
    stop_nodes()
    stop_hub()


def _schema(url: str, base: str) -> Any:
    schema = schemathesis.openapi.from_url(url)
    assert schema.get_base_url().rstrip("/") == base.rstrip("/"), schema.get_base_url()
    return schema


@pytest.fixture(scope="module")
def hub_schema(stack: Stack) -> Any:
    return _schema(f"{stack.hub.url}/openapi.json", stack.hub.url)


@pytest.fixture(scope="module")
def gateway_schema(stack: Stack) -> Any:
    return _schema(f"{stack.gateway.url}/openapi.json", stack.gateway.url)


@pytest.fixture(scope="module")
def nodes_schema(stack: Stack) -> Any:
    return _schema(f"{stack.nodes.url}/openapi.json", stack.nodes.url)


@pytest.fixture(scope="module")
def population_schema(stack: Stack) -> Any:
    base = network_of(stack.nodes).listeners["DANCU"].url + "/population"
    return _schema(f"{base}/openapi.json", base)


@pytest.fixture(scope="module")
def civil_status_schema(stack: Stack) -> Any:
    base = network_of(stack.nodes).listeners["HOTICH"].url + "/civil-status"
    return _schema(f"{base}/openapi.json", base)


@pytest.fixture(scope="module")
def one_stop_schema(stack: Stack) -> Any:
    base = network_of(stack.nodes).listeners["P01"].url + "/one-stop"
    return _schema(f"{base}/openapi.json", base)


hub_api = schemathesis.pytest.from_fixture("hub_schema")
gateway_api = schemathesis.pytest.from_fixture("gateway_schema")
nodes_api = schemathesis.pytest.from_fixture("nodes_schema")
population_api = schemathesis.pytest.from_fixture("population_schema")
civil_status_api = schemathesis.pytest.from_fixture("civil_status_schema")
one_stop_api = schemathesis.pytest.from_fixture("one_stop_schema")


@pytest.mark.slow
@hub_api.parametrize()
@FUZZ
def test_hub(case: Any, stack: Stack) -> None:
    token = ADMIN_TOKEN if case.path.startswith("/admin") else stack.node_token()
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123"


@pytest.mark.slow
@gateway_api.parametrize()
@FUZZ
def test_gateway(case: Any, stack: Stack) -> None:
    headers = (
        {"Authorization": f"Bearer {ADMIN}"}
        if case.path.startswith("/admin")
        else {"X-API-Key": stack.key}
    )
    case.call_and_validate(headers=headers, checks=CHECKS)


@pytest.mark.slow
@nodes_api.parametrize()
@FUZZ
def test_nodes_control(case: Any, stack: Stack) -> None:
    token = network_of(stack.nodes).admin_token
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


@pytest.mark.slow
@population_api.parametrize()
@FUZZ
def test_population_service(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@pytest.mark.slow
@civil_status_api.parametrize()
@FUZZ
def test_civil_status_service(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@pytest.mark.slow
@one_stop_api.parametrize()
@FUZZ
def test_one_stop_service(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)
