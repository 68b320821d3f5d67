"""The ledger: one row per exchange, written in groups, durable before the reply.

Durability is what makes the hub's 2xx mean something, and a commit per request would
cap the hub at the disk's commit rate (≈ 570/s on SQLite here). So request handlers hand
their row to the ``LedgerWriter`` and wait; the writer takes everything that is waiting,
writes it in one transaction together with the statistics rollups, commits, and then
releases every waiting handler. Nothing waits on a timer: under light load a group is a
single row and the wait is one commit; under heavy load, rows arrive while a commit runs
and the next group is large, so throughput grows with load instead of collapsing.

Dossier completions go through the same writer, so the count of VND saved moves in the
same transactions as the ledger and cannot drift from it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from national_hub.contract import Outcome
from national_hub.models import (
    DailyStats,
    Dossier,
    LedgerEntry,
    NodeDailyStats,
    ProcedureDailyStats,
)

__all__ = [
    "DossierReport",
    "DossierResult",
    "LedgerRow",
    "LedgerUnavailable",
    "LedgerWriter",
    "stats_day",
]

log = logging.getLogger("ngsp.hub.ledger")

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def stats_day(timestamp_us: int, offset_minutes: int) -> dt.date:
    """The statistics day a timestamp falls on, in the hub's reporting time zone."""
    seconds = timestamp_us // 1_000_000 + offset_minutes * 60
    return dt.date.fromordinal(_EPOCH_ORDINAL + seconds // 86_400)


class LedgerUnavailable(Exception):
    """The ledger could not commit; the caller must not acknowledge the exchange."""


@dataclass(slots=True)
class LedgerRow:
    id: str
    consumer: str | None
    provider: str | None
    service: str | None
    procedure: str | None
    dossier: str | None
    method: str
    path: str
    status: int
    outcome: str
    requested_at: int
    forwarded_at: int | None
    provider_responded_at: int | None
    responded_at: int
    request_bytes: int
    response_bytes: int
    request_sha256: str | None

    def as_params(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "consumer": self.consumer,
            "provider": self.provider,
            "service": self.service,
            "procedure": self.procedure,
            "dossier": self.dossier,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "outcome": self.outcome,
            "requested_at": self.requested_at,
            "forwarded_at": self.forwarded_at,
            "provider_responded_at": self.provider_responded_at,
            "responded_at": self.responded_at,
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
            "request_sha256": self.request_sha256,
        }


@dataclass(slots=True)
class DossierReport:
    """A node's report that a dossier ended; ``saving_vnd`` counts only if completed."""

    dossier: str
    node: str
    procedure: str
    outcome: str  # "completed" or "failed"
    saving_vnd: int
    reported_at: int


@dataclass(frozen=True, slots=True)
class DossierResult:
    """What the ledger did with a report: recorded now, or found recorded before."""

    created: bool
    node: str
    procedure: str
    outcome: str
    saving_vnd: int
    reported_at: int


_Item = LedgerRow | DossierReport


@dataclass(slots=True)
class WriterStats:
    groups: int = 0
    rows: int = 0
    last_group_size: int = 0
    last_commit_seconds: float = 0.0
    failures: int = 0


class LedgerWriter:
    """Group-commits ledger rows and dossier reports, releasing each waiter when durable."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_group: int = 2000,
        stats_offset_minutes: int = 420,
        retry_delay: float = 0.2,
    ) -> None:
        self._engine = engine
        self._max_group = max_group
        self._offset = stats_offset_minutes
        self._retry_delay = retry_delay
        self._pending: list[tuple[_Item, asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = WriterStats()
        dialect = engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ledger-writer")

    async def stop(self) -> None:
        """Write what is pending, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    # -- submitting ------------------------------------------------------------------

    def submit(self, row: LedgerRow) -> asyncio.Future[None]:
        """Queue a row; the future resolves once it is committed."""
        return self._enqueue(row)

    async def record(self, row: LedgerRow) -> None:
        """Queue a row and wait until it is committed."""
        await self._enqueue(row)

    async def report_dossier(self, report: DossierReport) -> DossierResult:
        """Record a dossier's end (once), updating savings in the same transaction."""
        result: DossierResult = await self._enqueue(report)
        return result

    def _enqueue(self, item: _Item) -> asyncio.Future[Any]:
        if self._closing or not self.running:
            raise LedgerUnavailable("ledger writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wakeup.set()
        return future

    # -- the writer loop -------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group = self._pending[: self._max_group]
                del self._pending[: self._max_group]
                await self._commit_group(group)
            if self._closing:
                return

    async def _commit_group(self, group: list[tuple[_Item, asyncio.Future[Any]]]) -> None:
        items = [item for item, _ in group]
        started = time.perf_counter()
        results: list[Any] | None = None
        for attempt in range(2):
            try:
                async with self._engine.begin() as conn:
                    results = await self._write(conn, items)
                break
            except Exception as exc:
                self.stats.failures += 1
                log.error(
                    "ledger group of %d failed (attempt %d): %s", len(items), attempt + 1, exc
                )
                if attempt == 0:
                    await asyncio.sleep(self._retry_delay)
        if results is None:
            for _, future in group:
                if not future.done():
                    future.set_exception(LedgerUnavailable("ledger commit failed"))
            return
        self.stats.groups += 1
        self.stats.rows += len(items)
        self.stats.last_group_size = len(items)
        self.stats.last_commit_seconds = time.perf_counter() - started
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _write(self, conn: AsyncConnection, items: list[_Item]) -> list[Any]:
        rows = [i for i in items if isinstance(i, LedgerRow)]
        daily: dict[dt.date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        per_node: dict[tuple[dt.date, str, str], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        per_procedure: dict[tuple[dt.date, str], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        if rows:
            await conn.execute(insert(LedgerEntry), [r.as_params() for r in rows])
            for r in rows:
                day = stats_day(r.requested_at, self._offset)
                ok = r.outcome == Outcome.OK
                totals = daily[day]
                totals["transactions"] += 1
                totals["successes" if ok else "failures"] += 1
                totals["request_bytes"] += r.request_bytes
                totals["response_bytes"] += r.response_bytes
                for node, role in ((r.consumer, "consumer"), (r.provider, "provider")):
                    if node is None:
                        continue
                    counts = per_node[(day, node, role)]
                    counts["transactions"] += 1
                    counts["successes" if ok else "failures"] += 1
        results: list[Any] = []
        for item in items:
            if isinstance(item, LedgerRow):
                results.append(None)
                continue
            result = await self._write_dossier(conn, item)
            results.append(result)
            if result.created:
                day = stats_day(item.reported_at, self._offset)
                counts = per_procedure[(day, item.procedure)]
                if item.outcome == "completed":
                    counts["completed"] += 1
                    counts["vnd_saved"] += item.saving_vnd
                    daily[day]["procedures_completed"] += 1
                    daily[day]["vnd_saved"] += item.saving_vnd
                else:
                    counts["failed"] += 1
                    daily[day]["dossiers_failed"] += 1
        await self._upsert(conn, DailyStats, ("day",), ({"day": d, **c} for d, c in daily.items()))
        await self._upsert(
            conn,
            NodeDailyStats,
            ("day", "node", "role"),
            ({"day": d, "node": n, "role": r, **c} for (d, n, r), c in per_node.items()),
        )
        await self._upsert(
            conn,
            ProcedureDailyStats,
            ("day", "procedure"),
            ({"day": d, "procedure": p, **c} for (d, p), c in per_procedure.items()),
        )
        return results

    async def _write_dossier(self, conn: AsyncConnection, report: DossierReport) -> DossierResult:
        saving = report.saving_vnd if report.outcome == "completed" else 0
        stmt = (
            self._insert(Dossier)
            .values(
                id=report.dossier,
                node=report.node,
                procedure=report.procedure,
                outcome=report.outcome,
                saving_vnd=saving,
                reported_at=report.reported_at,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(Dossier.id)
        )
        inserted = (await conn.execute(stmt)).first()
        if inserted is not None:
            return DossierResult(
                created=True,
                node=report.node,
                procedure=report.procedure,
                outcome=report.outcome,
                saving_vnd=saving,
                reported_at=report.reported_at,
            )
        existing = (
            await conn.execute(
                select(
                    Dossier.node,
                    Dossier.procedure,
                    Dossier.outcome,
                    Dossier.saving_vnd,
                    Dossier.reported_at,
                ).where(Dossier.id == report.dossier)
            )
        ).one()
        return DossierResult(
            created=False,
            node=existing.node,
            procedure=existing.procedure,
            outcome=existing.outcome,
            saving_vnd=existing.saving_vnd,
            reported_at=existing.reported_at,
        )

    async def _upsert(
        self,
        conn: AsyncConnection,
        model: type[DailyStats] | type[NodeDailyStats] | type[ProcedureDailyStats],
        keys: tuple[str, ...],
        values: Iterable[dict[str, Any]],
    ) -> None:
        table = model.__table__
        assert isinstance(table, Table)
        counters = [c.name for c in table.columns if c.name not in keys]
        rows = []
        for value in values:
            rows.append({name: value.get(name, 0) for name in (*keys, *counters)})
        if not rows:
            return
        # A fixed order: replicas upserting the same keys at once cannot deadlock.
        rows.sort(key=lambda row: tuple(str(row[k]) for k in keys))
        stmt = self._insert(table).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: table.c[name] + stmt.excluded[name] for name in counters},
        )
        await conn.execute(stmt)
