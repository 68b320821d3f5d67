"""The ledger is tamper-evident: each kind of change made behind the hub's back is found."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from common.db import Database
from national_hub.ledger.chain import CURRENT
from national_hub.ledger.verify import verify_ledger
from national_hub.ledger.writer import DossierReport, LedgerWriter
from national_hub.migrations import upgrade as upgrade_hub_schema
from tests.national_hub.test_ledger import make_row


@pytest.fixture
async def filled(database_url: str) -> AsyncIterator[Database]:
    """A ledger of 60 rows in two chains (two writers, as after a restart), and one dossier."""
    db = Database.connect(database_url)
    await upgrade_hub_schema(db)
    for start in (0, 30):
        writer = LedgerWriter.for_database(db.writer, db.url, max_group=7)
        await writer.start()
        await asyncio.gather(*(writer.record(make_row(i)) for i in range(start, start + 30)))
        if start == 0:
            report = DossierReport(
                "D1", "P01", "1.001193", "completed", 30500, time.time_ns() // 1000
            )
            await writer.report_dossier(report)
        await writer.stop()
    yield db
    await db.dispose()


async def tamper(db: Database, sql: str, **params: object) -> None:
    async with db.writer.begin() as conn:
        await conn.execute(text(sql), params)


async def row_id(db: Database, seq: int, *, last_chain: bool = False) -> str:
    order = "DESC" if last_chain else "ASC"
    async with db.reader.connect() as conn:
        chain = (
            (await conn.execute(text(f"SELECT chain FROM ledger_chains ORDER BY chain {order}")))
            .scalars()
            .first()
        )
        found = (
            await conn.execute(
                text("SELECT id FROM ledger WHERE chain = :c AND seq = :s"), {"c": chain, "s": seq}
            )
        ).scalar_one()
    return str(found)


async def test_intact_ledger_verifies(filled: Database) -> None:
    report = await verify_ledger(filled)
    assert report.ok, report.findings
    assert (report.rows, report.chains) == (60, 2)
    assert report.rollups_checked


async def test_changed_row_is_found(filled: Database) -> None:
    target = await row_id(filled, 12)
    await tamper(filled, "UPDATE ledger SET status = 500, outcome = 'ok' WHERE id = :id", id=target)
    report = await verify_ledger(filled, rollups=False)
    first = report.findings[0]
    assert (first.kind, first.row, first.seq) == ("changed", target, 12)


async def test_changed_row_with_recomputed_hash_breaks_the_next(filled: Database) -> None:
    target = await row_id(filled, 5)
    async with filled.reader.connect() as conn:
        rows = await conn.execute(text("SELECT * FROM ledger WHERE id = :id"), {"id": target})
        row = dict(rows.one()._mapping)
        previous = (
            await conn.execute(
                text("SELECT hash FROM ledger WHERE chain = :c AND seq = 4"), {"c": row["chain"]}
            )
        ).scalar_one()
    row["consumer"] = "EVIL"
    forged = CURRENT.hash_mapping(previous, row)  # the recipe new chains are written with
    await tamper(
        filled, "UPDATE ledger SET consumer = 'EVIL', hash = :h WHERE id = :id", h=forged, id=target
    )
    report = await verify_ledger(filled, rollups=False)
    assert report.findings[0].kind == "changed"
    assert report.findings[0].seq == 6  # the forgery breaks the link to the next row


async def test_deleted_rows_are_found(filled: Database) -> None:
    middle = await row_id(filled, 20)
    await tamper(filled, "DELETE FROM ledger WHERE id = :id", id=middle)
    report = await verify_ledger(filled, rollups=False)
    assert [(f.kind, f.seq) for f in report.findings] == [("deleted", 21)]
    last = await row_id(filled, 30, last_chain=True)
    await tamper(filled, "DELETE FROM ledger WHERE id = :id", id=last)
    report = await verify_ledger(filled, rollups=False)
    assert ("deleted", 30) in [(f.kind, f.seq) for f in report.findings]


async def test_inserted_rows_are_found(filled: Database) -> None:
    row = make_row(999).as_params()
    columns = ", ".join(row)
    values = ", ".join(f":{k}" for k in row)
    await tamper(filled, f"INSERT INTO ledger ({columns}) VALUES ({values})", **row)
    report = await verify_ledger(filled, rollups=False)
    assert [(f.kind, f.row) for f in report.findings] == [("inserted", row["id"])]
    # A copy of a real row, under a new id but claiming a taken place in the chain, is
    # refused by the database itself (chain and seq are unique together).


async def test_rollups_are_checked_against_rows(filled: Database) -> None:
    await tamper(filled, "UPDATE stats_daily SET vnd_saved = vnd_saved + 30500")
    report = await verify_ledger(filled)
    assert [f.kind for f in report.findings] == ["rollup"]
    assert "vnd_saved" in report.findings[0].detail


def test_cli_reports_tampering(tmp_path: Path) -> None:
    from ngsp.cli import app as ngsp_command

    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"

    async def fill() -> None:
        db = Database.connect(url)
        await upgrade_hub_schema(db)
        writer = LedgerWriter.for_database(db.writer, db.url)
        await writer.start()
        await asyncio.gather(*(writer.record(make_row(i)) for i in range(10)))
        await writer.stop()
        await db.dispose()

    asyncio.run(fill())
    # The ngsp command itself (its entry point only calls it), without a new interpreter.
    args = ["ledger", "verify", "--database-url", url]
    ok = CliRunner().invoke(ngsp_command, args)
    assert ok.exit_code == 0, ok.output
    assert "ledger intact" in ok.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "hub.db") as conn:
        conn.execute("UPDATE ledger SET path = '/x' WHERE seq = 3")
    bad = CliRunner().invoke(ngsp_command, args)
    assert bad.exit_code == 1, bad.output
    assert "TAMPERING" in bad.stdout
    assert "changed" in bad.stdout
