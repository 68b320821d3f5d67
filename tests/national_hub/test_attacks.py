"""Authentication and authorisation attacks: each refused with its status and code; each
refusal of a known client written to the ledger, of an unknown sender counted."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import jwt

from tests.national_hub.conftest import Hub, Network, build_network


async def last_row(net: Network, client: httpx.AsyncClient, **filters: str) -> dict[str, Any]:
    page = await client.get(
        f"{net.hub.url}/transactions", params={"limit": 1, **filters}, headers=net.hub.admin
    )
    items: list[dict[str, Any]] = page.json()["items"]
    assert items, f"no ledger row for {filters}"
    return items[0]


async def refusals(net: Network, client: httpx.AsyncClient, reason: str) -> int:
    counts = (await client.get(f"{net.hub.url}/stats/refusals")).json()["items"]
    return sum(item["count"] for item in counts if item["reason"] == reason)


def forged(claims: dict[str, Any], key: str) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def unsigned(claims: dict[str, Any]) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_forged_and_stale_tokens(network: Network, client: httpx.AsyncClient) -> None:
    good = await network.token(client, "CONS")
    claims = jwt.decode(good, options={"verify_signature": False})
    key = network.hub.settings.signing_key_value()
    now = int(time.time())
    attempts = {
        "another key": forged(claims, "an-attacker-key-0123456789abcdef0123"),
        "alg none": unsigned(claims),
        "expired": forged({**claims, "exp": now - 120, "iat": now - 900}, key),
        "not yet valid": forged({**claims, "nbf": now + 600}, key),
        "another node": forged({**claims, "sub": "OTHER"}, key),  # credential of CONS
    }
    url = f"{network.hub.url}/exchange/PROV/svc/echo"
    for name, token in attempts.items():
        counted = await refusals(network, client, "invalid_token")
        resp = await client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 401, name
        assert resp.json()["code"] == "invalid_token", name
        # No known sender: counted for its address, not a ledger row each.
        assert await refusals(network, client, "invalid_token") == counted + 1, name
        rows = await client.get(
            f"{network.hub.url}/transactions",
            params={"outcome": "unauthorized"},
            headers=network.hub.admin,
        )
        assert rows.json()["items"] == [], name


async def test_a_token_only_reaches_granted_services(
    network: Network, client: httpx.AsyncClient
) -> None:
    other = await network.token(client, "OTHER")  # PROV/svc is granted to CONS only
    resp = await client.get(
        f"{network.hub.url}/exchange/PROV/svc/echo", headers={"Authorization": f"Bearer {other}"}
    )
    assert (resp.status_code, resp.json()["code"]) == (403, "not_granted")
    row = await last_row(network, client, outcome="forbidden")
    assert (row["consumer"], row["provider"], row["service"]) == ("OTHER", "PROV", "svc")


async def test_disabled_node_refused_at_once(network: Network, client: httpx.AsyncClient) -> None:
    hub = network.hub
    token = await network.token(client, "CONS")
    await client.patch(f"{hub.url}/admin/nodes/CONS", headers=hub.admin, json={"enabled": False})
    resp = await client.get(
        f"{hub.url}/exchange/PROV/svc/echo", headers={"Authorization": f"Bearer {token}"}
    )
    assert (resp.status_code, resp.json()["code"]) == (401, "invalid_token")
    assert (await last_row(network, client, outcome="unauthorized"))["id"] == resp.headers[
        "x-transaction-id"
    ]


async def test_rotated_secret_and_node_token_on_admin(
    network: Network, client: httpx.AsyncClient
) -> None:
    hub = network.hub
    cred = network.credentials["CONS"]
    await client.post(f"{hub.url}/admin/credentials/{cred['client_id']}/rotate", headers=hub.admin)
    old = await client.post(f"{hub.url}/token", data={"grant_type": "client_credentials", **cred})
    assert (old.status_code, old.json()["code"]) == (401, "invalid_client")
    row = await last_row(network, client, consumer="CONS")
    assert (row["path"], row["status"], row["outcome"]) == ("/token", 401, "unauthorized")
    node_token = await network.token(client, "OTHER")
    admin = await client.get(
        f"{hub.url}/admin/nodes", headers={"Authorization": f"Bearer {node_token}"}
    )
    assert (admin.status_code, admin.json()["code"]) == (403, "forbidden")
    row = await last_row(network, client, consumer="OTHER", outcome="forbidden")
    assert (row["method"], row["path"]) == ("GET", "/admin/nodes")
    counted = await refusals(network, client, "invalid_admin_token")
    nobody = await client.delete(
        f"{hub.url}/admin/nodes/CONS", headers={"Authorization": "Bearer guess"}
    )
    assert nobody.status_code == 401
    assert await refusals(network, client, "invalid_admin_token") == counted + 1


async def test_repeated_failed_logins_are_throttled(
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    hub: Hub = await hub_factory(login_max_failures=3, login_window_seconds=60)
    net = await build_network(hub, provider, client)
    cred = net.credentials["CONS"]
    wrong = {
        "grant_type": "client_credentials",
        "client_id": cred["client_id"],
        "client_secret": "guess-" + "x" * 20,
    }
    codes = [(await client.post(f"{hub.url}/token", data=wrong)).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    locked = await client.post(f"{hub.url}/token", data=wrong)
    assert (locked.status_code, locked.json()["code"]) == (429, "too_many_attempts")
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    # Even the right secret waits out the lock: guessing gains nothing.
    right = await client.post(f"{hub.url}/token", data={"grant_type": "client_credentials", **cred})
    assert right.status_code == 429
    # Other clients are not affected.
    assert await net.token(client, "OTHER")
    row = await last_row(net, client, consumer="CONS")
    assert (row["path"], row["status"]) == ("/token", 429)
