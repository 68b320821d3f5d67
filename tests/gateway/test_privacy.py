"""Personal data stays out of the ledger, the logs and the metrics.

A run with synthetic citizens (lookups by ID number in the path, births, cards, dossiers
through the gateway), then every 12-digit number found in the hub's ledger database,
in every log line and on every /metrics page is checked against the population: none may
be a citizen's ID number.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from common.hubclient import HubClient
from common.logs import JsonFormatter
from tests.gateway.conftest import Platform
from tests.gateway.test_dossiers import interconnected
from tests.provincial_nodes.conftest import adult_woman

_TWELVE_DIGITS = re.compile(rb"(?<![0-9])[0-9]{12}(?![0-9])")


def citizen_ids_in(blob: bytes, platform: Platform) -> set[str]:
    world = platform.network.world
    found = set()
    for match in _TWELVE_DIGITS.finditer(blob):
        candidate = match.group().decode()
        if world.person(candidate) is not None:
            found.add(candidate)
    return found


def database_dump(path: str) -> bytes:
    """Every row of every table, and the raw write-ahead log, as bytes."""
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [repr(row).encode() for t in tables for row in conn.execute(f"SELECT * FROM {t}")]
    wal = Path(path + "-wal")
    return b"\n".join(rows) + (wal.read_bytes() if wal.exists() else b"")


@pytest.mark.slow
async def test_no_id_number_in_ledger_logs_or_metrics(
    platform: Platform, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    world = platform.network.world
    used: set[str] = set()
    with caplog.at_level(logging.INFO):
        credentials = platform.network.settings.credentials_path
        async with HubClient.from_credentials(credentials, "P48") as node:
            for citizen in world.population.sample(11, 40):
                used.add(citizen.id_number)
                for path in (
                    f"/citizens/{citizen.id_number}",
                    f"/citizens/{citizen.id_number}/household",
                ):
                    resp = await node.call("DANCU", "population", "GET", path)
                    assert resp.status_code == 200
            unknown = "079" + "2" + "99" + "123456"
            await node.call("DANCU", "population", "GET", f"/citizens/{unknown}")
            await node.call("DANCU", "population", "GET", "/citizens/not-a-number-001203004567")
        for name in ("Khôi", "Khang", "Khoa"):
            body = interconnected(platform, child_full_name=f"Nguyễn Minh {name}")
            used.add(body["applicant"]["mother_id"])
            resp = await client.post(
                f"{platform.gateway.url}/dossiers", json=body, headers={"X-API-Key": platform.key}
            )
            assert resp.json()["status"] == "completed"
            birth = next(s for s in resp.json()["steps"] if s["id"] == "birth")
            assert birth["status"] == "ok"
        mother = adult_woman(world)
        used.add(mother.id_number)
        pages = [
            (await client.get(f"{url}/metrics")).content
            for url in (platform.hub.url, platform.nodes.url, platform.gateway.url)
        ]
    assert used, "the run used no ID number"
    dump = database_dump(platform.hub.settings.sqlalchemy_url.split(":///", 1)[1])
    log_lines = "\n".join(JsonFormatter("test").format(r) for r in caplog.records).encode()
    problems: dict[str, Any] = {
        "ledger database": citizen_ids_in(dump, platform),
        "log lines": citizen_ids_in(log_lines, platform),
        "metrics": citizen_ids_in(b"\n".join(pages), platform),
    }
    assert problems == {"ledger database": set(), "log lines": set(), "metrics": set()}
    assert b"/citizens/{id_number}" in dump  # paths are stored as templates
    assert len(caplog.records) > 80  # the exchanges were logged, without the numbers
