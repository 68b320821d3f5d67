"""Only the hub reaches a provider: attacks on a real nodes process behind a real hub.

Every node serves mutual TLS with a certificate naming its code; a client must present the
hub's certificate, issued by the network's CA. Each attack below goes straight at a node's
port, as someone on the network would, bypassing the hub's tokens, grants and ledger.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from common.hubclient import HubClient
from common.pki import CertificateAuthority, Pki, node_name
from tests.provincial_nodes.conftest import adult_woman, network_of
from tests.support.hub import query
from tests.support.pki import network_pki

pytestmark = pytest.mark.usefixtures("tmp_path")


def _client_context(pki: Pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=pki.ca_cert)
    if cert is not None and key is not None:
        context.load_cert_chain(cert, key)
    return context


async def _get_over_tls(url: str, path: str, context: ssl.SSLContext, server_name: str) -> bytes:
    """GET ``path`` on the node at ``url`` over TLS; what came back (b"" if cut off)."""
    parts = urlsplit(url)
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(
            parts.hostname, parts.port, ssl=context, server_hostname=server_name
        )
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()


async def _cut_off(url: str, path: str, context: ssl.SSLContext, server_name: str) -> bool:
    """True when the node gives no HTTP answer: the handshake failed, or the connection was
    closed before any byte (TLS 1.3 reports a refused client certificate on the first read)."""
    try:
        answer = await _get_over_tls(url, path, context, server_name)
    except (ssl.SSLError, ConnectionError):
        return True
    return answer == b""


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def network(sqlite_hub_factory: Any, nodes_factory: Any) -> tuple[Any, Any]:
    hub = sqlite_hub_factory()
    return hub, nodes_factory(hub)


async def test_nodes_listen_only_over_tls(network: tuple[Any, Any]) -> None:
    _, nodes = network
    url = network_of(nodes).listeners["DANCU"].url
    assert url.startswith("https://")
    parts = urlsplit(url)
    # Plain HTTP to the port gets no HTTP answer: the node expects a TLS handshake.
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        answer = await reader.read()
        writer.close()
    assert not answer.startswith(b"HTTP/1.1 200")


async def test_a_client_without_a_certificate_is_refused_at_the_handshake(
    network: tuple[Any, Any],
) -> None:
    _, nodes = network
    net = network_of(nodes)
    person = adult_woman(net.world)
    url = net.listeners["DANCU"].url
    assert await _cut_off(
        url,
        f"/population/citizens/{person.id_number}",
        _client_context(network_pki()),
        node_name("DANCU"),
    )


async def test_a_certificate_of_another_ca_is_refused(
    network: tuple[Any, Any], tmp_path: Path
) -> None:
    _, nodes = network
    net = network_of(nodes)
    rogue = CertificateAuthority.create("a rogue CA")
    cert, key = rogue.issue("hub.ngsp", server=False)  # the right name, the wrong issuer
    context = _client_context(
        network_pki(), _write(tmp_path / "c.pem", cert), _write(tmp_path / "c.key", key)
    )
    assert await _cut_off(net.listeners["DANCU"].url, "/healthz", context, node_name("DANCU"))


async def test_a_network_certificate_that_is_not_the_hubs_is_cut_off(
    network: tuple[Any, Any], tmp_path: Path
) -> None:
    _, nodes = network
    net = network_of(nodes)
    pki = network_pki()
    cert, key = pki.authority().issue("intruder.ngsp", server=False)
    context = _client_context(
        pki, _write(tmp_path / "c.pem", cert), _write(tmp_path / "c.key", key)
    )
    assert await _cut_off(net.listeners["DANCU"].url, "/healthz", context, node_name("DANCU"))


async def test_the_hubs_certificate_is_served(network: tuple[Any, Any]) -> None:
    """The control case: the same request with the hub's certificate is answered."""
    _, nodes = network
    net = network_of(nodes)
    pki = network_pki()
    answer = await _get_over_tls(
        net.listeners["DANCU"].url,
        "/healthz",
        _client_context(pki, pki.hub_cert, pki.hub_key),
        node_name("DANCU"),
    )
    assert answer.startswith(b"HTTP/1.1 200")


async def test_a_node_presenting_another_nodes_name_is_refused_by_the_hub(
    network: tuple[Any, Any],
) -> None:
    """The hub checks the provider's certificate names the node it means to call."""
    _, nodes = network
    net = network_of(nodes)
    pki = network_pki()
    context = _client_context(pki, pki.hub_cert, pki.hub_key)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _get_over_tls(net.listeners["DANCU"].url, "/healthz", context, node_name("HOTICH"))


async def test_exchanges_through_the_hub_still_work_and_are_recorded(
    network: tuple[Any, Any],
) -> None:
    hub, nodes = network
    net = network_of(nodes)
    person = adult_woman(net.world)
    async with HubClient.from_credentials(net.settings.credentials_path, "P01") as client:
        resp = await client.call("DANCU", "population", "GET", f"/citizens/{person.id_number}")
    assert resp.status_code == 200
    rows = await query(
        hub, "SELECT outcome FROM ledger WHERE id = :id", id=resp.headers["x-transaction-id"]
    )
    assert rows == [("ok",)]


async def test_the_control_api_lists_nodes_only_with_its_token(network: tuple[Any, Any]) -> None:
    _, nodes = network
    net = network_of(nodes)
    async with httpx.AsyncClient(base_url=nodes.url, timeout=10) as client:
        for path in ("/nodes", "/nodes/DANCU"):
            refused = await client.get(path)
            assert refused.status_code == 401
            assert "127.0.0.1" not in refused.text  # no node address leaks
        token = {"Authorization": f"Bearer {net.admin_token}"}
        listed = await client.get("/nodes", headers=token)
        assert listed.status_code == 200
        assert listed.json()["count"] == 97
