"""Checking a ledger: its hash chains, and its rollups against its rows.

``verify_ledger`` walks every chain in sequence order, each with the hash recipe its head
names (``ledger_chains.hash_version``), and names the first rows that were changed,
deleted or inserted behind the hub's back; with ``rollups=True`` it also
recomputes the daily, per-node and per-procedure statistics from the rows and the
dossier reports and compares them with the rollup tables the hub keeps.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from common.contract import Outcome
from common.db import Database
from national_hub.ledger.chain import GENESIS, RECIPES, Recipe
from national_hub.ledger.writer import stats_day
from national_hub.models import (
    DailyStats,
    Dossier,
    LedgerChain,
    NodeDailyStats,
    ProcedureDailyStats,
    ledger_table,
)

__all__ = ["Finding", "VerifyReport", "verify_ledger"]

_PAGE = 5000


@dataclass(frozen=True, slots=True)
class Finding:
    """One sign of tampering (or of a rollup that disagrees with the rows)."""

    kind: str  # changed, deleted, inserted, rollup
    detail: str
    row: str | None = None
    chain: str | None = None
    seq: int | None = None


@dataclass
class VerifyReport:
    rows: int = 0
    chains: int = 0
    findings: list[Finding] = field(default_factory=list)
    rollups_checked: bool = False
    #: How many chains each hash recipe version verified.
    recipes: dict[int, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings


class _Walker:
    """Follows the rows of one chain in order."""

    def __init__(self, chain: str, head: LedgerChain | None, report: VerifyReport) -> None:
        self.chain = chain
        self.head = head
        self.report = report
        self.expected = 1
        self.previous = GENESIS
        self.last_hash: str | None = None
        self.recipe: Recipe | None = None
        if head is not None:
            self.recipe = RECIPES.get(head.hash_version)
            if self.recipe is None:
                self.add(
                    Finding(
                        "changed",
                        f"the chain names hash recipe version {head.hash_version}, which "
                        f"this verifier does not know (it knows {sorted(RECIPES)})",
                        None,
                        chain,
                    )
                )
            else:
                versions = report.recipes
                versions[head.hash_version] = versions.get(head.hash_version, 0) + 1

    def add(self, finding: Finding) -> None:
        self.report.findings.append(finding)

    def row(self, row: dict[str, Any]) -> None:
        seq = row["seq"]
        if self.head is None:
            self.add(
                Finding(
                    "inserted",
                    "the row names a chain no writer started",
                    row["id"],
                    self.chain,
                    seq,
                )
            )
            return
        if seq < self.expected:
            self.add(
                Finding(
                    "inserted",
                    f"a second row numbered {seq} in its chain",
                    row["id"],
                    self.chain,
                    seq,
                )
            )
            return
        if seq > self.expected:
            missing = (
                f"{self.expected}" if seq == self.expected + 1 else (f"{self.expected}-{seq - 1}")
            )
            self.add(
                Finding(
                    "deleted",
                    f"rows {missing} of the chain are missing, before this one",
                    row["id"],
                    self.chain,
                    seq,
                )
            )
            # Carry on from this row: what follows can still be checked.
            self.previous = row["hash"] or GENESIS
        elif (
            self.recipe is not None and self.recipe.hash_mapping(self.previous, row) != row["hash"]
        ):
            self.add(
                Finding(
                    "changed",
                    "the row does not match its hash: it, or the row before it, was changed",
                    row["id"],
                    self.chain,
                    seq,
                )
            )
        self.previous = row["hash"] or GENESIS
        self.last_hash = row["hash"]
        self.expected = seq + 1

    def end(self) -> None:
        if self.head is None:
            return
        last = self.expected - 1
        if self.head.head_seq > last:
            self.add(
                Finding(
                    "deleted",
                    f"the chain's last rows ({last + 1}-{self.head.head_seq}) are missing",
                    None,
                    self.chain,
                    last + 1,
                )
            )
        elif self.head.head_seq < last:
            self.add(
                Finding(
                    "inserted",
                    f"rows after the chain's head ({self.head.head_seq})",
                    None,
                    self.chain,
                    self.head.head_seq + 1,
                )
            )
        elif last and self.last_hash != self.head.head_hash:
            self.add(
                Finding(
                    "changed",
                    "the chain's last row does not match its recorded head",
                    None,
                    self.chain,
                    last,
                )
            )


async def verify_ledger(
    db: Database, *, rollups: bool = True, offset_minutes: int = 420
) -> VerifyReport:
    """Walk every chain, then (optionally) recompute the rollups from the rows."""
    report = VerifyReport()
    columns = list(ledger_table.columns)
    chain_col, seq_col = ledger_table.c.chain, ledger_table.c.seq
    daily: dict[dt.date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    per_node: dict[tuple[dt.date, str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    async with db.read_session() as session:
        heads = {h.chain: h for h in (await session.scalars(select(LedgerChain))).all()}
        report.chains = len(heads)
        seen_chains: set[str] = set()
        walker: _Walker | None = None
        last_key: tuple[str, int] | None = None
        while True:
            query = (
                select(*columns)
                .where(chain_col.is_not(None), seq_col.is_not(None))
                .order_by(chain_col, seq_col)
                .limit(_PAGE)
            )
            if last_key is not None:
                query = query.where(
                    (chain_col > last_key[0])
                    | ((chain_col == last_key[0]) & (seq_col > last_key[1]))
                )
            page = (await session.execute(query)).all()
            if not page:
                break
            for record in page:
                row = dict(record._mapping)
                report.rows += 1
                _count(row, daily, per_node, offset_minutes)
                chain = row["chain"]
                if walker is None or walker.chain != chain:
                    if walker is not None:
                        walker.end()
                    walker = _Walker(chain, heads.get(chain), report)
                    seen_chains.add(chain)
                walker.row(row)
                last_key = (chain, row["seq"])
        if walker is not None:
            walker.end()
        unchained = select(*columns).where(chain_col.is_(None) | seq_col.is_(None))
        async for chunk in _pages(session, unchained):
            for record in chunk:
                row = dict(record._mapping)
                report.rows += 1
                _count(row, daily, per_node, offset_minutes)
                report.findings.append(
                    Finding("inserted", "the row belongs to no chain", row["id"])
                )
        for chain, head in heads.items():
            if chain not in seen_chains and head.head_seq > 0:
                report.findings.append(
                    Finding(
                        "deleted",
                        f"all {head.head_seq} rows of the chain are missing",
                        None,
                        chain,
                        1,
                    )
                )
        if rollups:
            report.rollups_checked = True
            await _check_rollups(session, report, daily, per_node, offset_minutes)
    return report


async def _pages(session: Any, query: Any) -> AsyncIterator[Sequence[Any]]:
    last: str | None = None
    while True:
        page_query = query.order_by(ledger_table.c.id).limit(_PAGE)
        if last is not None:
            page_query = page_query.where(ledger_table.c.id > last)
        page = (await session.execute(page_query)).all()
        if not page:
            return
        yield page
        last = page[-1]._mapping["id"]


def _count(
    row: dict[str, Any],
    daily: dict[dt.date, dict[str, int]],
    per_node: dict[tuple[dt.date, str, str], dict[str, int]],
    offset: int,
) -> None:
    day = stats_day(row["requested_at"], offset)
    ok = row["outcome"] == Outcome.OK
    totals = daily[day]
    totals["transactions"] += 1
    totals["successes" if ok else "failures"] += 1
    totals["request_bytes"] += row["request_bytes"]
    totals["response_bytes"] += row["response_bytes"]
    for node, role in ((row["consumer"], "consumer"), (row["provider"], "provider")):
        if node is not None:
            counts = per_node[(day, node, role)]
            counts["transactions"] += 1
            counts["successes" if ok else "failures"] += 1


async def _check_rollups(
    session: Any,
    report: VerifyReport,
    daily: dict[dt.date, dict[str, int]],
    per_node: dict[tuple[dt.date, str, str], dict[str, int]],
    offset: int,
) -> None:
    per_procedure: dict[tuple[dt.date, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for d in (await session.scalars(select(Dossier))).all():
        day = stats_day(d.reported_at, offset)
        counts = per_procedure[(day, d.procedure)]
        if d.outcome == "completed":
            counts["completed"] += 1
            counts["vnd_saved"] += d.saving_vnd
            daily[day]["procedures_completed"] += 1
            daily[day]["vnd_saved"] += d.saving_vnd
        else:
            counts["failed"] += 1
            daily[day]["dossiers_failed"] += 1

    def compare(name: str, key: object, stored: dict[str, int], computed: dict[str, int]) -> None:
        for column in set(stored) | set(computed):
            if stored.get(column, 0) != computed.get(column, 0):
                report.findings.append(
                    Finding(
                        "rollup",
                        f"{name} {key}: {column} is {stored.get(column, 0)} in the "
                        f"rollup, {computed.get(column, 0)} from the rows",
                    )
                )
                return

    stored_daily = {
        r.day: {c: getattr(r, c) for c in _counters(DailyStats)}
        for r in (await session.scalars(select(DailyStats))).all()
    }
    for day in set(stored_daily) | set(daily):
        compare("stats_daily", day, stored_daily.get(day, {}), dict(daily.get(day, {})))
    stored_nodes = {
        (r.day, r.node, r.role): {c: getattr(r, c) for c in _counters(NodeDailyStats)}
        for r in (await session.scalars(select(NodeDailyStats))).all()
    }
    for key in set(stored_nodes) | set(per_node):
        compare("stats_node_daily", key, stored_nodes.get(key, {}), dict(per_node.get(key, {})))
    stored_procedures = {
        (r.day, r.procedure): {c: getattr(r, c) for c in _counters(ProcedureDailyStats)}
        for r in (await session.scalars(select(ProcedureDailyStats))).all()
    }
    for pkey in set(stored_procedures) | set(per_procedure):
        compare(
            "stats_procedure_daily",
            pkey,
            stored_procedures.get(pkey, {}),
            dict(per_procedure.get(pkey, {})),
        )


def _counters(model: type[Any]) -> list[str]:
    keys = {c.name for c in model.__table__.primary_key.columns}
    return [c.name for c in model.__table__.columns if c.name not in keys]
