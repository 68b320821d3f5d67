"""The data plane: a hub (in process) and a real provider, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import httpx
import pytest

from tests.national_hub.conftest import Hub, Network, build_network, query
from tests.support.servers import free_port


async def ledger_row(net: Network, client: httpx.AsyncClient, txid: str) -> dict[str, Any]:
    resp = await client.get(f"{net.hub.url}/transactions", headers=net.hub.admin)
    assert resp.status_code == 200
    rows = {r["id"]: r for r in resp.json()["items"]}
    assert txid in rows, f"{txid} not in ledger"
    return rows[txid]


def assert_problem(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert resp.headers.get("x-transaction-id")
    return body


async def test_exchange_forwards_and_records(network: Network, client: httpx.AsyncClient) -> None:
    token = await network.token(client, "CONS")
    body = b'{"hello": "xin ch\xc3\xa0o"}'
    resp = await client.post(
        f"{network.hub.url}/exchange/PROV/svc/echo?page=2&q=a%20b",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "X-Request-Id": "req-42",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "X-Procedure": "1.001193",
            "X-Dossier": "HS-2020-000001",
            "Cookie": "secret=1",
        },
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["x-request-id"] == "req-42"
    txid = resp.headers["x-transaction-id"]
    seen = resp.json()
    assert seen["path"] == "/svc/echo"
    assert seen["query"] == "page=2&q=a%20b"
    assert seen["body"] == body.decode()
    headers = seen["headers"]
    assert headers["x-consumer"] == "CONS"
    assert headers["x-transaction-id"] == txid
    assert headers["traceparent"].startswith("00-4bf92f3577b34da6")
    assert headers["x-procedure"] == "1.001193"
    assert "authorization" not in headers
    assert "cookie" not in headers

    row = await ledger_row(network, client, txid)
    assert row["consumer"] == "CONS"
    assert row["provider"] == "PROV"
    assert row["service"] == "svc"
    assert row["procedure"] == "1.001193"
    assert row["dossier"] == "HS-2020-000001"
    assert row["method"] == "POST"
    assert row["path"] == "/echo"
    assert row["status"] == 200
    assert row["outcome"] == "ok"
    assert row["request_bytes"] == len(body)
    assert row["response_bytes"] == len(resp.content)
    assert row["request_sha256"] == hashlib.sha256(body).hexdigest()
    stamps = [row[k] for k in ("requested_at", "forwarded_at", "provider_responded_at")]
    assert stamps == sorted(stamps)
    assert row["responded_at"] >= row["provider_responded_at"]


async def test_path_template_hides_identifiers(network: Network, client: httpx.AsyncClient) -> None:
    token = await network.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    resp = await client.get(
        f"{network.hub.url}/exchange/PROV/svc/citizens/001203004567", headers=auth
    )
    assert resp.status_code == 200
    assert resp.json()["id"] == "001203004567"
    row = await ledger_row(network, client, resp.headers["x-transaction-id"])
    assert row["path"] == "/citizens/{id}"
    # A path the OpenAPI document does not list is masked, not stored as sent.
    resp = await client.get(f"{network.hub.url}/exchange/PROV/svc/status/404", headers=auth)
    row = await ledger_row(network, client, resp.headers["x-transaction-id"])
    assert row["path"] == "/status/{param}"
    assert (
        "001203004567"
        not in (await client.get(f"{network.hub.url}/transactions", headers=network.hub.admin)).text
    )


async def test_provider_status_and_content_type_pass_through(
    network: Network, client: httpx.AsyncClient
) -> None:
    token = await network.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    base = f"{network.hub.url}/exchange/PROV/svc"
    text = await client.get(f"{base}/text", headers=auth)
    assert text.status_code == 200
    assert text.text == "xin chào"
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    for code, outcome in (
        (404, "client_error"),
        (422, "client_error"),
        (500, "provider_error"),
        (503, "provider_error"),
        (201, "ok"),
    ):
        resp = await client.get(f"{base}/status/{code}", headers=auth)
        assert resp.status_code == code
        assert resp.json() == {"status": code}
        row = await ledger_row(network, client, resp.headers["x-transaction-id"])
        assert (row["status"], row["outcome"]) == (code, outcome)


async def test_authentication_failures(network: Network, client: httpx.AsyncClient) -> None:
    url = f"{network.hub.url}/exchange/PROV/svc/echo"
    resp = await client.get(url)
    assert_problem(resp, 401, "missing_token")
    assert resp.headers["www-authenticate"].startswith("Bearer")
    resp = await client.get(url, headers={"Authorization": "Basic Zm9vOmJhcg=="})
    assert_problem(resp, 401, "invalid_token")
    resp = await client.get(url, headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(resp, 401, "invalid_token")
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    # No known sender: counted per minute, address and reason, not a ledger row each.
    counts = (await client.get(f"{network.hub.url}/stats/refusals")).json()
    assert counts["total"] == 3
    assert {i["reason"] for i in counts["items"]} == {"missing_token", "invalid_token"}
    rows = await query(network.hub, "SELECT count(*) FROM ledger WHERE consumer IS NULL")
    assert rows == [(0,)]


async def test_expired_token_refused(
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    from tests.national_hub.conftest import build_network

    hub: Hub = await hub_factory(token_ttl_seconds=30)
    net = await build_network(hub, provider, client)
    token = await net.token(client, "CONS")
    tokens = hub.runtime.tokens
    # Issue an already-expired token with the hub's own key: only time separates it.
    import jwt

    claims = jwt.decode(token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) - 60
    claims["iat"] = claims["nbf"] = int(time.time()) - 120
    expired = jwt.encode(claims, tokens._key, algorithm="HS256")
    resp = await client.get(
        f"{hub.url}/exchange/PROV/svc/echo", headers={"Authorization": f"Bearer {expired}"}
    )
    body = assert_problem(resp, 401, "invalid_token")
    assert "expired" in body["detail"]


async def test_grant_and_resolution_failures(network: Network, client: httpx.AsyncClient) -> None:
    other = await network.token(client, "OTHER")
    cons = await network.token(client, "CONS")
    hub = network.hub.url
    resp = await client.get(
        f"{hub}/exchange/PROV/svc/echo", headers={"Authorization": f"Bearer {other}"}
    )
    assert_problem(resp, 403, "not_granted")
    row = await ledger_row(network, client, resp.headers["x-transaction-id"])
    assert (row["consumer"], row["outcome"]) == ("OTHER", "forbidden")
    auth = {"Authorization": f"Bearer {cons}"}
    assert_problem(
        await client.get(f"{hub}/exchange/NOPE/svc/echo", headers=auth), 404, "unknown_provider"
    )
    assert_problem(
        await client.get(f"{hub}/exchange/PROV/nope/echo", headers=auth), 404, "unknown_service"
    )
    assert_problem(
        await client.get(f"{hub}/exchange/PROV/closed/echo", headers=auth), 403, "not_granted"
    )
    resp = await client.get(f"{hub}/exchange/PROV/svc/a/../../admin", headers=auth)
    assert resp.status_code in (400, 404)


async def test_registry_changes_take_effect_at_once(
    network: Network, client: httpx.AsyncClient
) -> None:
    hub = network.hub
    token = await network.token(client, "OTHER")
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{hub.url}/exchange/PROV/svc/echo"
    assert (await client.get(url, headers=auth)).status_code == 403
    grant = await client.post(
        f"{hub.url}/admin/grants",
        headers=hub.admin,
        json={"consumer": "OTHER", "provider": "PROV", "service": "svc"},
    )
    assert grant.status_code == 201
    assert (await client.get(url, headers=auth)).status_code == 200
    assert (
        await client.delete(f"{hub.url}/admin/grants/{grant.json()['id']}", headers=hub.admin)
    ).status_code == 204
    assert_problem(await client.get(url, headers=auth), 403, "not_granted")
    # A disabled node's token is refused at once, not when it expires.
    cons = await network.token(client, "CONS")
    cauth = {"Authorization": f"Bearer {cons}"}
    assert (await client.get(url, headers=cauth)).status_code == 200
    assert (
        await client.patch(
            f"{hub.url}/admin/nodes/CONS", headers=hub.admin, json={"enabled": False}
        )
    ).status_code == 200
    assert_problem(await client.get(url, headers=cauth), 401, "invalid_token")
    # A provider that is not connected is not routable.
    await client.patch(f"{hub.url}/admin/nodes/CONS", headers=hub.admin, json={"enabled": True})
    await client.patch(f"{hub.url}/admin/nodes/PROV", headers=hub.admin, json={"connected": False})
    assert_problem(await client.get(url, headers=cauth), 404, "unknown_provider")


async def test_body_limits(hub_factory: Any, provider: Any, client: httpx.AsyncClient) -> None:
    from tests.national_hub.conftest import build_network

    hub: Hub = await hub_factory(max_request_bytes=1000)
    net = await build_network(hub, provider, client)
    token = await net.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{hub.url}/exchange/PROV/svc/echo"
    ok = await client.post(url, content=b"x" * 1000, headers=auth)
    assert ok.status_code == 200
    resp = await client.post(url, content=b"x" * 1001, headers=auth)
    assert_problem(resp, 413, "payload_too_large")
    row = await ledger_row(net, client, resp.headers["x-transaction-id"])
    assert row["outcome"] == "too_large"

    async def chunks() -> Any:
        for _ in range(20):
            yield b"y" * 100

    resp = await client.post(url, content=chunks(), headers=auth)
    assert_problem(resp, 413, "payload_too_large")
    assert len(provider.server.config.app.state.seen) == 1  # neither reached the provider


async def test_provider_timeout_and_unavailable(
    network: Network, client: httpx.AsyncClient
) -> None:
    hub = network.hub
    token = await network.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    started = time.monotonic()
    resp = await client.get(f"{hub.url}/exchange/PROV/svc/slow?seconds=5", headers=auth)
    elapsed = time.monotonic() - started
    assert_problem(resp, 504, "provider_timeout")
    assert elapsed < 4  # the timeout is 1 s; the provider would take 5
    row = await ledger_row(network, client, resp.headers["x-transaction-id"])
    assert row["outcome"] == "timeout"
    assert row["provider_responded_at"] is None

    dead = f"http://127.0.0.1:{free_port()}"
    await client.patch(f"{hub.url}/admin/nodes/PROV", headers=hub.admin, json={"base_url": dead})
    resp = await client.get(f"{hub.url}/exchange/PROV/svc/echo", headers=auth)
    assert_problem(resp, 503, "provider_unavailable")
    row = await ledger_row(network, client, resp.headers["x-transaction-id"])
    assert row["outcome"] == "unavailable"


async def test_bad_headers_refused(network: Network, client: httpx.AsyncClient) -> None:
    token = await network.token(client, "CONS")
    url = f"{network.hub.url}/exchange/PROV/svc/echo"
    resp = await client.get(url, headers={"Authorization": f"Bearer {token}", "X-Procedure": "a b"})
    assert_problem(resp, 400, "invalid_request")
    resp = await client.get(
        url, headers={"Authorization": f"Bearer {token}", "X-Dossier": "x" * 200}
    )
    assert_problem(resp, 400, "invalid_request")


async def test_concurrent_exchanges_all_recorded(
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    # 200 at once from this process, which also runs the hub and the provider: a burst
    # the hub would rightly shed (test_resilience), and under a busy CI machine one the
    # provider may answer slower than the tests' 1 s timeout. Here both are lifted so
    # that every row can be counted.
    hub = await hub_factory(shed_min_in_flight=1000, provider_timeout_seconds=10.0)
    network = await build_network(hub, provider, client)
    token = await network.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{network.hub.url}/exchange/PROV/svc/citizens/search"
    results = await asyncio.gather(*(client.get(url, headers=auth) for _ in range(200)))
    assert [r.text for r in results if r.status_code != 200] == []
    txids = {r.headers["x-transaction-id"] for r in results}
    assert len(txids) == 200
    seen: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000, "consumer": "CONS"}
        if cursor:
            params["cursor"] = cursor
        page = (
            await client.get(
                f"{network.hub.url}/transactions", params=params, headers=network.hub.admin
            )
        ).json()
        seen.update(r["id"] for r in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert txids <= seen
    stats = (await client.get(f"{network.hub.url}/stats/nodes")).json()
    cons = next(i for i in stats["items"] if i["node"] == "CONS")
    assert cons["as_consumer"]["transactions"] == len(seen)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_methods_forwarded(network: Network, client: httpx.AsyncClient, method: str) -> None:
    token = await network.token(client, "CONS")
    resp = await client.request(
        method,
        f"{network.hub.url}/exchange/PROV/svc/echo",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 200
    assert resp.json()["method"] == method


async def test_trace_context_and_json_logs(
    network: Network, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import logging

    from common.logs import JsonFormatter

    token = await network.token(client, "CONS")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    with caplog.at_level(logging.INFO, logger="ngsp.hub.exchange"):
        resp = await client.get(
            f"{network.hub.url}/exchange/PROV/svc/citizens/001203004567",
            headers={
                "Authorization": f"Bearer {token}",
                "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
            },
        )
        fresh = await client.get(
            f"{network.hub.url}/exchange/PROV/svc/echo",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert resp.status_code == 200
    seen = network.provider.server.config.app.state.seen
    forwarded = next(s for s in seen if s["path"].endswith("001203004567"))["headers"]
    version, trace_id, span, flags = forwarded["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", trace, "01")
    assert span != "00f067aa0ba902b7"  # the hub's own span
    assert resp.headers["traceparent"].split("-")[1] == trace
    # Without a trace, the hub starts one and still tells the consumer.
    assert len(fresh.headers["traceparent"].split("-")[1]) == 32
    lines = [JsonFormatter("hub").format(r) for r in caplog.records]
    docs = [json.loads(line) for line in lines]
    mine = next(d for d in docs if d["transaction_id"] == resp.headers["x-transaction-id"])
    assert mine["trace_id"] == trace
    assert mine["path"] == "/citizens/{id}"
    assert mine["consumer"] == "CONS"
    assert all("001203004567" not in line for line in lines)
