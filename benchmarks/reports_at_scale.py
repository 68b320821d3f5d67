"""Reports over a large ledger: do statistics and pages stay fast at 10 million rows?

    python benchmarks/reports_at_scale.py [--rows 10000000] [--database sqlite|postgresql]

Fills a fresh hub database through the hub's own ledger writer (rows and rollups in the
same group commits, a year of synthetic exchanges between the 2020 roster's nodes), then
starts the hub on it and times each report (median of 7 calls, after one warm-up).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from uuid_utils import uuid7

from common.db import Database
from national_hub.ledger.row import LedgerRow
from national_hub.ledger.writer import LedgerWriter
from national_hub.migrations import upgrade as upgrade_hub_schema

PG_ADMIN = os.environ.get("NGSP_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
SERVICES = [
    ("DANCU", "population", "/citizens/{id_number}"),
    ("HOTICH", "civil-status", "/births"),
    ("BAOHIEM", "health-insurance", "/cards"),
    ("DATDAI", "land", "/parcels/{parcel_id}"),
    ("DOANHNGHIEP", "business-registry", "/enterprises/{tax_code}"),
]
OUTCOMES = ["ok"] * 95 + ["client_error"] * 3 + ["provider_error", "timeout"]
CONSUMERS = [f"P{n:02d}" for n in (1, 79, 31, 48, 92, 74, 75, 26, 22, 46)] + ["BCA", "BTP"]


async def fill(url: str, rows: int) -> float:
    db = Database.connect(url)
    await upgrade_hub_schema(db)
    writer = LedgerWriter.for_database(db.writer, db.url, max_group=5000)
    await writer.start()
    rng = random.Random(1)
    year_us = 365 * 86_400 * 1_000_000
    start_us = (time.time_ns() // 1000) - year_us
    started = time.perf_counter()
    batch = 20_000
    for done in range(0, rows, batch):
        futures = []
        for i in range(done, min(done + batch, rows)):
            at = start_us + year_us * i // rows
            provider, service, path = rng.choice(SERVICES)
            outcome = rng.choice(OUTCOMES)
            futures.append(
                writer.submit(
                    LedgerRow(
                        id=str(uuid7(nanoseconds=at * 1000)),
                        consumer=rng.choice(CONSUMERS),
                        provider=provider,
                        service=service,
                        procedure=None,
                        dossier=None,
                        method="GET",
                        path=path,
                        status=200 if outcome == "ok" else 500,
                        outcome=outcome,
                        requested_at=at,
                        forwarded_at=at + 150,
                        provider_responded_at=at + 900,
                        responded_at=at + 950,
                        request_bytes=0,
                        response_bytes=420,
                        request_sha256=None,
                    )
                )
            )
        await asyncio.gather(*futures)
        if (done // batch) % 50 == 0:
            print(f"  {done + len(futures):,} rows", flush=True)
    await writer.stop()
    await db.dispose()
    return time.perf_counter() - started


def time_calls(
    client: httpx.Client, url: str, params: dict[str, str], headers: dict[str, str]
) -> float:
    client.get(url, params=params, headers=headers).raise_for_status()
    samples = []
    for _ in range(7):
        t = time.perf_counter()
        client.get(url, params=params, headers=headers).raise_for_status()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ngsp-reports-"))
    pg_db = None
    if args.database == "postgresql":
        pg_db = f"ngsp_reports_{os.getpid()}"
        subprocess.run(["psql", PG_ADMIN, "-qc", f'CREATE DATABASE "{pg_db}"'], check=True)
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        url = f"{base}/{pg_db}"
    else:
        url = f"sqlite+aiosqlite:///{work / 'hub.db'}"
    hub = None
    try:
        print(f"filling {args.rows:,} ledger rows ({args.database}) ...", flush=True)
        seconds = asyncio.run(fill(url, args.rows))
        print(f"filled in {seconds:.0f} s ({args.rows / seconds:,.0f} rows/s through the writer)")
        port = 18_777
        env = {
            **os.environ,
            "NGSP_HUB_DATABASE_URL": url,
            "NGSP_HUB_DATA_DIR": str(work),
            "NGSP_HUB_ADMIN_TOKEN": "reports-admin-token-0123456789abcdef",
            "NGSP_HUB_SIGNING_KEY": "reports-signing-key-0123456789abcdef",
        }
        hub = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ngsp",
                "hub",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        base_url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        admin = {"Authorization": "Bearer reports-admin-token-0123456789abcdef"}
        month_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30 * 86400))
        week_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 37 * 86400))
        cases = [
            ("GET /stats/daily (a year)", "/stats/daily", {}, {}),
            ("GET /stats/nodes (a year)", "/stats/nodes", {}, {}),
            ("GET /stats/procedures", "/stats/procedures", {}, {}),
            ("GET /transactions (newest 100)", "/transactions", {"limit": "100"}, admin),
            (
                "GET /transactions?consumer=P48 (100)",
                "/transactions",
                {"consumer": "P48", "limit": "100"},
                admin,
            ),
            (
                "GET /transactions?outcome=timeout (100)",
                "/transactions",
                {"outcome": "timeout", "limit": "100"},
                admin,
            ),
            (
                "GET /transactions, a week a month ago (100)",
                "/transactions",
                {"since": week_ago, "until": month_ago, "limit": "100"},
                admin,
            ),
        ]
        print(f"\n{args.rows:,} ledger rows, {args.database}; median of 7 calls:")
        with httpx.Client(base_url=base_url, timeout=120) as client:
            for label, path, params, headers in cases:
                print(f"  {label:46s} {time_calls(client, path, params, headers):8.1f} ms")
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait(timeout=30)
        if pg_db:
            subprocess.run(
                ["psql", PG_ADMIN, "-qc", f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'],
                check=False,
            )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
