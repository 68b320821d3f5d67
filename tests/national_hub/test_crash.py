"""SIGKILL under load: every exchange acknowledged with a 2xx survives in the ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml

from common.db import Database
from national_hub.ledger.verify import verify_ledger
from tests.national_hub.conftest import query
from tests.support.provider import create_provider
from tests.support.servers import ChildProcess, NgspProcess, free_port, serve, wait_http

SECRET = "crash-test-secret-0123456789abcdef"


def registry_file(path: Path, provider_url: str) -> Path:
    document = {
        "nodes": [
            {
                "code": "PROV",
                "name": "Nguồn",
                "kind": "national_database",
                "base_url": provider_url,
                "services": [{"code": "svc", "base_path": "/svc"}],
            },
            {
                "code": "CONS",
                "name": "Tỉnh",
                "kind": "province",
                "base_url": provider_url,
                "credentials": [{"client_id": "cons-crash", "client_secret": SECRET}],
            },
        ],
        "grants": [{"consumer": "CONS", "provider": "PROV", "service": "svc"}],
    }
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return path


def start_hub(tmp_path: Path, database_url: str, port: int, registry: Path) -> ChildProcess:
    env = {
        "NGSP_HUB_DATABASE_URL": database_url,
        "NGSP_HUB_DATA_DIR": str(tmp_path / "data"),
        "NGSP_HUB_ADMIN_TOKEN": "crash-admin-token-0123456789abcdef",
        "NGSP_HUB_SIGNING_KEY": "crash-signing-key-0123456789abcdef",
    }
    child = NgspProcess(
        "hub",
        "--port",
        str(port),
        "--registry",
        str(registry),
        "--log-level",
        "warning",
        env=env,
        log=tmp_path / "hub.log",
    ).start()
    wait_http(f"http://127.0.0.1:{port}/readyz", proc=child.proc)
    return child


async def load_until_killed(url: str, hub: ChildProcess, *, kill_after: float) -> set[str]:
    """Send exchanges from 32 workers; SIGKILL the hub midway; return the acknowledged ids."""
    acked: set[str] = set()
    stop = asyncio.Event()
    async with httpx.AsyncClient(timeout=5.0) as client:
        token = (
            await client.post(
                f"{url}/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": "cons-crash",
                    "client_secret": SECRET,
                },
            )
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}

        async def worker() -> None:
            sent = 0
            while not stop.is_set() and sent < 2000:
                sent += 1
                try:
                    resp = await client.post(
                        f"{url}/exchange/PROV/svc/echo", content=b"{}", headers=auth
                    )
                except httpx.HTTPError:
                    await asyncio.sleep(0.01)
                    continue
                if 200 <= resp.status_code < 300:
                    acked.add(resp.headers["x-transaction-id"])

        tasks = [asyncio.create_task(worker()) for _ in range(32)]
        await asyncio.sleep(kill_after)
        hub.kill()
        # Each worker finishes the request it has in flight (answered before the kill, or
        # failed by it) and stops.
        stop.set()
        await asyncio.gather(*tasks)
    return acked


@pytest.mark.slow
async def test_ten_sigkills_lose_no_acknowledged_exchange(
    tmp_path: Path, database_url: str
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serve(create_provider()) as provider:
        registry = registry_file(tmp_path / "registry.yaml", provider.url)
        total_acked: set[str] = set()
        for round_no in range(10):
            hub = start_hub(tmp_path, database_url, port, registry)
            try:
                # Kill at a different moment each round, relative to the group commits.
                acked = await load_until_killed(url, hub, kill_after=0.6 + 0.113 * round_no)
            finally:
                hub.kill()
            assert len(acked) > 20, f"round {round_no}: too little load to mean anything"
            total_acked |= acked
        hub = start_hub(tmp_path, database_url, port, registry)
        try:
            rows = await query(database_url, "SELECT id FROM ledger")
            stored = {r[0] for r in rows}
            missing = total_acked - stored
            assert not missing, (
                f"{len(missing)} acknowledged exchanges lost, e.g. {sorted(missing)[:3]}"
            )
            async with httpx.AsyncClient() as client:
                daily = (await client.get(f"{url}/stats/daily")).json()["totals"]
            assert daily["transactions"] == len(stored)
            # Every chain intact, and the rollups agree with the rows exactly.
            db = Database.connect(database_url)
            try:
                report = await verify_ledger(db)
            finally:
                await db.dispose()
            assert report.ok, report.findings[:5]
            assert report.chains == 10  # one per hub start that wrote rows
        finally:
            hub.stop()
