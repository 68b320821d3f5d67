"""Gateways as separate processes: limits shared through Redis, and a restart mid-dossier."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import ADMIN
from tests.provincial_nodes.conftest import adult_woman
from tests.support.nodes import network_of
from tests.support.servers import ChildProcess, NgspProcess, free_port, wait_http
from tests.support.timing import until


def start_gateway(
    tmp_path: Path, name: str, hub: Any, nodes: Any, **env: str
) -> tuple[ChildProcess, str]:
    port = free_port()
    child = NgspProcess(
        "gateway",
        "--port",
        str(port),
        "--log-level",
        "warning",
        env={
            "NGSP_GATEWAY_DATA_DIR": str(tmp_path / "gw"),
            "NGSP_GATEWAY_HUB_URL": hub.url,
            "NGSP_GATEWAY_CREDENTIALS_FILE": str(network_of(nodes).settings.credentials_path),
            "NGSP_GATEWAY_ADMIN_TOKEN": ADMIN,
            **env,
        },
        log=tmp_path / f"{name}.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/readyz", proc=child.proc, timeout=60)
    return child, url


@pytest.mark.slow
async def test_limits_are_exact_across_two_gateways_through_redis(
    tmp_path: Path, network_factory: Any, redis_url: str, redis_prefix: str
) -> None:
    hub, nodes = network_factory()
    env = {"NGSP_GATEWAY_REDIS_URL": redis_url, "NGSP_GATEWAY_REDIS_PREFIX": redis_prefix}
    first, url_a = start_gateway(tmp_path, "a", hub, nodes, **env)
    second, url_b = start_gateway(tmp_path, "b", hub, nodes, **env)
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            ready = (await client.get(f"{url_a}/readyz")).json()
            assert ready["limits"] == "redis"
            admin = {"Authorization": f"Bearer {ADMIN}"}
            created = await client.post(
                f"{url_a}/admin/keys",
                json={"name": "shared", "rate_limit_per_minute": 25},
                headers=admin,
            )
            key = created.json()["key"]
            # Each replica answers a first request (another key's) before the race, so
            # that neither starts it cold while the other serves the whole limit.
            other = await client.post(f"{url_a}/admin/keys", json={"name": "w"}, headers=admin)
            for url in (url_a, url_b):
                warm = await client.get(
                    f"{url}/dossiers", headers={"X-API-Key": other.json()["key"]}
                )
                assert warm.status_code == 200
            answers = await asyncio.gather(
                *(
                    client.get(f"{url}/dossiers", headers={"X-API-Key": key})
                    for url in [url_a, url_b] * 40
                )
            )
        statuses = [r.status_code for r in answers]
        assert statuses.count(200) == 25, statuses
        assert statuses.count(429) == 55
        served_by_b = sum(1 for r in answers[1::2] if r.status_code == 200)
        assert 0 < served_by_b < 25  # both replicas admitted some: one shared count
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow
async def test_restart_resumes_or_fails_unfinished_dossiers(
    tmp_path: Path, network_factory: Any
) -> None:
    hub, nodes = network_factory(provider_timeout_seconds=10.0)
    network = network_of(nodes)
    gateway, url = start_gateway(tmp_path, "gw1", hub, nodes)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(timeout=30) as client:
        key = (await client.post(f"{url}/admin/keys", json={"name": "k"}, headers=admin)).json()[
            "key"
        ]
        headers = {"X-API-Key": key, "Prefer": "respond-async"}
        control = {"Authorization": f"Bearer {network.admin_token}"}
        # Providers slow enough that the gateway is killed in the middle of a step.
        for node in ("HOTICH", "DATDAI"):
            await client.put(
                f"{nodes.url}/admin/faults/{node}",
                headers=control,
                json={"latency": {"distribution": "fixed", "ms": 3000}},
            )
        mother = adult_woman(network.world)
        birth = await client.post(
            f"{url}/dossiers",
            headers=headers,
            json={
                "procedure": "1.001193",
                "province": "P79",
                "applicant": {
                    "mother_id": mother.id_number,
                    "child_full_name": "Trần Thu Hà",
                    "child_gender": "female",
                    "child_date_of_birth": (dt.date.today() - dt.timedelta(days=3)).isoformat(),
                },
            },
        )
        land = await client.post(
            f"{url}/dossiers",
            headers=headers,
            json={
                "procedure": "1.003011",
                "province": "P79",
                "applicant": {"parcel_id": "79-010-0100"},
            },
        )
        assert (birth.status_code, land.status_code) == (202, 202)

        async def step_started(dossier: str, step: str) -> bool:
            body = (await client.get(f"{url}/dossiers/{dossier}", headers=headers)).json()
            return any(s["id"] == step and s["status"] == "started" for s in body["steps"])

        async def both_started() -> bool:
            return await step_started(birth.json()["id"], "birth") and await step_started(
                land.json()["id"], "parcel"
            )

        await until(both_started, within=5, interval=0.02, what="both steps starting")
        gateway.kill()  # SIGKILL: no chance to finish either step
        for node in ("HOTICH", "DATDAI"):
            await client.delete(f"{nodes.url}/admin/faults/{node}", headers=control)
        gateway, url = start_gateway(tmp_path, "gw2", hub, nodes)
        try:
            final: dict[str, Any] = {}

            async def both_finished() -> bool:
                for name, resp in (("birth", birth), ("land", land)):
                    got = await client.get(f"{url}/dossiers/{resp.json()['id']}", headers=headers)
                    final[name] = got.json()
                return all(d["status"] in ("completed", "failed") for d in final.values())

            await until(both_finished, within=30, interval=0.02, what="both dossiers finishing")
            # A write whose outcome is unknown is not run twice: the dossier fails, saying why.
            assert final["birth"]["status"] == "failed"
            assert "interrupted" in final["birth"]["reason"]
            # A read is simply run again.
            assert final["land"]["status"] == "completed"
            assert final["land"]["saving_vnd"] == 30500
        finally:
            gateway.stop()
