"""The simulated network behind a real hub: registration, exchanges between nodes, faults."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx
import pytest

from common.hubclient import HubClient, TokenError
from tests.provincial_nodes.conftest import adult_woman, network_of
from tests.support.hub import query


async def test_registration_and_exchange_between_nodes(
    sqlite_hub_factory: Any, nodes_factory: Any, client: httpx.AsyncClient
) -> None:
    hub = sqlite_hub_factory()
    nodes = nodes_factory(hub)
    network = network_of(nodes)
    world = (await client.get(f"{nodes.url}/world")).json()
    assert (world["population_size"], world["seed"]) == (5000, 7)
    samples = (await client.get(f"{nodes.url}/samples", params={"n": 3})).json()
    assert len(samples["children_under_6"]) == 3
    assert all(c["age"] < 6 for c in samples["children_under_6"])
    assert all(network.world.person(c["id_number"]) for c in samples["mothers"])
    control = {"Authorization": f"Bearer {network.admin_token}"}
    assert (await client.get(f"{nodes.url}/nodes")).status_code == 401
    listed = (await client.get(f"{nodes.url}/nodes", headers=control)).json()
    assert listed["count"] == 97  # 92 bodies and 5 national databases
    assert all(n["listening"] for n in listed["items"])
    hub_nodes = (await client.get(f"{hub.url}/admin/nodes", headers=hub.admin)).json()
    assert hub_nodes["count"] == 97
    services = (await client.get(f"{hub.url}/admin/services", headers=hub.admin)).json()
    assert services["count"] == 5 + 63  # the national databases' and every province's
    creds = network.settings.credentials_path
    async with HubClient.from_credentials(creds, "P79") as hcm:
        mine = (
            await hcm.http.get(
                f"{hub.url}/me/services", headers={"Authorization": f"Bearer {await hcm.token()}"}
            )
        ).json()
        codes = {(s["provider"], s["code"]) for s in mine["items"]}
        assert ("DANCU", "population") in codes
        assert ("P79", "one-stop") in codes
        assert ("P01", "one-stop") not in codes
        person = adult_woman(network.world)
        resp = await hcm.call(
            "DANCU", "population", "GET", f"/citizens/{person.id_number}", procedure="1.004222"
        )
        assert resp.status_code == 200
        assert resp.json()["full_name"] == person.full_name
        txid = resp.headers["x-transaction-id"]
        denied = await hcm.call("P01", "one-stop", "GET", "/dossiers/HS-01-2026-000001")
        assert denied.status_code == 403
    rows = await query(
        hub, "SELECT consumer, provider, service, path, outcome FROM ledger WHERE id = :id", id=txid
    )
    assert rows == [("P79", "DANCU", "population", "/citizens/{id_number}", "ok")]


async def test_as_of_date_decides_who_is_connected(
    sqlite_hub_factory: Any, nodes_factory: Any, client: httpx.AsyncClient
) -> None:
    hub = sqlite_hub_factory()
    nodes = nodes_factory(hub, as_of=dt.date(2020, 2, 29))
    control = {"Authorization": f"Bearer {network_of(nodes).admin_token}"}
    listed = (await client.get(f"{nodes.url}/nodes", headers=control)).json()["items"]
    bodies = [n for n in listed if n["kind"] != "national_database"]
    assert sum(n["connected"] for n in bodies) == 25
    hub_nodes = (await client.get(f"{hub.url}/nodes", headers=hub.admin)).json()["items"]
    assert sum(n["connected"] for n in hub_nodes if n["kind"] != "national_database") == 25
    late = next(n["code"] for n in bodies if not n["connected"] and n["kind"] == "province")
    creds = network_of(nodes).settings.credentials_path
    async with HubClient.from_credentials(creds, late) as node:
        with pytest.raises(TokenError, match="invalid_client"):
            await node.token()  # a body not yet connected gets no token


async def _set_fault(
    client: httpx.AsyncClient, nodes: Any, code: str, spec: dict[str, Any]
) -> None:
    token = network_of(nodes).admin_token
    resp = await client.put(
        f"{nodes.url}/admin/faults/{code}", json=spec, headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 200, resp.text


async def test_injected_faults_reach_consumer_and_ledger(
    network_factory: Any, client: httpx.AsyncClient
) -> None:
    hub, nodes = network_factory(provider_timeout_seconds=1.0)
    network = network_of(nodes)
    person = adult_woman(network.world)
    path = f"/citizens/{person.id_number}"
    unauthorised = await client.put(f"{nodes.url}/admin/faults/DANCU", json={"outage": True})
    assert unauthorised.status_code == 401

    async with HubClient.from_credentials(network.settings.credentials_path, "P01") as p01:

        async def outcome_of(resp: httpx.Response) -> str:
            rows = await query(
                hub,
                "SELECT outcome FROM ledger WHERE id = :id",
                id=resp.headers["x-transaction-id"],
            )
            return str(rows[0][0])

        await _set_fault(client, nodes, "DANCU", {"latency": {"distribution": "fixed", "ms": 300}})
        started = time.monotonic()
        slow = await p01.call("DANCU", "population", "GET", path)
        assert slow.status_code == 200
        assert time.monotonic() - started >= 0.3
        assert await outcome_of(slow) == "ok"

        await _set_fault(client, nodes, "DANCU", {"error_rate": 1.0, "error_status": 503})
        failed = await p01.call("DANCU", "population", "GET", path)
        assert failed.status_code == 503
        assert failed.json()["code"] == "injected_fault"
        assert await outcome_of(failed) == "provider_error"

        await _set_fault(client, nodes, "DANCU", {"slow_seconds": 3})
        started = time.monotonic()
        timed_out = await p01.call("DANCU", "population", "GET", path)
        assert timed_out.status_code == 504
        assert timed_out.json()["code"] == "provider_timeout"
        assert time.monotonic() - started < 2.5
        assert await outcome_of(timed_out) == "timeout"

        await _set_fault(client, nodes, "DANCU", {"outage": True})
        down = await p01.call("DANCU", "population", "GET", path)
        assert down.status_code == 503
        assert down.json()["code"] == "provider_unavailable"
        assert await outcome_of(down) == "unavailable"
        control = {"Authorization": f"Bearer {network.admin_token}"}
        listed = (await client.get(f"{nodes.url}/nodes/DANCU", headers=control)).json()
        assert listed["listening"] is False

        token = network.admin_token
        cleared = await client.delete(
            f"{nodes.url}/admin/faults/DANCU", headers={"Authorization": f"Bearer {token}"}
        )
        assert cleared.status_code == 204
        back = await p01.call("DANCU", "population", "GET", path)
        assert back.status_code == 200
        bad = await client.put(
            f"{nodes.url}/admin/faults/DANCU",
            json={"error_rate": 2},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["field"] == "error_rate"


async def test_client_refreshes_a_refused_token(
    network_factory: Any, client: httpx.AsyncClient
) -> None:
    _hub, nodes = network_factory()
    network = network_of(nodes)
    person = adult_woman(network.world)
    async with HubClient.from_credentials(network.settings.credentials_path, "P01") as p01:
        first = await p01.token()
        p01._token = first[:-4] + "AAAA"  # a token the hub will refuse
        resp = await p01.call("DANCU", "population", "GET", f"/citizens/{person.id_number}")
        assert resp.status_code == 200
        assert p01._token != first[:-4] + "AAAA"
