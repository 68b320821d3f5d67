"""Dossiers end to end: a real gateway, a real hub and the real simulated network."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx

from tests.gateway.conftest import ADMIN, Platform
from tests.provincial_nodes.conftest import adult_woman
from tests.support.hub import query
from tests.support.timing import until


def interconnected(platform: Platform, **extra: Any) -> dict[str, Any]:
    mother = adult_woman(platform.network.world)
    born = (dt.date.today() - dt.timedelta(days=10)).isoformat()
    return {
        "procedure": "1.001022",
        "province": "P01",
        "applicant": {
            "mother_id": mother.id_number,
            "child_full_name": "Nguyễn Minh Khôi",
            "child_gender": "male",
            "child_date_of_birth": born,
            "address": "Số 1 Tràng Tiền, phường Hoàn Kiếm",
            **extra,
        },
    }


async def ledger_count(platform: Platform) -> int:
    return int((await query(platform.hub, "SELECT count(*) FROM ledger"))[0][0])


async def test_multi_agency_dossier_counts_one_saving(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    headers = {"X-API-Key": platform.key}
    resp = await client.post(
        f"{platform.gateway.url}/dossiers", json=interconnected(platform), headers=headers
    )
    assert resp.status_code == 201, resp.text
    dossier = resp.json()
    assert resp.headers["location"] == f"/dossiers/{dossier['id']}"
    assert dossier["status"] == "completed"
    assert dossier["saving_vnd"] == 30500
    assert dossier["reported_to_hub"] is True
    steps = dossier["steps"]
    assert [(s["provider"], s["service"]) for s in steps] == [
        ("DANCU", "population"),
        ("HOTICH", "civil-status"),
        ("P01", "one-stop"),
        ("BAOHIEM", "health-insurance"),
    ]
    assert all(s["status"] == "ok" and s["transaction_id"] for s in steps)
    rows = await query(
        platform.hub,
        "SELECT id, consumer, provider, service, procedure, outcome FROM ledger "
        "WHERE dossier = :d ORDER BY id",
        d=dossier["id"],
    )
    assert [r[0] for r in rows] == [s["transaction_id"] for s in steps]
    assert {(r[1], r[4], r[5]) for r in rows} == {("P01", "1.001022", "ok")}
    totals = (await client.get(f"{platform.hub.url}/stats/daily")).json()["totals"]
    assert totals["procedures_completed"] == 1
    assert totals["vnd_saved"] == 30500
    got = await client.get(f"{platform.gateway.url}/dossiers/{dossier['id']}", headers=headers)
    assert got.json()["status"] == "completed"
    # Another key does not see it.
    other = await platform.new_key(client)
    hidden = await client.get(
        f"{platform.gateway.url}/dossiers/{dossier['id']}", headers={"X-API-Key": other}
    )
    assert hidden.status_code == 404


async def test_idempotent_retry_runs_nothing_again(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    headers = {"X-API-Key": platform.key, "Idempotency-Key": "retry-1"}
    body = interconnected(platform)
    first = await client.post(f"{platform.gateway.url}/dossiers", json=body, headers=headers)
    assert first.status_code == 201
    before = await ledger_count(platform)
    again = await asyncio.gather(
        *(
            client.post(f"{platform.gateway.url}/dossiers", json=body, headers=headers)
            for _ in range(3)
        )
    )
    assert {r.status_code for r in again} == {200}
    assert {r.json()["id"] for r in again} == {first.json()["id"]}
    assert await ledger_count(platform) == before
    changed = await client.post(
        f"{platform.gateway.url}/dossiers",
        json=interconnected(platform, address="Số 2 Tràng Tiền"),
        headers=headers,
    )
    assert changed.status_code == 422
    assert changed.json()["code"] == "idempotency_key_reused"
    totals = (await client.get(f"{platform.hub.url}/stats/daily")).json()["totals"]
    assert totals["vnd_saved"] == 30500


async def test_provider_down_fails_the_dossier_without_saving(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await platform.fault(client, "BAOHIEM", {"outage": True})
    resp = await client.post(
        f"{platform.gateway.url}/dossiers",
        json=interconnected(platform),
        headers={"X-API-Key": platform.key},
    )
    assert resp.status_code == 201
    dossier = resp.json()
    assert dossier["status"] == "failed"
    assert dossier["saving_vnd"] == 0
    assert "card" in dossier["reason"]
    assert "provider_unavailable" in dossier["reason"]
    card = dossier["steps"][-1]
    assert (card["status"], card["http_status"], card["outcome"]) == ("failed", 503, "unavailable")
    totals = (await client.get(f"{platform.hub.url}/stats/daily")).json()["totals"]
    assert totals["vnd_saved"] == 0
    assert totals["dossiers_failed"] == 1


async def test_bad_input_runs_no_exchange(platform: Platform, client: httpx.AsyncClient) -> None:
    headers = {"X-API-Key": platform.key}
    url = f"{platform.gateway.url}/dossiers"
    good = interconnected(platform)
    cases = [
        ({**good, "procedure": "9.999999"}, 422, "unknown_procedure"),
        ({**good, "province": "P00"}, 422, "unknown_province"),
        (
            {
                **good,
                "procedure": "1.003011",
                "province": "P02",
                "applicant": {"parcel_id": "02-001-0001"},
            },
            422,
            "procedure_not_offered",
        ),
        (
            {**good, "applicant": {**good["applicant"], "mother_id": "0011900123"}},
            400,
            "invalid_applicant",
        ),
        (
            {**good, "applicant": {**good["applicant"], "child_gender": "x"}},
            400,
            "invalid_applicant",
        ),
        ({"procedure": "1.001022"}, 400, "invalid_request"),
    ]
    for body, status, code in cases:
        resp = await client.post(url, json=body, headers=headers)
        assert resp.status_code == status, (code, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["code"] == code
    assert await ledger_count(platform) == 0
    unknown = await client.post(url, json=good, headers={"X-API-Key": "ngsp_nope"})
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "invalid_api_key"
    assert (await client.post(url, json=good)).status_code == 401


async def test_rate_limit_in_process(platform: Platform, client: httpx.AsyncClient) -> None:
    key = await platform.new_key(client, rate_limit_per_minute=3)
    url = f"{platform.gateway.url}/dossiers"
    answers = [await client.get(url, headers={"X-API-Key": key}) for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    assert [r.headers["ratelimit-remaining"] for r in answers[:3]] == ["2", "1", "0"]
    refused = answers[3]
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["ratelimit-limit"] == "3"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    quota = await platform.new_key(client, daily_quota=2)
    answers = [await client.get(url, headers={"X-API-Key": quota}) for _ in range(3)]
    assert answers[2].status_code == 429
    assert answers[2].json()["code"] == "quota_exceeded"


async def test_async_dossier_and_key_admin(platform: Platform, client: httpx.AsyncClient) -> None:
    headers = {"X-API-Key": platform.key, "Prefer": "respond-async"}
    resp = await client.post(
        f"{platform.gateway.url}/dossiers", json=interconnected(platform), headers=headers
    )
    assert resp.status_code == 202
    location = platform.gateway.url + resp.headers["location"]
    state: dict[str, Any] = {}

    async def finished() -> bool:
        state.update((await client.get(location, headers={"X-API-Key": platform.key})).json())
        return state["status"] in ("completed", "failed")

    await until(finished, interval=0.02, what="the dossier finishing")
    assert state["status"] == "completed"
    admin = {"Authorization": f"Bearer {ADMIN}"}
    keys = (await client.get(f"{platform.gateway.url}/admin/keys", headers=admin)).json()
    assert keys["count"] >= 1
    assert all("key" not in k for k in keys["items"])
    key_id = next(k["id"] for k in keys["items"] if k["prefix"] == platform.key[:12])
    revoked = await client.delete(f"{platform.gateway.url}/admin/keys/{key_id}", headers=admin)
    assert revoked.status_code == 204
    refused = await client.get(location, headers={"X-API-Key": platform.key})
    assert refused.status_code == 401
    node = await client.get(f"{platform.gateway.url}/admin/keys")
    assert node.status_code == 401


async def test_procedures_and_level4_statistics(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    procedures = (await client.get(f"{platform.gateway.url}/procedures")).json()
    assert procedures["count"] >= 6
    codes = {p["code"] for p in procedures["items"]}
    assert {"1.001193", "1.001022", "1.004222", "2.001610", "1.003011", "1.002617"} <= codes
    await client.post(
        f"{platform.gateway.url}/dossiers",
        json=interconnected(platform),
        headers={"X-API-Key": platform.key},
    )
    report = (await client.get(f"{platform.gateway.url}/stats/level4")).json()
    assert report["national_level4_share"] == 0.1591
    assert len(report["province_ranking"]) == 63
    assert report["province_ranking"][0]["rank"] == 1
    bodies = {b["code"]: b for b in report["bodies"]}
    assert bodies["P01"]["dossiers_submitted"] == 1
    assert bodies["P01"]["online_completion_share"] == 1.0
    assert bodies["BTP"]["dossiers_submitted"] == 1  # the procedure's authority
    bad = await client.get(f"{platform.gateway.url}/stats/level4", params={"month": "2026-13"})
    assert bad.status_code == 400
