"""Reports from the ledger and rollups; savings counted once per completed dossier."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.national_hub.conftest import Hub, Network, build_network, query


async def _exchanges(
    net: Network, client: httpx.AsyncClient, n: int, path: str = "echo"
) -> list[str]:
    token = await net.token(client, "CONS")
    ids = []
    for _ in range(n):
        resp = await client.get(
            f"{net.hub.url}/exchange/PROV/svc/{path}", headers={"Authorization": f"Bearer {token}"}
        )
        ids.append(resp.headers["x-transaction-id"])
    return ids


async def test_transactions_filters_pages_and_csv(
    network: Network, client: httpx.AsyncClient
) -> None:
    hub = network.hub
    ok_ids = await _exchanges(network, client, 7)
    bad_ids = await _exchanges(network, client, 3, "status/500")
    other = await network.token(client, "OTHER")
    await client.get(
        f"{hub.url}/exchange/PROV/svc/echo", headers={"Authorization": f"Bearer {other}"}
    )
    url = f"{hub.url}/transactions"
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4, "consumer": "CONS"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(url, params=params, headers=hub.admin)).json()
        seen.extend(r["id"] for r in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ok_ids + bad_ids, reverse=True)
    failed = (await client.get(url, params={"outcome": "provider_error"}, headers=hub.admin)).json()
    assert {r["id"] for r in failed["items"]} == set(bad_ids)
    forbidden = (await client.get(url, params={"outcome": "forbidden"}, headers=hub.admin)).json()
    assert [r["consumer"] for r in forbidden["items"]] == ["OTHER"]
    now = dt.datetime.now(dt.UTC)
    future = (
        await client.get(
            url, params={"since": (now + dt.timedelta(hours=1)).isoformat()}, headers=hub.admin
        )
    ).json()
    assert future["items"] == []
    window = (
        await client.get(
            url,
            params={
                "since": (now - dt.timedelta(hours=1)).isoformat(),
                "until": (now + dt.timedelta(seconds=5)).isoformat(),
                "limit": 1000,
            },
            headers=hub.admin,
        )
    ).json()
    assert len(window["items"]) == 11
    bad = await client.get(url, params={"outcome": "nope"}, headers=hub.admin)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_request"
    bad = await client.get(
        url, params={"since": now.isoformat(), "until": now.isoformat()}, headers=hub.admin
    )
    assert bad.status_code == 400
    # CSV streams every matching row.
    resp = await client.get(
        url, params={"consumer": "CONS"}, headers={**hub.admin, "Accept": "text/csv"}
    )
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["id"] for r in rows] == seen
    assert rows[0]["requested_at"].endswith("+00:00")
    # A node sees only the exchanges it took part in.
    cons = await network.token(client, "CONS")
    mine = (
        await client.get(url, params={"limit": 1000}, headers={"Authorization": f"Bearer {cons}"})
    ).json()
    assert {r["consumer"] for r in mine["items"]} == {"CONS"}


async def test_rollups_agree_with_the_ledger(network: Network, client: httpx.AsyncClient) -> None:
    hub = network.hub
    await _exchanges(network, client, 5)
    await _exchanges(network, client, 2, "status/404")
    await client.get(f"{hub.url}/exchange/PROV/svc/echo")  # unauthenticated: counted apart
    daily = (await client.get(f"{hub.url}/stats/daily")).json()
    rows = await query(hub, "SELECT outcome, count(*) FROM ledger GROUP BY outcome")
    counts = dict(rows)
    total = sum(counts.values())
    assert daily["totals"]["transactions"] == total == 7
    assert daily["totals"]["successes"] == counts["ok"] == 5
    assert daily["totals"]["failures"] == 2
    nodes = {i["node"]: i for i in (await client.get(f"{hub.url}/stats/nodes")).json()["items"]}
    assert nodes["CONS"]["as_consumer"] == {"transactions": 7, "successes": 5, "failures": 2}
    assert nodes["PROV"]["as_provider"]["transactions"] == 7
    day = daily["items"][0]["day"]
    ranged = (
        await client.get(f"{hub.url}/stats/daily", params={"since": day, "until": day})
    ).json()
    assert ranged["totals"]["transactions"] == 7
    empty = (
        await client.get(
            f"{hub.url}/stats/daily", params={"since": "2019-01-01", "until": "2019-01-31"}
        )
    ).json()
    assert empty == {"items": [], "totals": None}
    assert (await client.get(f"{hub.url}/stats/daily", params={"since": "x"})).status_code == 400


CATALOGUE = Path(__file__).with_name("data") / "procedures.yaml"


@pytest.fixture
async def hub(hub_factory: Any) -> Hub:
    """The hub with a catalogue whose steps call the test network's one provider."""
    started: Hub = await hub_factory(procedures_file=CATALOGUE)
    return started


async def _portal(net: Network, client: httpx.AsyncClient) -> dict[str, str]:
    """Register the public service portal, the one node kind that reports completions."""
    hub = net.hub
    doc = {
        "nodes": [
            {"code": "PORTAL", "name": "Cổng thử", "kind": "portal", "base_url": net.provider.url}
        ],
        "grants": [],
    }
    resp = await client.post(f"{hub.url}/admin/registry", json=doc, headers=hub.admin)
    assert resp.status_code == 200, resp.text
    (cred,) = resp.json()["credentials"]
    net.credentials["PORTAL"] = {
        "client_id": cred["client_id"],
        "client_secret": cred["client_secret"],
    }
    return {"Authorization": f"Bearer {await net.token(client, 'PORTAL')}"}


async def _run(net: Network, client: httpx.AsyncClient, dossier: str, node: str = "CONS") -> None:
    """The exchanges of procedure 1.001022 for ``dossier``, as ``node`` (every step)."""
    auth = {"Authorization": f"Bearer {await net.token(client, node)}", "X-Dossier": dossier}
    for method in ("GET", "POST"):
        resp = await client.request(method, f"{net.hub.url}/exchange/PROV/svc/echo", headers=auth)
        assert resp.status_code == 200, resp.text


async def test_dossier_saving_counted_once(network: Network, client: httpx.AsyncClient) -> None:
    hub = network.hub
    portal = await _portal(network, client)
    await _run(network, client, "HS-0001")
    url = f"{hub.url}/dossiers/HS-0001/complete"
    first = await client.post(url, json={"procedure": "1.001022"}, headers=portal)
    assert first.status_code == 201, first.text
    assert first.json()["saving_vnd"] == 30500
    assert first.json()["counted_now"] is True
    assert first.json()["node"] == "CONS"  # attributed to the node that ran it
    again = await client.post(url, json={"procedure": "1.001022"}, headers=portal)
    assert again.status_code == 200
    assert again.json()["counted_now"] is False
    conflict = await client.post(url, json={"procedure": "1.001193"}, headers=portal)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "conflict"
    failed = await client.post(
        f"{hub.url}/dossiers/HS-0002/complete",
        json={"procedure": "1.001193", "outcome": "failed"},
        headers=portal,
    )
    assert failed.status_code == 201
    assert failed.json()["saving_vnd"] == 0
    unknown = await client.post(
        f"{hub.url}/dossiers/HS-0003/complete", json={"procedure": "9.999999"}, headers=portal
    )
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "unknown_procedure"
    bad = await client.post(
        f"{hub.url}/dossiers/HS%200003/complete", json={"procedure": "1.001193"}, headers=portal
    )
    assert bad.status_code == 400
    assert (await client.post(url, json={"procedure": "1.001022"})).status_code == 401
    daily = (await client.get(f"{hub.url}/stats/daily")).json()["totals"]
    assert daily["procedures_completed"] == 1
    assert daily["dossiers_failed"] == 1
    assert daily["vnd_saved"] == 30500
    procs = (await client.get(f"{hub.url}/stats/procedures")).json()["items"]
    by_code = {p["procedure"]: p for p in procs}
    assert by_code["1.001022"]["vnd_saved"] == 30500
    assert by_code["1.001022"]["name"].startswith("Liên thông")
    assert by_code["1.001193"]["failed"] == 1
    got = await client.get(f"{hub.url}/dossiers/HS-0001", headers=hub.admin)
    assert got.json()["procedure"] == "1.001022"
    for node in ("CONS", "OTHER"):  # the node that ran it may read it; another may not
        token = await network.token(client, node)
        read = await client.get(
            f"{hub.url}/dossiers/HS-0001", headers={"Authorization": f"Bearer {token}"}
        )
        assert read.status_code == (200 if node == "CONS" else 403)


async def test_a_node_cannot_raise_the_savings(network: Network, client: httpx.AsyncClient) -> None:
    """The attack: twenty completions from one province, with no exchange behind them."""
    hub = network.hub
    token = await network.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    for i in range(20):
        resp = await client.post(
            f"{hub.url}/dossiers/HS-FAKE-{i}/complete", json={"procedure": "1.001022"}, headers=auth
        )
        assert resp.status_code == 403
        assert resp.json()["code"] == "reporting_not_granted"
    await _run(network, client, "HS-REAL")  # even with real exchanges behind a dossier
    resp = await client.post(
        f"{hub.url}/dossiers/HS-REAL/complete", json={"procedure": "1.001022"}, headers=auth
    )
    assert resp.status_code == 403
    totals = (await client.get(f"{hub.url}/stats/daily")).json()["totals"]
    assert totals["vnd_saved"] == 0
    refused = await query(
        hub,
        "SELECT consumer, status FROM ledger WHERE path = '/dossiers/{dossier_id}/complete'",
    )
    assert len(refused) == 21
    assert {tuple(r) for r in refused} == {("CONS", 403)}


async def test_the_portal_counts_only_dossiers_the_ledger_holds(
    network: Network, client: httpx.AsyncClient
) -> None:
    hub = network.hub
    portal = await _portal(network, client)
    url = f"{hub.url}/dossiers/HS-NONE/complete"
    none = await client.post(url, json={"procedure": "1.001022"}, headers=portal)
    assert none.status_code == 409
    assert none.json()["code"] == "dossier_not_in_ledger"
    # One step of two done: still not a completed procedure.
    auth = {
        "Authorization": f"Bearer {await network.token(client, 'CONS')}",
        "X-Dossier": "HS-HALF",
    }
    await client.get(f"{hub.url}/exchange/PROV/svc/echo", headers=auth)
    half = await client.post(
        f"{hub.url}/dossiers/HS-HALF/complete", json={"procedure": "1.001022"}, headers=portal
    )
    assert half.status_code == 409
    # A failed exchange does not count as a step done.
    auth["X-Dossier"] = "HS-FAILED"
    await client.get(f"{hub.url}/exchange/PROV/svc/echo", headers=auth)
    await client.post(f"{hub.url}/exchange/PROV/svc/status/500", headers=auth)
    failed = await client.post(
        f"{hub.url}/dossiers/HS-FAILED/complete", json={"procedure": "1.001022"}, headers=portal
    )
    assert failed.status_code == 409
    totals = (await client.get(f"{hub.url}/stats/daily")).json()["totals"]
    assert totals["vnd_saved"] == 0


async def test_savings_survive_restart(
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    hub: Hub = await hub_factory(procedures_file=CATALOGUE)
    net = await build_network(hub, provider, client)
    portal = await _portal(net, client)
    auth = {"Authorization": f"Bearer {await net.token(client, 'CONS')}", "X-Dossier": "HS-R"}
    await client.get(f"{hub.url}/exchange/PROV/svc/echo", headers=auth)
    first = await client.post(
        f"{hub.url}/dossiers/HS-R/complete", json={"procedure": "1.004222"}, headers=portal
    )
    assert first.status_code == 201, first.text
    await hub_factory.stop(hub)
    restarted: Hub = await hub_factory(procedures_file=CATALOGUE)
    fresh = (
        await client.post(
            f"{restarted.url}/token",
            data={"grant_type": "client_credentials", **net.credentials["PORTAL"]},
        )
    ).json()["access_token"]
    repeat = await client.post(
        f"{restarted.url}/dossiers/HS-R/complete",
        json={"procedure": "1.004222"},
        headers={"Authorization": f"Bearer {fresh}"},
    )
    assert repeat.status_code == 200
    totals = (await client.get(f"{restarted.url}/stats/daily")).json()["totals"]
    assert totals["vnd_saved"] == 30500
