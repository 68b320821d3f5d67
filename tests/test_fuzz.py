"""Property-based API fuzzing over the OpenAPI of the hub, the gateway and the nodes.

Schemathesis generates requests from each service's OpenAPI description (valid ones and
deliberately broken ones) and checks every answer: no 5xx, a documented status code, a
documented content type, and a body that matches the documented schema. CI runs a
bounded pass (``NGSP_FUZZ_EXAMPLES``, default 8 per operation); a long pass is one
command: ``NGSP_FUZZ_EXAMPLES=1000 pytest tests/test_fuzz.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
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


def _node_schema(stack: Stack, node: str, service: str) -> Any:
    """A node's service, fuzzed in-process through the node's own front (faults, edge
    limits): its port takes only the hub's client certificate, as in production."""
    app = network_of(stack.nodes).listeners[node].app
    schema = schemathesis.openapi.from_asgi(f"/{service}/openapi.json", app)
    assert schema.get_base_url().rstrip("/").endswith(f"/{service}"), schema.get_base_url()
    return schema


@pytest.fixture(scope="module")
def population_schema(stack: Stack) -> Any:
    return _node_schema(stack, "DANCU", "population")


@pytest.fixture(scope="module")
def civil_status_schema(stack: Stack) -> Any:
    return _node_schema(stack, "HOTICH", "civil-status")


@pytest.fixture(scope="module")
def one_stop_schema(stack: Stack) -> Any:
    return _node_schema(stack, "P01", "one-stop")


def fuzz(schema: Any, headers_for: Callable[[str], dict[str, str]] | None = None) -> None:
    """Run every operation of ``schema`` through Hypothesis, valid and broken inputs alike.

    Uses schemathesis's documented strategy entry point (``APIOperation.as_strategy``)
    rather than its pytest plugin's lazy fixtures, which break with every change to
    pytest's node internals. Every failing operation is reported, not only the first.
    """
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategy = st.one_of(*(operation.as_strategy(mode) for mode in GenerationMode))

        @FUZZ
        @given(case=strategy)
        def check(case: Any) -> None:
            headers = headers_for(case.path) if headers_for else None
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # every check failure is an AssertionError subclass or kin
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}")
    assert operations > 0, "the schema has no operations: nothing was fuzzed"
    assert not failures, "\n\n".join(failures)


ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123"


@pytest.mark.slow
def test_hub(hub_schema: Any, stack: Stack) -> None:
    token = stack.node_token()
    fuzz(
        hub_schema,
        lambda path: {
            "Authorization": f"Bearer {ADMIN_TOKEN if path.startswith('/admin') else token}"
        },
    )


@pytest.mark.slow
def test_gateway(gateway_schema: Any, stack: Stack) -> None:
    fuzz(
        gateway_schema,
        lambda path: (
            {"Authorization": f"Bearer {ADMIN}"}
            if path.startswith("/admin")
            else {"X-API-Key": stack.key}
        ),
    )


@pytest.mark.slow
def test_nodes_control(nodes_schema: Any, stack: Stack) -> None:
    token = network_of(stack.nodes).admin_token
    fuzz(nodes_schema, lambda _path: {"Authorization": f"Bearer {token}"})


@pytest.mark.slow
def test_population_service(population_schema: Any) -> None:
    fuzz(population_schema)


@pytest.mark.slow
def test_civil_status_service(civil_status_schema: Any) -> None:
    fuzz(civil_status_schema)


@pytest.mark.slow
def test_one_stop_service(one_stop_schema: Any) -> None:
    fuzz(one_stop_schema)
