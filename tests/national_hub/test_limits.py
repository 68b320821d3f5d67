"""Limits at the edge: header size, body size, slow senders and deep JSON, as problem+json."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from common.edge import check_json_depth
from common.errors import JsonTooDeep
from tests.national_hub.conftest import Hub, build_network


def problem(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == code


async def stalled_post(url: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Send headers and half a body, then wait for the answer without sending the rest."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        "Content-Length: 100",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + b'{"code": ')
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
    answer = head + await asyncio.wait_for(reader.readexactly(length), timeout=10)
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer


def test_json_depth_scanner() -> None:
    check_json_depth(b'{"a": [[[1]]], "b": "[[[[[[[[[["}', 4)
    check_json_depth(b'"\\"[[[[[["', 1)
    with pytest.raises(JsonTooDeep):
        check_json_depth(b"[" * 5 + b"]" * 5, 4)


async def test_limits_on_the_api_and_the_data_plane(
    served_hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    """A real server: the limits hold for what arrives over a socket."""
    hub: Hub = served_hub_factory(
        max_request_bytes=2000, read_timeout_seconds=0.5, max_json_depth=12
    )
    net = await build_network(hub, provider, client)
    token = await net.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    big_header = {"X-Padding": "x" * 20_000}
    problem(await client.get(f"{hub.url}/healthz", headers=big_header), 431, "headers_too_large")
    problem(
        await client.get(f"{hub.url}/exchange/PROV/svc/echo", headers={**auth, **big_header}),
        431,
        "headers_too_large",
    )
    admin = {**hub.admin, "content-type": "application/json"}
    problem(
        await client.post(
            f"{hub.url}/admin/nodes", content=b"{" + b" " * 3000 + b"}", headers=admin
        ),
        413,
        "payload_too_large",
    )

    async def chunks() -> Any:
        for _ in range(30):
            yield b" " * 100

    problem(
        await client.post(f"{hub.url}/admin/nodes", content=chunks(), headers=admin),
        413,
        "payload_too_large",
    )
    deep = b'{"name": ' + b"[" * 50 + b"]" * 50 + b"}"
    problem(
        await client.post(f"{hub.url}/admin/nodes", content=deep, headers=admin),
        400,
        "json_too_deep",
    )

    # A sender that stops half-way: the hub answers 408 instead of waiting for ever.
    for path, headers in (("/admin/nodes", hub.admin), ("/exchange/PROV/svc/echo", auth)):
        status, body = await stalled_post(hub.url, path, headers)
        assert status == 408
        assert b'"code":"request_timeout"' in body
    # The hub is still well.
    assert (await client.get(f"{hub.url}/exchange/PROV/svc/echo", headers=auth)).status_code == 200


def test_slow_headers_get_408_and_the_connection_closed(tmp_path: Any) -> None:
    import socket

    from tests.support.servers import NgspProcess, free_port, wait_http

    port = free_port()
    hub = NgspProcess(
        "hub",
        "--port",
        str(port),
        "--log-level",
        "warning",
        env={
            "NGSP_HUB_DATA_DIR": str(tmp_path),
            "NGSP_HUB_READ_TIMEOUT_SECONDS": "1",
            "NGSP_HUB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}",
        },
        log=tmp_path / "hub.log",
    ).start()
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=hub.proc)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and no more
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408")
        assert b'"code":"request_timeout"' in answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            assert idle.recv(4096).startswith(b"HTTP/1.1 408")  # silent client, same end
    finally:
        hub.stop()
