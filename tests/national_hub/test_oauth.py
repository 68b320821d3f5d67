"""POST /token: client credentials by Basic or form, and the RFC 6749 §5.2 errors."""

from __future__ import annotations

import httpx
import jwt

from tests.national_hub.conftest import Network


async def test_token_by_basic_and_by_form(network: Network, client: httpx.AsyncClient) -> None:
    cred = network.credentials["CONS"]
    url = f"{network.hub.url}/token"
    basic = await client.post(
        url,
        data={"grant_type": "client_credentials"},
        auth=(cred["client_id"], cred["client_secret"]),
    )
    form = await client.post(url, data={"grant_type": "client_credentials", **cred})
    for resp in (basic, form):
        assert resp.status_code == 200, resp.text
        assert resp.headers["cache-control"] == "no-store"
        body = resp.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == network.hub.settings.token_ttl_seconds
        assert body["scope"] == "am_application_scope default"
        claims = jwt.decode(body["access_token"], options={"verify_signature": False})
        assert claims["sub"] == "CONS"
        assert claims["exp"] - claims["iat"] == body["expires_in"]
    scoped = await client.post(
        url, data={"grant_type": "client_credentials", "scope": "default", **cred}
    )
    assert scoped.status_code == 200


def _oauth_error(resp: httpx.Response, status: int, error: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"] == error
    assert body["code"] == error
    assert body["error_description"]
    assert resp.headers["content-type"] == "application/problem+json"


async def test_token_errors(network: Network, client: httpx.AsyncClient) -> None:
    cred = network.credentials["CONS"]
    url = f"{network.hub.url}/token"
    _oauth_error(
        await client.post(url, data={"grant_type": "password", **cred}),
        400,
        "unsupported_grant_type",
    )
    _oauth_error(await client.post(url, data=cred), 400, "invalid_request")
    _oauth_error(
        await client.post(url, json={"grant_type": "client_credentials", **cred}),
        400,
        "invalid_request",
    )
    wrong = await client.post(
        url, data={"grant_type": "client_credentials"}, auth=(cred["client_id"], "wrong-secret")
    )
    _oauth_error(wrong, 401, "invalid_client")
    assert wrong.headers["www-authenticate"].startswith("Basic")
    _oauth_error(
        await client.post(
            url,
            data={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
        ),
        401,
        "invalid_client",
    )
    _oauth_error(
        await client.post(url, data={"grant_type": "client_credentials"}), 401, "invalid_client"
    )
    _oauth_error(
        await client.post(
            url,
            content=b"grant_type=client_credentials&grant_type=x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        400,
        "invalid_request",
    )
    _oauth_error(
        await client.post(url, data={"grant_type": "client_credentials", "scope": "admin", **cred}),
        400,
        "invalid_scope",
    )
    _oauth_error(
        await client.post(
            url, data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!!"}
        ),
        401,
        "invalid_client",
    )


async def test_disabled_node_and_rotated_secret_get_no_token(
    network: Network, client: httpx.AsyncClient
) -> None:
    hub = network.hub
    cred = network.credentials["CONS"]
    url = f"{hub.url}/token"
    form = {"grant_type": "client_credentials", **cred}
    assert (await client.post(url, data=form)).status_code == 200
    rotated = await client.post(
        f"{hub.url}/admin/credentials/{cred['client_id']}/rotate", headers=hub.admin
    )
    assert rotated.status_code == 200
    _oauth_error(await client.post(url, data=form), 401, "invalid_client")
    new_form = {**form, "client_secret": rotated.json()["client_secret"]}
    assert (await client.post(url, data=new_form)).status_code == 200
    await client.patch(f"{hub.url}/admin/nodes/CONS", headers=hub.admin, json={"enabled": False})
    _oauth_error(await client.post(url, data=new_form), 401, "invalid_client")
    # A deleted credential's tokens stop working at once.
    await client.patch(f"{hub.url}/admin/nodes/CONS", headers=hub.admin, json={"enabled": True})
    token = (await client.post(url, data=new_form)).json()["access_token"]
    me = await client.get(f"{hub.url}/me/services", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    await client.delete(f"{hub.url}/admin/credentials/{cred['client_id']}", headers=hub.admin)
    me = await client.get(f"{hub.url}/me/services", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401
    assert me.json()["code"] == "invalid_token"
