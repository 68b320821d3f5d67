"""The ledger's writer: one row per exchange, written in groups, durable before the reply.

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
import fcntl
import logging
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from uuid_utils import uuid7

from common.contract import Outcome
from common.files import private_dir
from national_hub.ledger.chain import CURRENT, GENESIS, Recipe
from national_hub.ledger.row import NAMES, LedgerRow
from national_hub.models import (
    Base,
    DailyStats,
    Dossier,
    LedgerChain,
    LedgerEntry,
    NodeDailyStats,
    ProcedureDailyStats,
)

__all__ = [
    "DossierReport",
    "DossierResult",
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


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a writer's hash chain ends after a group."""

    chain: str
    started_at: int
    seq: int
    hash: str
    hash_version: int

    def as_params(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "started_at": self.started_at,
            "head_seq": self.seq,
            "head_hash": self.hash,
            "hash_version": self.hash_version,
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
_DOSSIER_COLUMNS = ("id", "node", "procedure", "outcome", "saving_vnd", "reported_at")


class _ProcessLock:
    """An exclusive lock shared by every hub process writing one SQLite file.

    SQLite's own busy handler polls with sleeps that grow to 100 ms, so two worker
    processes committing groups back to back would stall each other (p99 of half a
    second, measured). Queueing on a file lock instead wakes the next writer the moment
    the lock is released.
    """

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    async def acquire(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            await asyncio.to_thread(fcntl.flock, self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)


@dataclass(slots=True)
class WriterStats:
    groups: int = 0
    rows: int = 0
    last_group_size: int = 0
    last_commit_seconds: float = 0.0
    failures: int = 0


# -- statements and rollups ---------------------------------------------------------------

_CHAIN_COLUMNS = tuple(c.name for c in LedgerChain.__table__.columns)


@dataclass(frozen=True, slots=True)
class _Upsert:
    statement: Any
    keys: tuple[str, ...]
    counters: tuple[str, ...]

    def params(self, values: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = [{n: v.get(n, 0) for n in (*self.keys, *self.counters)} for v in values]
        # A fixed order: replicas upserting the same keys at once cannot deadlock.
        rows.sort(key=lambda row: tuple(str(row[k]) for k in self.keys))
        return rows


class _Statements:
    """Every statement the writer runs, built (and so compiled) once per dialect.

    A statement rebuilt for each group (multi-row VALUES, a new ``SET`` clause) is
    compiled anew every time, which cost ~4 ms a group against 0.4 ms for the commit.
    """

    def __init__(self, dialect_name: str) -> None:
        make_insert = postgresql.insert if dialect_name == "postgresql" else sqlite.insert
        self.ledger_insert = insert(LedgerEntry)
        self.daily = self._upsert(make_insert, DailyStats)
        self.per_node = self._upsert(make_insert, NodeDailyStats)
        self.per_procedure = self._upsert(make_insert, ProcedureDailyStats)
        self.dossier_insert = (
            make_insert(Dossier)
            .values({c: bindparam(c) for c in _DOSSIER_COLUMNS})
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(Dossier.id)
        )
        head = make_insert(LedgerChain).values({c: bindparam(c) for c in _CHAIN_COLUMNS})
        self.chain_upsert = head.on_conflict_do_update(
            index_elements=["chain"],
            set_={"head_seq": head.excluded.head_seq, "head_hash": head.excluded.head_hash},
        )
        self.dossier_select = select(
            Dossier.node,
            Dossier.procedure,
            Dossier.outcome,
            Dossier.saving_vnd,
            Dossier.reported_at,
        ).where(Dossier.id == bindparam("id"))

    @staticmethod
    def _upsert(make_insert: Any, model: type[Base]) -> _Upsert:
        table = model.__table__
        assert isinstance(table, Table)
        keys = tuple(c.name for c in table.primary_key.columns)
        counters = tuple(c.name for c in table.columns if c.name not in keys)
        stmt = make_insert(table).values({n: bindparam(n) for n in (*keys, *counters)})
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys),
            set_={n: table.c[n] + stmt.excluded[n] for n in counters},
        )
        return _Upsert(stmt, keys, counters)


class _Rollups:
    """The statistics one group adds, accumulated in memory and upserted once."""

    def __init__(self, offset_minutes: int) -> None:
        self._offset = offset_minutes
        self.daily: dict[dt.date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.per_node: dict[tuple[dt.date, str, str], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        self.per_procedure: dict[tuple[dt.date, str], dict[str, int]] = defaultdict(
            lambda: defaultdict(int)
        )

    def add_row(self, r: LedgerRow) -> None:
        day = stats_day(r.requested_at, self._offset)
        ok = r.outcome == Outcome.OK
        totals = self.daily[day]
        totals["transactions"] += 1
        totals["successes" if ok else "failures"] += 1
        totals["request_bytes"] += r.request_bytes
        totals["response_bytes"] += r.response_bytes
        for node, role in ((r.consumer, "consumer"), (r.provider, "provider")):
            if node is not None:
                counts = self.per_node[(day, node, role)]
                counts["transactions"] += 1
                counts["successes" if ok else "failures"] += 1

    def add_dossier(self, report: DossierReport) -> None:
        day = stats_day(report.reported_at, self._offset)
        counts = self.per_procedure[(day, report.procedure)]
        if report.outcome == "completed":
            counts["completed"] += 1
            counts["vnd_saved"] += report.saving_vnd
            self.daily[day]["procedures_completed"] += 1
            self.daily[day]["vnd_saved"] += report.saving_vnd
        else:
            counts["failed"] += 1
            self.daily[day]["dossiers_failed"] += 1

    def upserts(self, st: _Statements) -> list[tuple[_Upsert, list[dict[str, Any]]]]:
        batches = [
            (st.daily, st.daily.params({"day": d, **c} for d, c in self.daily.items())),
            (
                st.per_node,
                st.per_node.params(
                    {"day": d, "node": n, "role": r, **c} for (d, n, r), c in self.per_node.items()
                ),
            ),
            (
                st.per_procedure,
                st.per_procedure.params(
                    {"day": d, "procedure": p, **c} for (d, p), c in self.per_procedure.items()
                ),
            ),
        ]
        return [(u, params) for u, params in batches if params]


def _dossier_params(report: DossierReport) -> dict[str, Any]:
    return {
        "id": report.dossier,
        "node": report.node,
        "procedure": report.procedure,
        "outcome": report.outcome,
        "saving_vnd": report.saving_vnd if report.outcome == "completed" else 0,
        "reported_at": report.reported_at,
    }


def _created(report: DossierReport) -> DossierResult:
    params = _dossier_params(report)
    return DossierResult(
        created=True,
        node=report.node,
        procedure=report.procedure,
        outcome=report.outcome,
        saving_vnd=params["saving_vnd"],
        reported_at=report.reported_at,
    )


def _existing(row: Any) -> DossierResult:
    node, procedure, outcome, saving, reported_at = tuple(row)
    return DossierResult(
        created=False,
        node=node,
        procedure=procedure,
        outcome=outcome,
        saving_vnd=saving,
        reported_at=reported_at,
    )


# -- stores: where a group is written ------------------------------------------------------


class _Store(Protocol):
    async def commit(
        self, rows: list[LedgerRow], reports: list[DossierReport], head: ChainHead | None
    ) -> list[DossierResult]: ...

    async def close(self) -> None: ...


class _AsyncStore:
    """Writes a group over one SQLAlchemy connection kept for the writer's lifetime.

    Checking a connection out of the pool for each group (and resetting it on return)
    cost more than the commit, so the writer holds its own and replaces it on failure.
    """

    def __init__(self, engine: AsyncEngine, offset_minutes: int) -> None:
        self._engine = engine
        self._offset = offset_minutes
        self._st = _Statements(engine.dialect.name)
        self._conn: AsyncConnection | None = None

    async def commit(
        self, rows: list[LedgerRow], reports: list[DossierReport], head: ChainHead | None
    ) -> list[DossierResult]:
        if self._conn is None:
            self._conn = await self._engine.connect()
        conn = self._conn
        try:
            async with conn.begin():
                if rows:
                    await conn.execute(self._st.ledger_insert, [r.as_params() for r in rows])
                if head is not None:
                    await conn.execute(self._st.chain_upsert, head.as_params())
                rollups = _Rollups(self._offset)
                for r in rows:
                    rollups.add_row(r)
                results = []
                for report in reports:
                    inserted = (
                        await conn.execute(self._st.dossier_insert, _dossier_params(report))
                    ).first()
                    if inserted is None:
                        row = (
                            await conn.execute(self._st.dossier_select, {"id": report.dossier})
                        ).one()
                        results.append(_existing(row))
                    else:
                        rollups.add_dossier(report)
                        results.append(_created(report))
                for upsert, params in rollups.upserts(self._st):
                    await conn.execute(upsert.statement, params)
            return results
        except Exception:
            await self.close()
            raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception as exc:  # a broken connection may fail to close; drop it
                log.warning("closing the ledger connection failed: %s", exc)
                await conn.invalidate()


class _SqliteStore:
    """Writes a group with the stdlib driver in one thread hop.

    Through aiosqlite every statement is its own hop to the driver's thread and back
    (~0.3 ms each with SQLAlchemy on top): six of them made a group cost 2 ms where the
    SQLite work is 0.4 ms. Here the whole transaction runs in the writer's own thread in
    one call. The SQL is SQLAlchemy's own, compiled once for SQLite, so the schema still
    has one home.
    """

    def __init__(self, path: Path, *, synchronous: str, offset_minutes: int) -> None:
        self._path = path
        self._synchronous = synchronous
        self._offset = offset_minutes
        self._st = _Statements("sqlite")
        dialect = sqlite.dialect(paramstyle="qmark")
        ledger = self._st.ledger_insert.compile(dialect=dialect, column_keys=list(NAMES))
        self._ledger_sql = (str(ledger), tuple(ledger.positiontup or ()))
        self._ledger_values = attrgetter(*self._ledger_sql[1])
        #: The ledger insert with 2**k rows of values, k = 0..8. A group goes in as a few of
        #: these (its size in binary), each prepared once. The driver lets go of the GIL
        #: for each statement it steps, and while the loop is busy (a flood) this thread
        #: then waits up to the 5 ms switch interval to get it back: once per statement
        #: now, not once per row. A group of 50 beside a busy thread: 33 ms against 150 ms
        #: row by row; alone: 0.77 against 0.65 ms (RESULTS.md, 2026-11-24 06:25-).
        self._ledger_rows_sql = [rows_of_values(self._ledger_sql[0], 2**k) for k in range(9)]
        self._upsert_sql: dict[int, tuple[str, tuple[str, ...]]] = {}
        for upsert in (self._st.daily, self._st.per_node, self._st.per_procedure):
            compiled = upsert.statement.compile(dialect=dialect)
            self._upsert_sql[id(upsert)] = (str(compiled), tuple(compiled.positiontup or ()))
        chain = self._st.chain_upsert.compile(dialect=dialect)
        self._chain_sql = (str(chain), tuple(chain.positiontup or ()))
        d_ins = self._st.dossier_insert.compile(dialect=dialect)
        self._dossier_insert_sql = (str(d_ins), tuple(d_ins.positiontup or ()))
        self._dossier_select_sql = str(self._st.dossier_select.compile(dialect=dialect))
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ledger-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._top = 0  # the largest 2**k rows an insert takes here (set on connecting)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        # The largest insert this SQLite takes (32,766 parameters since 3.32; 999 before).
        most = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(self._ledger_sql[1])
        self._top = max(k for k in range(len(self._ledger_rows_sql)) if 2**k <= most)
        return conn

    def _commit_sync(
        self, rows: list[LedgerRow], reports: list[DossierReport], head: ChainHead | None
    ) -> list[DossierResult]:
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                self._insert_rows(conn, rows)
            if head is not None:
                sql, order = self._chain_sql
                conn.execute(sql, _ordered(head.as_params(), order))
            rollups = _Rollups(self._offset)
            for r in rows:
                rollups.add_row(r)
            results = []
            for report in reports:
                sql, order = self._dossier_insert_sql
                inserted = conn.execute(sql, _ordered(_dossier_params(report), order)).fetchone()
                if inserted is None:
                    row = conn.execute(self._dossier_select_sql, (report.dossier,)).fetchone()
                    results.append(_existing(row))
                else:
                    rollups.add_dossier(report)
                    results.append(_created(report))
            for upsert, params in rollups.upserts(self._st):
                sql, order = self._upsert_sql[id(upsert)]
                conn.executemany(sql, [_ordered(p, order) for p in params])
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                conn.close()
                self._conn = None
            raise
        return results

    def _insert_rows(self, conn: sqlite3.Connection, rows: list[LedgerRow]) -> None:
        of_row = self._ledger_values
        values = [v for r in rows for v in of_row(r)]
        width, start, left = len(self._ledger_sql[1]), 0, len(rows)
        for k in range(self._top, -1, -1):
            size = 2**k
            while left >= size:
                conn.execute(self._ledger_rows_sql[k], values[start : start + size * width])
                start += size * width
                left -= size

    async def commit(
        self, rows: list[LedgerRow], reports: list[DossierReport], head: ChainHead | None
    ) -> list[DossierResult]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._commit_sync, rows, reports, head)

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)


def rows_of_values(insert_sql: str, rows: int) -> str:
    """A one-row ``INSERT ... VALUES (...)`` made to take ``rows`` rows of values."""
    values = insert_sql.partition(" VALUES ")[2]
    return insert_sql + f", {values}" * (rows - 1)


def _ordered(params: dict[str, Any], order: tuple[str, ...]) -> tuple[Any, ...]:
    # SQLite stores dates as ISO text, as SQLAlchemy's Date type does.
    return tuple(v.isoformat() if isinstance(v := params[name], dt.date) else v for name in order)


# -- the writer ---------------------------------------------------------------------------


class LedgerWriter:
    """Group-commits ledger rows and dossier reports, releasing each waiter when durable."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_group: int = 2000,
        stats_offset_minutes: int = 420,
        retry_delay: float = 0.2,
        sqlite_file: Path | None = None,
        sqlite_synchronous: str = "FULL",
        on_group: Callable[[int, float, int], None] | None = None,
        on_failure: Callable[[], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        #: Told the size, commit time and remaining queue of each group (for metrics).
        self._on_group = on_group
        self._on_failure = on_failure
        #: Told the queue's depth when rows arrive and when a group is taken, so a stalled
        #: writer shows as a growing queue.
        self._on_depth = on_depth
        self._store: _Store
        if sqlite_file is not None:
            self._store = _SqliteStore(
                sqlite_file, synchronous=sqlite_synchronous, offset_minutes=stats_offset_minutes
            )
            self._lock: _ProcessLock | None = _ProcessLock(sqlite_file.with_suffix(".writelock"))
        else:
            self._store = _AsyncStore(engine, stats_offset_minutes)
            self._lock = None
        self._max_group = max_group
        self._retry_delay = retry_delay
        #: This writer's hash chain: a new one each time the hub starts, hashed with the
        #: newest recipe.
        self.chain_id = str(uuid7())
        self._recipe: Recipe = CURRENT
        self._chain_started = time.time_ns() // 1000
        self._chain_seq = 0
        self._chain_hash = GENESIS
        self._pending: list[tuple[_Item, asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = WriterStats()

    @classmethod
    def for_database(
        cls,
        engine: AsyncEngine,
        url: str,
        *,
        max_group: int = 2000,
        stats_offset_minutes: int = 420,
        sqlite_synchronous: str = "FULL",
        on_group: Callable[[int, float, int], None] | None = None,
        on_failure: Callable[[], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> LedgerWriter:
        """The writer suited to the database: one-hop SQLite writes, or SQLAlchemy."""
        sqlite_file = None
        if url.startswith("sqlite"):
            sqlite_file = Path(url.split(":///", 1)[1].split("?", 1)[0])
        return cls(
            engine,
            max_group=max_group,
            stats_offset_minutes=stats_offset_minutes,
            sqlite_file=sqlite_file,
            sqlite_synchronous=sqlite_synchronous,
            on_group=on_group,
            on_failure=on_failure,
            on_depth=on_depth,
        )

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
        await self._store.close()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

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
        if self._on_depth is not None:
            self._on_depth(len(self._pending))
        return future

    # -- the writer loop -------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                group = self._pending[: self._max_group]
                del self._pending[: self._max_group]
                if self._on_depth is not None:
                    self._on_depth(len(self._pending))
                await self._commit_group(group)
            if self._closing:
                return

    def _link(self, rows: list[LedgerRow]) -> ChainHead | None:
        """Give each row its place and hash in this writer's chain; the new head."""
        if not rows:
            return None
        seq, previous = self._chain_seq, self._chain_hash
        hash_row = self._recipe.hash_row
        for row in rows:
            seq += 1
            row.chain, row.seq = self.chain_id, seq
            row.hash = previous = hash_row(previous, row)
        return ChainHead(self.chain_id, self._chain_started, seq, previous, self._recipe.version)

    async def _commit_group(self, group: list[tuple[_Item, asyncio.Future[Any]]]) -> None:
        rows = [item for item, _ in group if isinstance(item, LedgerRow)]
        reports = [item for item, _ in group if isinstance(item, DossierReport)]
        head = self._link(rows)
        started = time.perf_counter()
        results: list[DossierResult] | None = None
        for attempt in range(2):
            try:
                if self._lock is not None:
                    await self._lock.acquire()
                try:
                    results = await self._store.commit(rows, reports, head)
                finally:
                    if self._lock is not None:
                        self._lock.release()
                break
            except Exception as exc:
                self.stats.failures += 1
                if self._on_failure is not None:
                    self._on_failure()
                log.error(
                    "ledger group of %d failed (attempt %d): %s", len(group), attempt + 1, exc
                )
                if attempt == 0:
                    await asyncio.sleep(self._retry_delay)
        if results is None:
            for _, future in group:
                if not future.done():
                    future.set_exception(LedgerUnavailable("ledger commit failed"))
            return
        if head is not None:  # the chain moves on only once its rows are durable
            self._chain_seq, self._chain_hash = head.seq, head.hash
        self.stats.groups += 1
        self.stats.rows += len(rows)
        self.stats.last_group_size = len(group)
        self.stats.last_commit_seconds = time.perf_counter() - started
        if self._on_group is not None:
            self._on_group(len(group), self.stats.last_commit_seconds, len(self._pending))
        dossier_results = iter(results)
        for item, future in group:
            result = next(dossier_results) if isinstance(item, DossierReport) else None
            if not future.done():  # a waiter that went away was cancelled
                future.set_result(result)
