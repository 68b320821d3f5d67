"""The admin API and the metaservices."""

from __future__ import annotations

import json

import httpx

from tests.national_hub.conftest import Hub, Network, query
from tests.support.provider import OPENAPI


async def test_admin_requires_admin_token(network: Network, client: httpx.AsyncClient) -> None:
    url = f"{network.hub.url}/admin/nodes"
    resp = await client.get(url)
    assert resp.status_code == 401
    assert resp.json()["code"] == "invalid_admin_token"
    resp = await client.get(url, headers={"Authorization": "Bearer wrong"})
    assert resp.status_code == 401
    token = await network.token(client, "CONS")
    resp = await client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403
    assert resp.json()["code"] == "forbidden"
    assert resp.headers["content-type"] == "application/problem+json"


async def test_node_crud_and_errors(hub: Hub, client: httpx.AsyncClient) -> None:
    url = f"{hub.url}/admin/nodes"
    node = {
        "code": "P01",
        "name": "Thành phố Hà Nội",
        "kind": "province",
        "base_url": "http://127.0.0.1:8100/nodes/P01/",
    }
    created = await client.post(url, json=node, headers=hub.admin)
    assert created.status_code == 201
    assert created.json()["base_url"] == "http://127.0.0.1:8100/nodes/P01"
    assert (await client.post(url, json=node, headers=hub.admin)).json()["code"] == "conflict"
    bad = await client.post(url, json={**node, "code": "P 01"}, headers=hub.admin)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_request"
    assert bad.json()["errors"][0]["field"] == "code"
    bad = await client.post(url, json={**node, "code": "P02", "kind": "city"}, headers=hub.admin)
    assert bad.status_code == 400
    assert "kind" in bad.json()["detail"]
    bad = await client.post(
        url, json={**node, "code": "P02", "base_url": "ftp://x"}, headers=hub.admin
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "base_url"
    bad = await client.post(
        url, content=b"{not json", headers={**hub.admin, "content-type": "application/json"}
    )
    assert bad.status_code == 400
    patched = await client.patch(f"{url}/P01", json={"connected": False}, headers=hub.admin)
    assert patched.json()["connected"] is False
    nulled = await client.patch(f"{url}/P01", json={"name": None}, headers=hub.admin)
    assert nulled.status_code == 400
    assert (await client.get(f"{url}/P99", headers=hub.admin)).json()["code"] == "not_found"
    listing = (await client.get(url, headers=hub.admin)).json()
    assert [n["code"] for n in listing["items"]] == ["P01"]
    assert (await client.delete(f"{url}/P01", headers=hub.admin)).status_code == 204
    assert (await client.delete(f"{url}/P01", headers=hub.admin)).status_code == 404
    unknown = await client.get(f"{hub.url}/no/such/route")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"


async def test_services_grants_credentials(hub: Hub, client: httpx.AsyncClient) -> None:
    a = hub.admin
    for code, kind in (("DANCU", "national_database"), ("P01", "province")):
        await client.post(
            f"{hub.url}/admin/nodes",
            headers=a,
            json={"code": code, "name": code, "kind": kind, "base_url": "http://127.0.0.1:9"},
        )
    svc = {
        "provider": "DANCU",
        "code": "citizens",
        "version": "v2",
        "openapi": OPENAPI,
        "description": "Tra cứu công dân",
        "base_path": "/citizens",
    }
    assert (await client.post(f"{hub.url}/admin/services", json=svc, headers=a)).status_code == 201
    assert (await client.post(f"{hub.url}/admin/services", json=svc, headers=a)).status_code == 409
    missing = await client.post(
        f"{hub.url}/admin/services", headers=a, json={**svc, "provider": "NOPE"}
    )
    assert missing.status_code == 404
    grant = {"consumer": "P01", "provider": "DANCU", "service": "citizens"}
    first = await client.post(f"{hub.url}/admin/grants", json=grant, headers=a)
    again = await client.post(f"{hub.url}/admin/grants", json=grant, headers=a)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    grants = (await client.get(f"{hub.url}/admin/grants", headers=a)).json()
    assert grants["count"] == 1
    cred = await client.post(f"{hub.url}/admin/nodes/P01/credentials", headers=a)
    assert cred.status_code == 201
    listed = (await client.get(f"{hub.url}/admin/nodes/P01/credentials", headers=a)).json()
    assert listed["items"][0]["client_id"] == cred.json()["client_id"]
    assert "client_secret" not in listed["items"][0]
    # The secret is stored only as a hash.
    stored = (await query(hub, "SELECT secret_hash FROM credentials"))[0][0]
    assert cred.json()["client_secret"] not in stored
    assert stored.startswith("sha256$")
    # Development hubs write demo credentials for developers.
    creds_file = json.loads(hub.settings.credentials_path.read_text())
    assert creds_file["nodes"]["P01"]["client_id"] == cred.json()["client_id"]
    assert creds_file["hub"]["admin_token"] == hub.admin_token

    token = (
        await client.post(
            f"{hub.url}/token",
            data={
                "grant_type": "client_credentials",
                "client_id": cred.json()["client_id"],
                "client_secret": cred.json()["client_secret"],
            },
        )
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    nodes = (await client.get(f"{hub.url}/nodes", headers=auth)).json()
    assert {n["code"] for n in nodes["items"]} == {"DANCU", "P01"}
    assert all(n["base_url"] is None for n in nodes["items"])
    services = (await client.get(f"{hub.url}/nodes/DANCU/services", headers=auth)).json()
    assert services["items"][0]["code"] == "citizens"
    assert services["items"][0]["has_openapi"] is True
    doc = await client.get(f"{hub.url}/nodes/DANCU/services/citizens/openapi", headers=auth)
    assert doc.json()["paths"].keys() == OPENAPI["paths"].keys()
    mine = (await client.get(f"{hub.url}/me/services", headers=auth)).json()
    assert [(s["provider"], s["code"]) for s in mine["items"]] == [("DANCU", "citizens")]
    assert (await client.get(f"{hub.url}/nodes")).status_code == 401
    assert (await client.get(f"{hub.url}/me/services", headers=a)).status_code == 401


async def test_registry_document_is_idempotent(network: Network, client: httpx.AsyncClient) -> None:
    hub = network.hub
    doc = {
        "nodes": [
            {
                "code": "CONS",
                "name": "Tỉnh Thử",
                "kind": "province",
                "base_url": network.provider.url,
            }
        ],
        "grants": [{"consumer": "CONS", "provider": "PROV", "service": "svc"}],
    }
    again = await client.post(f"{hub.url}/admin/registry", json=doc, headers=hub.admin)
    assert again.status_code == 200
    assert again.json()["credentials"] == []  # CONS already has one
    grants = (await client.get(f"{hub.url}/admin/grants", headers=hub.admin)).json()
    assert grants["count"] == 1
    bad = await client.post(
        f"{hub.url}/admin/registry",
        headers=hub.admin,
        json={"grants": [{"consumer": "CONS", "provider": "PROV", "service": "missing"}]},
    )
    assert bad.status_code == 404
    assert bad.json()["code"] == "not_found"


async def test_health(hub: Hub, client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{hub.url}/healthz")).json() == {"status": "ok"}
    ready = await client.get(f"{hub.url}/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    openapi = (await client.get(f"{hub.url}/openapi.json")).json()
    assert "/exchange/{provider}/{service}/{path}" in openapi["paths"]
    assert "/token" in openapi["paths"]
