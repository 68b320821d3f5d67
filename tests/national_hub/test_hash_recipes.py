"""The hash chain's recipes: version 1 as rows were written before, version 2 canonical."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, text

from common.db import Database
from national_hub.ledger import chain
from national_hub.ledger.chain import CURRENT, GENESIS, RECIPES
from national_hub.ledger.row import FIELDS, NAMES, Part, RowField, Stored
from national_hub.ledger.verify import verify_ledger
from national_hub.ledger.writer import LedgerWriter
from national_hub.migrations import upgrade as upgrade_hub_schema
from national_hub.models import ledger_table
from tests.national_hub.test_ledger import make_row

#: Five rows in one chain as the writer wrote them before recipes had versions.
V1_LEDGER = json.loads((Path(__file__).parent / "data" / "ledger_v1.json").read_text())


def _chained(recipe: chain.Recipe, rows: list[dict[str, Any]]) -> list[str]:
    previous, hashes = GENESIS, []
    for row in rows:
        previous = recipe.hash_mapping(previous, row)
        hashes.append(previous)
    return hashes


def test_version_1_is_the_recipe_rows_were_written_with() -> None:
    rows = V1_LEDGER["rows"]
    assert _chained(RECIPES[1], rows) == [r["hash"] for r in rows]


def test_each_version_hashes_the_same_bytes_as_when_it_was_made() -> None:
    """A recipe whose bytes change leaves every chain written with it unverifiable. A new
    field must take a new version (``since``): then the older versions stay as they are."""
    v2 = _chained(RECIPES[2], V1_LEDGER["rows"])
    assert v2[0] == "5b170ba78855166aa4112754e9f46015a57c46fd8fc8c927b953ed59f5237bac"
    assert v2[-1] == "5971627d6d28eb9b43811d1d2dbf7336795ab3bb7cc2e1aa3c6761784e375fd0"


def test_version_2_tells_apart_rows_that_version_1_confuses() -> None:
    """A separator moved from one field into the next gives version 1 the same text."""
    one = make_row(1)
    one.consumer, one.provider = "C\x1fD", "E"
    other = dataclasses.replace(one, consumer="C", provider="D\x1fE")
    assert RECIPES[1].hash_row(GENESIS, one) == RECIPES[1].hash_row(GENESIS, other)
    assert RECIPES[2].hash_row(GENESIS, one) != RECIPES[2].hash_row(GENESIS, other)
    # A missing value, an empty text and the text "None" are three different rows.
    texts = [dataclasses.replace(one, procedure=v) for v in (None, "", "None", "null")]
    assert len({RECIPES[2].hash_row(GENESIS, r) for r in texts}) == 4


def test_version_2_is_canonical_json() -> None:
    """The bytes are the standard library's canonical JSON of [previous, values...]: what
    an auditor's own tool, in any language, would write (RFC 8785 for these types)."""
    strange = ["\x00", "\x1f", "\x7f", "\u2028", '"', "\\", "/", "é", "𝄞", "", "None"]
    values = [*strange, None, 0, -1, 2**62, 1_732_500_000_123_456]
    expected = json.dumps(["ab" * 32, *values], ensure_ascii=False, separators=(",", ":"))
    assert RECIPES[2].encode("ab" * 32, values) == expected.encode()


def test_the_fields_each_version_takes() -> None:
    """Version 1 took the row's place in its chain after its id; version 2 on take the
    fields in the definition's order, as the inserts do. Neither takes the hash."""
    record = [f.name for f in FIELDS if f.part is Part.RECORD and f.name != "id"]
    assert RECIPES[1].fields == ("id", "chain", "seq", *record)
    assert RECIPES[2].fields == tuple(n for n in NAMES if n != "hash")
    assert CURRENT is RECIPES[max(RECIPES)]


def test_a_field_added_later_leaves_the_older_versions_as_they_were(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Adding a field is one line in ``LedgerRow`` (and a migration): with ``since`` the
    next version, the versions chains were written with before keep their fields."""
    added = RowField("region", str, True, Stored(ledger_table.c.consumer.type, since=3), None)
    before = {v: chain._fields(v) for v in (1, 2)}
    monkeypatch.setattr(chain, "FIELDS", (*FIELDS, added))
    assert {v: chain._fields(v) for v in (1, 2)} == before
    assert chain._fields(3) == (*before[2], "region")


# -- a database written before versions, and since ------------------------------------------


@pytest.fixture
async def mixed(database_url: str) -> AsyncIterator[Database]:
    """A ledger whose first chain was written before versions (then the schema upgraded)
    and whose second chain was written after, by today's writer."""
    db = Database.connect(database_url)
    await upgrade_hub_schema(db, "0003")
    head = V1_LEDGER["head"]
    async with db.writer.begin() as conn:
        await conn.execute(insert(ledger_table), V1_LEDGER["rows"])
        await conn.execute(
            text(
                "INSERT INTO ledger_chains (chain, started_at, head_seq, head_hash) "
                "VALUES (:chain, :started_at, :head_seq, :head_hash)"
            ),
            head,
        )
    await upgrade_hub_schema(db)
    writer = LedgerWriter.for_database(db.writer, db.url, max_group=4)
    await writer.start()
    await asyncio.gather(*(writer.record(make_row(i)) for i in range(12)))
    await writer.stop()
    yield db
    await db.dispose()


async def _id(db: Database, version: int, seq: int) -> str:
    async with db.reader.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT ledger.id FROM ledger JOIN ledger_chains USING (chain) "
                "WHERE ledger_chains.hash_version = :v AND ledger.seq = :s"
            ),
            {"v": version, "s": seq},
        )
        return str(found.scalar_one())


async def test_chains_of_both_versions_verify(mixed: Database) -> None:
    report = await verify_ledger(mixed, rollups=False)
    assert report.ok, report.findings
    assert (report.rows, report.chains, report.recipes) == (17, 2, {1: 1, 2: 1})


async def test_a_changed_row_is_named_whichever_version_wrote_it(mixed: Database) -> None:
    old, new = await _id(mixed, 1, 3), await _id(mixed, 2, 7)
    async with mixed.writer.begin() as conn:
        for row_id in (old, new):
            await conn.execute(
                text("UPDATE ledger SET path = '/other' WHERE id = :id"), {"id": row_id}
            )
    report = await verify_ledger(mixed, rollups=False)
    assert [(f.kind, f.row) for f in report.findings] == [("changed", old), ("changed", new)]


async def test_a_chain_s_version_changed_shows(mixed: Database) -> None:
    async with mixed.writer.begin() as conn:
        await conn.execute(text("UPDATE ledger_chains SET hash_version = 2 WHERE hash_version = 1"))
    report = await verify_ledger(mixed, rollups=False)
    # Hashed with the wrong recipe, every row of the old chain shows as changed.
    assert [f.kind for f in report.findings] == ["changed"] * len(V1_LEDGER["rows"])
    async with mixed.writer.begin() as conn:
        await conn.execute(text("UPDATE ledger_chains SET hash_version = 9"))
    report = await verify_ledger(mixed, rollups=False)
    assert [f.kind for f in report.findings] == ["changed", "changed"]
    assert "version 9" in report.findings[0].detail


def test_the_writer_and_the_verifier_hash_a_row_alike() -> None:
    row = make_row(5)
    row.chain, row.seq = "c", 1
    assert CURRENT.hash_row(GENESIS, row) == CURRENT.hash_mapping(GENESIS, row.as_params())
