"""Reports from the ledger and rollups; savings counted once per completed dossier."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import httpx

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
    await client.get(f"{hub.url}/exchange/PROV/svc/echo")  # unauthenticated
    daily = (await client.get(f"{hub.url}/stats/daily")).json()
    rows = await query(hub, "SELECT outcome, count(*) FROM ledger GROUP BY outcome")
    counts = dict(rows)
    total = sum(counts.values())
    assert daily["totals"]["transactions"] == total == 8
    assert daily["totals"]["successes"] == counts["ok"] == 5
    assert daily["totals"]["failures"] == 3
    nodes = {i["node"]: i for i in (await client.get(f"{hub.url}/stats/nodes")).json()["items"]}
    assert nodes["CONS"]["as_consumer"] == {"transactions": 7, "successes": 5, "failures": 2}
    assert nodes["PROV"]["as_provider"]["transactions"] == 7
    day = daily["items"][0]["day"]
    ranged = (
        await client.get(f"{hub.url}/stats/daily", params={"since": day, "until": day})
    ).json()
    assert ranged["totals"]["transactions"] == 8
    empty = (
        await client.get(
            f"{hub.url}/stats/daily", params={"since": "2019-01-01", "until": "2019-01-31"}
        )
    ).json()
    assert empty == {"items": [], "totals": None}
    assert (await client.get(f"{hub.url}/stats/daily", params={"since": "x"})).status_code == 400


async def test_dossier_saving_counted_once(network: Network, client: httpx.AsyncClient) -> None:
    hub = network.hub
    token = await network.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{hub.url}/dossiers/HS-0001/complete"
    first = await client.post(url, json={"procedure": "1.001022"}, headers=auth)
    assert first.status_code == 201, first.text
    assert first.json()["saving_vnd"] == 30500
    assert first.json()["counted_now"] is True
    again = await client.post(url, json={"procedure": "1.001022"}, headers=auth)
    assert again.status_code == 200
    assert again.json()["counted_now"] is False
    conflict = await client.post(url, json={"procedure": "1.001193"}, headers=auth)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "conflict"
    failed = await client.post(
        f"{hub.url}/dossiers/HS-0002/complete",
        json={"procedure": "1.001193", "outcome": "failed"},
        headers=auth,
    )
    assert failed.status_code == 201
    assert failed.json()["saving_vnd"] == 0
    unknown = await client.post(
        f"{hub.url}/dossiers/HS-0003/complete", json={"procedure": "9.999999"}, headers=auth
    )
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "unknown_procedure"
    bad = await client.post(
        f"{hub.url}/dossiers/HS%200003/complete", json={"procedure": "1.001193"}, headers=auth
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
    other = await network.token(client, "OTHER")
    assert (
        await client.get(
            f"{hub.url}/dossiers/HS-0001", headers={"Authorization": f"Bearer {other}"}
        )
    ).status_code == 403


async def test_savings_survive_restart(
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    hub: Hub = await hub_factory()
    net = await build_network(hub, provider, client)
    token = await net.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    await client.post(
        f"{hub.url}/dossiers/HS-R/complete", json={"procedure": "1.004222"}, headers=auth
    )
    await hub_factory.stop(hub)
    restarted: Hub = await hub_factory()
    fresh = (
        await client.post(
            f"{restarted.url}/token",
            data={"grant_type": "client_credentials", **net.credentials["CONS"]},
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
