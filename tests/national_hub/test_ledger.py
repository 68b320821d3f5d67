"""The ledger writer and the schema, against real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, inspect, select, text

from common.db import Database, run_migrations
from national_hub.ledger import writer as ledger_writer
from national_hub.ledger.row import LedgerRow
from national_hub.ledger.verify import verify_ledger
from national_hub.ledger.writer import DossierReport, LedgerUnavailable, LedgerWriter
from national_hub.migrations import LOCATION as MIGRATIONS
from national_hub.migrations import upgrade as upgrade_hub_schema
from national_hub.models import Base, DailyStats, LedgerEntry, NodeDailyStats

OUTCOMES = ["ok", "ok", "ok", "client_error", "provider_error", "timeout"]


def make_row(i: int, outcome: str = "ok") -> LedgerRow:
    now = time.time_ns() // 1000
    return LedgerRow(
        id=f"01900000-0000-7000-8000-{i:012d}",
        consumer=f"C{i % 3}",
        provider="DANCU",
        service="citizens",
        procedure=None,
        dossier=None,
        method="GET",
        path="/citizens/{id}",
        status=200,
        outcome=outcome,
        requested_at=now,
        forwarded_at=now,
        provider_responded_at=now,
        responded_at=now,
        request_bytes=10,
        response_bytes=100,
        request_sha256=None,
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.connect(database_url)
    await upgrade_hub_schema(database)
    yield database
    await database.dispose()


async def test_concurrent_rows_group_committed(db: Database) -> None:
    writer = LedgerWriter.for_database(db.writer, db.url, max_group=100)
    await writer.start()
    rows = [make_row(i, OUTCOMES[i % len(OUTCOMES)]) for i in range(1000)]
    await asyncio.gather(*(writer.record(r) for r in rows))
    assert writer.stats.rows == 1000
    assert writer.stats.groups < 1000  # rows shared commits
    await writer.stop()
    async with db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(LedgerEntry)) == 1000
        daily = (await s.scalars(select(DailyStats))).all()
        assert sum(d.transactions for d in daily) == 1000
        assert sum(d.successes for d in daily) == sum(r.outcome == "ok" for r in rows)
        ledger_ok = await s.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.outcome == "ok")
        )
        assert sum(d.successes for d in daily) == ledger_ok
        per_node = (
            await s.execute(
                select(NodeDailyStats.node, func.sum(NodeDailyStats.transactions))
                .where(NodeDailyStats.role == "consumer")
                .group_by(NodeDailyStats.node)
            )
        ).all()
        assert dict(per_node) == {"C0": 334, "C1": 333, "C2": 333}


async def test_groups_of_every_size_store_every_row_as_sent(db: Database) -> None:
    """Groups of 1 to 700 rows (SQLite writes a group as a few multi-row inserts by its
    size in binary): every row is stored once with its fields, the chain verifies."""
    writer = LedgerWriter.for_database(db.writer, db.url, max_group=2000)
    await writer.start()
    rows: list[LedgerRow] = []
    for size in (1, 2, 3, 255, 256, 257, 511, 700):
        group = [make_row(len(rows) + i, OUTCOMES[i % len(OUTCOMES)]) for i in range(size)]
        for i, row in enumerate(group):
            row.response_bytes = len(rows) + i
        rows += group
        await asyncio.gather(*(writer.record(r) for r in group))
    assert writer.stats.groups == 8
    await writer.stop()
    async with db.read_session() as s:
        stored = (
            await s.execute(
                select(LedgerEntry.id, LedgerEntry.seq, LedgerEntry.outcome, LedgerEntry.hash,
                       LedgerEntry.response_bytes)
            )
        ).all()  # fmt: skip
    assert sorted(stored) == sorted(
        (r.id, r.seq, r.outcome, r.hash, r.response_bytes) for r in rows
    )
    assert sorted(r.seq for r in rows) == list(range(1, len(rows) + 1))
    report = await verify_ledger(db)
    assert report.ok, report.findings
    assert report.rows == len(rows)


async def test_dossier_reports_are_idempotent(db: Database) -> None:
    writer = LedgerWriter.for_database(db.writer, db.url)
    await writer.start()
    report = DossierReport("D1", "P01", "1.001193", "completed", 30500, time.time_ns() // 1000)
    results = await asyncio.gather(*(writer.report_dossier(report) for _ in range(5)))
    assert [r.created for r in results].count(True) == 1
    await writer.stop()
    async with db.read_session() as s:
        daily = (await s.scalars(select(DailyStats))).all()
        assert sum(d.vnd_saved for d in daily) == 30500
        assert sum(d.procedures_completed for d in daily) == 1


async def test_failed_commit_is_not_acknowledged(db: Database) -> None:
    writer = LedgerWriter.for_database(db.writer, db.url)
    await writer.start()
    await writer.record(make_row(1))
    with pytest.raises(LedgerUnavailable):
        await writer.record(make_row(1))  # duplicate id: the commit fails twice
    await writer.record(make_row(2))  # the writer keeps going
    await writer.stop()
    with pytest.raises(LedgerUnavailable):
        writer.submit(make_row(3))


async def test_a_group_failing_in_its_last_statement_leaves_nothing(db: Database) -> None:
    """A group of 301 rows (SQLite: inserts of 256, 32, 8, 4 and 1) whose last row repeats
    a stored id: none of the group is stored, no waiter is told it was, no rollup moved."""
    writer = LedgerWriter.for_database(db.writer, db.url)
    await writer.start()
    await writer.record(make_row(0))
    group = [make_row(i) for i in range(1, 301)] + [make_row(0)]
    results = await asyncio.gather(*(writer.record(r) for r in group), return_exceptions=True)
    assert all(isinstance(r, LedgerUnavailable) for r in results)
    await writer.record(make_row(1000))  # the writer and its chain go on
    await writer.stop()
    async with db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(LedgerEntry)) == 2
        daily = (await s.scalars(select(DailyStats))).all()
        assert sum(d.transactions for d in daily) == 2
    report = await verify_ledger(db)
    assert report.ok, report.findings


async def test_an_older_sqlite_s_parameter_limit_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite before 3.32 takes 999 parameters a statement: inserts of at most 32 rows."""
    connect = sqlite3.connect

    def limited(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
        return conn

    db = Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    await upgrade_hub_schema(db)
    monkeypatch.setattr(ledger_writer.sqlite3, "connect", limited)
    writer = LedgerWriter.for_database(db.writer, db.url)
    await writer.start()
    await asyncio.gather(*(writer.record(make_row(i)) for i in range(300)))
    await writer.stop()
    async with db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(LedgerEntry)) == 300
    await db.dispose()


def _head() -> str:
    """The newest revision in the hub's migrations folder."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _diff(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


async def test_migrations_match_models_and_downgrade(database_url: str) -> None:
    database = Database.connect(database_url)
    try:
        await upgrade_hub_schema(database)
        async with database.writer.connect() as conn:
            assert await conn.run_sync(_diff) == []
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"nodes", "services", "grants", "credentials", "ledger", "dossiers"} <= tables
        async with database.writer.connect() as conn:
            await conn.run_sync(run_migrations, database.url, "base", True, MIGRATIONS)
            await conn.commit()
            left = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert left <= {"alembic_version"}
        await upgrade_hub_schema(database)
        async with database.reader.connect() as conn:
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        assert version == _head()
    finally:
        await database.dispose()
