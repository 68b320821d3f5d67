"""Revocation that takes effect: a token ends with its credential's generation.

Attacks: a token kept after its credential was rotated, after it was deleted and created
again with the same client id, after it was disabled. On the replica that made the change
the token is refused at once; on another hub process sharing the database (PostgreSQL),
within one registry refresh.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from national_hub.tokens import hash_secret, verify_secret
from tests.national_hub.conftest import Network, build_network
from tests.support.hub import Hub
from tests.support.pki import hub_tls_settings
from tests.support.servers import ChildProcess, ThreadServer, free_port, python_cmd, wait_http


async def _status(client: httpx.AsyncClient, url: str, token: str) -> int:
    resp = await client.get(
        f"{url}/exchange/PROV/svc/echo", headers={"Authorization": f"Bearer {token}"}
    )
    return resp.status_code


async def _client_id(network: Network, client: httpx.AsyncClient) -> str:
    return network.credentials["CONS"]["client_id"]


async def test_a_rotated_credentials_tokens_are_refused_at_once(
    network: Network, client: httpx.AsyncClient
) -> None:
    hub = network.hub
    token = await network.token(client, "CONS")
    assert await _status(client, hub.url, token) == 200
    client_id = await _client_id(network, client)
    rotated = await client.post(
        f"{hub.url}/admin/credentials/{client_id}/rotate", headers=hub.admin
    )
    assert rotated.status_code == 200
    refused = await client.get(
        f"{hub.url}/exchange/PROV/svc/echo", headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
    network.credentials["CONS"]["client_secret"] = rotated.json()["client_secret"]
    assert await _status(client, hub.url, await network.token(client, "CONS")) == 200


async def test_a_deleted_and_recreated_client_ids_old_tokens_stay_refused(
    network: Network, client: httpx.AsyncClient
) -> None:
    hub = network.hub
    token = await network.token(client, "CONS")
    client_id = await _client_id(network, client)
    secret = network.credentials["CONS"]["client_secret"]
    deleted = await client.delete(f"{hub.url}/admin/credentials/{client_id}", headers=hub.admin)
    assert deleted.status_code == 204
    assert await _status(client, hub.url, token) == 401
    again = await client.post(
        f"{hub.url}/admin/nodes/CONS/credentials",
        json={"client_id": client_id, "client_secret": secret},
        headers=hub.admin,
    )
    assert again.status_code == 201, again.text
    # Same client id, same secret: the token issued before the deletion is still refused.
    assert await _status(client, hub.url, token) == 401
    assert await _status(client, hub.url, await network.token(client, "CONS")) == 200


async def test_a_disabled_credential_gets_no_token_and_its_tokens_end(
    network: Network, client: httpx.AsyncClient
) -> None:
    hub = network.hub
    token = await network.token(client, "CONS")
    client_id = await _client_id(network, client)
    disabled = await client.post(
        f"{hub.url}/admin/credentials/{client_id}/disable", headers=hub.admin
    )
    assert disabled.status_code == 204
    assert await _status(client, hub.url, token) == 401
    cred = network.credentials["CONS"]
    login = await client.post(
        f"{hub.url}/token",
        data={"grant_type": "client_credentials"},
        auth=(cred["client_id"], cred["client_secret"]),
    )
    assert login.status_code == 401
    enabled = await client.post(
        f"{hub.url}/admin/credentials/{client_id}/enable", headers=hub.admin
    )
    assert enabled.status_code == 204
    assert await _status(client, hub.url, token) == 401  # the old token stays ended
    assert await _status(client, hub.url, await network.token(client, "CONS")) == 200


def test_secrets_an_operator_chose_are_stored_with_a_slow_salted_hash() -> None:
    chosen = hash_secret("correct horse battery staple", chosen=True)
    again = hash_secret("correct horse battery staple", chosen=True)
    assert chosen.startswith("scrypt$")
    assert chosen != again  # salted
    assert verify_secret("correct horse battery staple", chosen)
    assert not verify_secret("correct horse battery stapl", chosen)
    assert hash_secret("generated").startswith("sha256$")


async def test_revocation_reaches_another_hub_process_within_one_refresh(
    tmp_path: Path, postgres_url: str, provider: ThreadServer
) -> None:
    """Two hub processes share only PostgreSQL, as two replicas on two machines."""
    shared = {
        "NGSP_HUB_DATABASE_URL": postgres_url,
        "NGSP_HUB_ADMIN_TOKEN": "test-admin-token-0123456789abcdef0123",
        "NGSP_HUB_SIGNING_KEY": "test-signing-key-0123456789abcdef0123",
        "NGSP_HUB_REGISTRY_POLL_SECONDS": "0.5",
        **{f"NGSP_HUB_{k.upper()}": str(v) for k, v in hub_tls_settings().items()},
    }
    hubs: list[tuple[ChildProcess, str]] = []
    try:
        for name in ("a", "b"):
            port = free_port()
            proc = ChildProcess(
                python_cmd("-m", "ngsp", "hub", "--port", str(port), "--log-level", "warning"),
                env={**shared, "NGSP_HUB_DATA_DIR": str(tmp_path / name)},
                log=tmp_path / f"hub-{name}.log",
            ).start()
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/readyz", proc=proc.proc)
            hubs.append((proc, url))
        (_, url_a), (_, url_b) = hubs
        admin = {"Authorization": f"Bearer {shared['NGSP_HUB_ADMIN_TOKEN']}"}
        async with httpx.AsyncClient(timeout=10) as client:
            hub_a = Hub(
                settings=None,  # type: ignore[arg-type]  # a process of its own
                admin_token=shared["NGSP_HUB_ADMIN_TOKEN"],
                app=None,
                url=url_a,
            )
            network = await build_network(hub_a, provider, client)
            token = await network.token(client, "CONS")
            assert await _eventually(client, url_b, token, 200)
            client_id = network.credentials["CONS"]["client_id"]
            rotated = await client.post(
                f"{url_a}/admin/credentials/{client_id}/rotate", headers=admin
            )
            assert rotated.status_code == 200
            assert await _status(client, url_a, token) == 401  # at once where it was changed
            assert await _eventually(client, url_b, token, 401)  # one refresh later elsewhere
    finally:
        for proc, _ in hubs:
            proc.stop()


async def _eventually(client: httpx.AsyncClient, url: str, token: str, status: int) -> bool:
    """Poll until the hub at ``url`` answers ``status`` for the token (bounded: 10 s)."""
    for _ in range(100):
        if await _status(client, url, token) == status:
            return True
        await asyncio.sleep(0.1)
    return False
