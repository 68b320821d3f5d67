"""Where a run goes: a hub database of its own, with the registry, ledger and rollups.

The database is a real hub database (schema by the hub's migrations, registry applied
with ``registry_service.apply_document``), so ``ngsp hub --database-url ...`` serves its
``/stats/...`` and ``/transactions`` as for live traffic.

Two ways to write a run's batches:

- ``BulkSink`` (SQLite, the default): the ledger rows, hash-chained in the simulating
  process, inserted 500 to a statement in one transaction per batch, the dossier reports
  beside them, and the rollups upserted in the same transaction with the same SQL the
  hub's writer builds (SQLAlchemy's insert … on conflict do update, compiled once). It
  runs in a process of its own, so the next batch is simulated and chained while this
  one is written. The hub's ``LedgerWriter`` managed about 35,000 rows/s here (a future,
  two dicts and a rollup update per row, in the same process as the simulation); this
  costs the SQLite insert and little else. While it loads, SQLite keeps no journal (it
  is back to WAL at the end; a run that does not finish leaves no database: the file is
  removed). The ledger's indexes stay: rows arrive in id order, so each index takes them
  at a few places near its end, and keeping them up costs the writer about what
  rebuilding them at the end cost (17 s of vn-2020's 4.4 million rows), while the engine
  runs instead of after it.
- ``WriterSink`` (any database the hub runs on): rows through the hub's own
  ``LedgerWriter.submit`` and dossiers through ``report_dossier``; the part of the
  rollups for what was not stored is upserted after them. Slower; the tests run a
  scenario through both and compare every table.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import multiprocessing
import queue
import sqlite3
import threading
import time
import traceback
from collections.abc import Iterable
from multiprocessing.connection import Connection
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from common.contract import Outcome
from common.db import Database, is_sqlite, sqlite_path
from country.roster import Roster
from national_hub.ledger.chain import CURRENT, GENESIS
from national_hub.ledger.row import FIELDS, NAMES, LedgerRow, Part
from national_hub.ledger.writer import (
    DossierReport,
    LedgerWriter,
    rows_of_values,
    stats_day,
)
from national_hub.migrations import upgrade as upgrade_hub_schema
from national_hub.models import (
    Base,
    DailyStats,
    Dossier,
    LedgerChain,
    LedgerEntry,
    NodeDailyStats,
    ProcedureDailyStats,
)
from national_hub.registry import Snapshot, load_snapshot
from national_hub.registry_service import apply_document
from national_hub.schemas import RegistryDocument
from provincial_nodes.registration import registry_document
from simulation.engine import (
    DAILY_FIELDS,
    DOSSIER_COLUMNS,
    NODE_FIELDS,
    PROCEDURE_FIELDS,
    ROW_COLUMNS,
    Batch,
    Connections,
    virtual_uuid7,
)

__all__ = ["BulkSink", "CountingSink", "WriterSink", "prepare_database", "remove_database"]

STATS_OFFSET_MINUTES = 420


def _ledger_insert() -> tuple[str, tuple[str, ...]]:
    compiled = (
        insert(LedgerEntry)
        .values({c: bindparam(c) for c in NAMES})
        .compile(dialect=sqlite.dialect(paramstyle="qmark"))
    )
    return str(compiled), tuple(compiled.positiontup or ())


#: The bulk sink's ledger insert and the order of its parameters.
LEDGER_SQL, LEDGER_INSERT = _ledger_insert()
#: Rows the bulk sink inserts with one statement (20 parameters each; SQLite takes 32,766).
ROWS_A_STATEMENT = 500
#: Batches the writer process takes ahead of the one it is writing.
RECEIVED_BATCHES = 2
_CHAIN_COLUMNS = tuple(c.name for c in LedgerChain.__table__.columns)


def _ledger_rows_sql(rows: int) -> str:
    """The ledger insert with ``rows`` rows of values."""
    return rows_of_values(LEDGER_SQL, rows)


def _row_layout() -> tuple[tuple[Any, ...], itemgetter[Any] | None, itemgetter[Any] | None]:
    """How ``BulkSink._link`` turns an engine's row tuple into a chained row, by name.

    It knows a row as the engine's tuple (whose sequence number becomes the id), the
    row's place in the chain, and the default of every field the engine does not
    simulate, in that order. Returns those defaults and the getters of the current hash
    recipe's values and (with the hash after them) of the insert's parameters; ``None``
    where the order is already the one wanted, as it is while new fields are added at
    the end of ``LedgerRow``.
    """
    known = ["id", *ROW_COLUMNS[1:], "chain", "seq"]
    unknown = [f for f in FIELDS if f.name not in known and f.part is not Part.HASH]
    known += [f.name for f in unknown]
    hashed = None
    if tuple(known) != CURRENT.fields:
        hashed = itemgetter(*(known.index(n) for n in CURRENT.fields))
    inserted = None
    if (*known, "hash") != LEDGER_INSERT:
        inserted = itemgetter(*([*known, "hash"].index(n) for n in LEDGER_INSERT))
    return tuple(f.default for f in unknown), hashed, inserted


_DEFAULTS, _HASHED, _INSERTED = _row_layout()
_REQUESTED_AT_INDEX = ROW_COLUMNS.index("requested_at")
_REQUESTED_AT = itemgetter(_REQUESTED_AT_INDEX)


def remove_database(url: str) -> None:
    """Delete a SQLite database file and its companions (a run starts from nothing)."""
    if not is_sqlite(url):
        return
    path = sqlite_path(url)
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.with_suffix(".writelock").unlink(missing_ok=True)


def _service_openapi() -> dict[str, dict[str, Any]]:
    """The OpenAPI document of each simulated service (their path templates, for the ledger).

    The service apps only read their world when serving a request, so none is built here.
    """
    from provincial_nodes.services.catalogue import SERVICES

    return {spec.code: spec.factory(None).openapi() for spec in SERVICES}  # type: ignore[arg-type]


async def prepare_database(
    url: str, *, roster: Roster, connections: Connections, as_of: dt.date
) -> Snapshot:
    """A fresh hub database with the roster's registry; returns its registry snapshot."""
    remove_database(url)
    if is_sqlite(url):
        # 16 KiB pages: the ledger's text ids and indexes load about 15 % faster than with
        # 4 KiB. The page size is fixed when the first table is created, so set it first.
        path = sqlite_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path)
        try:
            conn.execute("PRAGMA page_size=16384")
            conn.execute("CREATE TABLE _page_size (x)")
            conn.execute("DROP TABLE _page_size")
        finally:
            conn.close()
    db = Database.connect(url, sqlite_synchronous="OFF")
    try:
        await upgrade_hub_schema(db)
        urls = {node.code: f"http://{node.code.lower()}.sim.invalid" for node in roster}
        raw = registry_document(roster, as_of=as_of, urls=urls, openapi=_service_openapi())
        for node in raw["nodes"]:
            node["connected"] = connections.dates[node["code"]] <= as_of
        document = RegistryDocument.model_validate(raw)
        async with db.write_session() as session:
            await apply_document(session, document=document)
            await session.commit()
        async with db.read_session() as session:
            return await load_snapshot(session)
    finally:
        await db.dispose()


# -- statements -----------------------------------------------------------------------------


def _upsert(make_insert: Any, model: type[Base]) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
    # The hub's writer upserts its rollups this way (ledger._Statements): add the counters.
    table = model.__table__
    assert isinstance(table, Table)
    keys = tuple(c.name for c in table.primary_key.columns)
    counters = tuple(c.name for c in table.columns if c.name not in keys)
    stmt = make_insert(table).values({n: bindparam(n) for n in (*keys, *counters)})
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={n: table.c[n] + stmt.excluded[n] for n in counters}
    )
    return stmt, keys, counters


def _rollup_params(batch: Batch) -> list[tuple[type[Base], list[dict[str, Any]]]]:
    daily = [{"day": d, **dict(zip(DAILY_FIELDS, c, strict=True))} for d, c in batch.daily.items()]
    nodes = [
        {"day": d, "node": n, "role": r, **dict(zip(NODE_FIELDS, c, strict=True))}
        for (d, n, r), c in batch.per_node.items()
    ]
    procedures = [
        {"day": d, "procedure": p, **dict(zip(PROCEDURE_FIELDS, c, strict=True))}
        for (d, p), c in batch.per_procedure.items()
    ]
    return [(DailyStats, daily), (NodeDailyStats, nodes), (ProcedureDailyStats, procedures)]


# -- the bulk SQLite sink -------------------------------------------------------------------


class _Loader:
    """Loads batches into a SQLite hub database (in the writer process)."""

    def __init__(self, path: Path) -> None:
        dialect = sqlite.dialect(paramstyle="qmark")
        self._ledger_many_sql = _ledger_rows_sql(ROWS_A_STATEMENT)
        head = sqlite.insert(LedgerChain).values({c: bindparam(c) for c in _CHAIN_COLUMNS})
        head = head.on_conflict_do_update(
            index_elements=["chain"],
            set_={"head_seq": head.excluded.head_seq, "head_hash": head.excluded.head_hash},
        )
        compiled_head = head.compile(dialect=dialect)
        self._head_sql = (str(compiled_head), tuple(compiled_head.positiontup or ()))
        dossiers = insert(Dossier).values({c: bindparam(c) for c in DOSSIER_COLUMNS})
        self._dossier_sql = str(dossiers.compile(dialect=dialect))
        self._upserts: dict[type[Base], tuple[str, tuple[str, ...]]] = {}
        for model in (DailyStats, NodeDailyStats, ProcedureDailyStats):
            stmt, _, _ = _upsert(sqlite.insert, model)
            compiled = stmt.compile(dialect=dialect)
            self._upserts[model] = (str(compiled), tuple(compiled.positiontup or ()))
        self._conn = sqlite3.connect(path, isolation_level=None)
        # A bulk load into a file nothing else reads yet: no journal, no fsync, a big cache.
        self._conn.execute("PRAGMA journal_mode=OFF")
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute("PRAGMA cache_size=-262144")

    def commit(self, values: list[Any], batch: Batch, head: dict[str, Any] | None) -> None:
        """Insert a batch: its ledger rows (``values``: the rows' parameters one after the
        other, in ``LEDGER_INSERT`` order), chain head, dossiers and rollups."""
        conn = self._conn
        conn.execute("BEGIN")
        step = ROWS_A_STATEMENT * len(LEDGER_INSERT)
        whole = len(values) - len(values) % step
        for start in range(0, whole, step):
            conn.execute(self._ledger_many_sql, values[start : start + step])
        if whole < len(values):
            rest = (len(values) - whole) // len(LEDGER_INSERT)
            conn.execute(_ledger_rows_sql(rest), values[whole:])
        if head is not None:
            sql, order = self._head_sql
            conn.execute(sql, [head[c] for c in order])
        conn.executemany(self._dossier_sql, batch.dossiers)
        for model, params in _rollup_params(batch):
            sql, order = self._upserts[model]
            conn.executemany(sql, [_ordered(p, order) for p in params])
        conn.execute("COMMIT")

    def finish(self) -> float:
        """Hand the file back to WAL, as the hub keeps it; the seconds it took."""
        started = time.perf_counter()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.close()
        return time.perf_counter() - started

    def abandon(self) -> None:
        self._conn.close()


def _null(_value: None) -> None:
    return None


def _load(path: str, batches: Connection, replies: Connection) -> None:
    """The writer process: load every batch received, then finish or abandon."""
    # Its objects are rows, freed batch by batch, and none refers back to another: the
    # cyclic collector would only walk them (a tenth of the process's time).
    gc.disable()
    # Python 3.11's sqlite3 binds a value that is not exactly an int, float, str or bytes
    # only after looking for an adapter, and for a row's None and its Outcome (a str enum)
    # that look-up fails by raising an AttributeError each time: a fifth of the insert's
    # cost. With adapters registered, the look-up finds them at once.
    sqlite3.register_adapter(type(None), _null)
    sqlite3.register_adapter(Outcome, str)
    try:
        loader = _Loader(Path(path))
        # A thread takes the next batches off the pipe while SQLite writes this one (it
        # lets go of the GIL while it works), so the simulating process can hand over a
        # batch and go on even when the writer is not ready for it yet.
        received: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=RECEIVED_BATCHES)
        reader = threading.Thread(target=_receive, args=(batches, received), daemon=True)
        reader.start()
        replies.send(("ready", 0.0))
        while True:
            kind, payload = received.get()
            if kind == "batch":
                loader.commit(*payload)
            elif kind == "finish":
                replies.send(("done", loader.finish()))
                return
            elif kind == "error":
                raise payload
            else:
                loader.abandon()
                replies.send(("done", 0.0))
                return
    except BaseException:
        replies.send(("error", traceback.format_exc()))


def _receive(batches: Connection, received: queue.Queue[tuple[str, Any]]) -> None:
    """The writer process's reading thread: messages from the pipe to the queue."""
    while True:
        try:
            message = batches.recv()
        except BaseException as exc:  # the simulating process is gone: say so, and stop
            received.put(("error", exc))
            return
        received.put(message)
        if message[0] != "batch":
            return


class BulkSink:
    """Writes batches to a SQLite hub database from a process of its own.

    Simulating and writing each want a whole core, and in one process they would share
    one GIL: the writer's ``executemany`` takes it back for every row, so the two ran
    one after the other (measured: 60,000 exchanges/s against 240,000/s simulating
    alone). This process simulates and chains the rows (``_link``); a batch crosses to
    the writer process as one flat list of the insert's parameters, pickled (about 1 µs
    a row each way), while the next one is simulated. On vn-2020 the two processes are
    about even, each busy 8 to 9 µs a row (the writer's mostly SQLite's, indexes included).
    """

    def __init__(self, path: Path, *, chain: str, started_at: int) -> None:
        self._chain = chain
        self._chain_started = started_at
        self._seq = 0
        self._hash = GENESIS
        self._recipe = CURRENT
        context = multiprocessing.get_context("spawn")
        receive_batches, self._batches = context.Pipe(duplex=False)
        self._replies, send_replies = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_load,
            args=(str(path), receive_batches, send_replies),
            name="ngsp-sim-writer",
            daemon=True,
        )
        self._process.start()
        receive_batches.close()
        send_replies.close()
        self._started = False
        self.rows = 0
        self.index_seconds = 0.0
        self.wait_seconds = 0.0

    def _reply(self) -> float:
        try:
            kind, value = self._replies.recv()
        except EOFError:
            raise RuntimeError("the simulation's writer process ended unexpectedly") from None
        if kind == "error":
            raise RuntimeError(f"the simulation's writer process failed:\n{value}")
        return float(value)

    def _send(self, message: tuple[str, Any]) -> None:
        if not self._started:
            self._reply()  # "ready": the database is open and its indexes set aside
            self._started = True
        try:
            self._batches.send(message)
        except (BrokenPipeError, ConnectionResetError):
            self._reply()  # the writer failed: raise its reason
            raise

    def _link(self, batch: Batch) -> tuple[list[Any], dict[str, Any] | None]:
        """Put the rows in time order and link them into the run's hash chain.

        The hub's writer does the same (``Recipe.hash_row``, one chain per writer), so
        ``ngsp ledger verify`` checks a run's ledger like a live one. In time order, the
        time-ordered ids also append to the primary key's index instead of landing all
        over it (15 % faster to insert), and to the other indexes' ends for each of their
        prefixes (a consumer, a provider's service, an outcome, the chain).

        A row's values go to the recipe and to the insert through two getters made from
        the row's definition (``_row_layout``), without a dict per row.
        """
        rows = batch.rows
        if not rows:
            return [], None
        rows.sort(key=_REQUESTED_AT)
        seq, previous, chain = self._seq, self._hash, self._chain
        hash_values, hashed, inserted, defaults = self._recipe.hash, _HASHED, _INSERTED, _DEFAULTS
        when = _REQUESTED_AT_INDEX
        values: list[Any] = []
        extend, append = values.extend, values.append
        for row in rows:
            seq += 1
            known = (virtual_uuid7(row[when], row[0]), *row[1:], chain, seq, *defaults)
            previous = hash_values(previous, known if hashed is None else hashed(known))
            if inserted is None:
                extend(known)
                append(previous)
            else:
                extend(inserted((*known, previous)))
        self._seq, self._hash = seq, previous
        return values, {
            "chain": chain,
            "started_at": self._chain_started,
            "head_seq": seq,
            "head_hash": previous,
            "hash_version": self._recipe.version,
        }

    async def write(self, batch: Batch) -> None:
        self.rows += len(batch.rows)
        values, head = self._link(batch)
        batch.rows = []  # sent as ``values``
        started = time.perf_counter()
        # Blocks only while the writer is still busy with the previous batch.
        self._send(("batch", (values, batch, head)))
        self.wait_seconds += time.perf_counter() - started

    async def close(self, *, keep: bool = True) -> None:
        """Wait for the writes and rebuild the indexes (or, if not ``keep``, just stop)."""
        loop = asyncio.get_running_loop()
        try:
            if self._process.is_alive():
                self._send(("finish" if keep else "abandon", None))
                self.index_seconds = await loop.run_in_executor(None, self._reply)
        finally:
            await loop.run_in_executor(None, self._process.join, 30)
            if self._process.is_alive():
                self._process.kill()
            self._batches.close()
            self._replies.close()


def _ordered(params: dict[str, Any], order: tuple[str, ...]) -> tuple[Any, ...]:
    # SQLite stores dates as ISO text, as SQLAlchemy's Date type does.
    return tuple(v.isoformat() if isinstance(v := params[n], dt.date) else v for n in order)


# -- through the hub's own writer -----------------------------------------------------------


class WriterSink:
    """Writes batches through the hub's ``LedgerWriter``, on any database the hub runs on."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self._engine = engine
        self._writer = LedgerWriter.for_database(
            engine,
            url,
            max_group=5000,
            stats_offset_minutes=STATS_OFFSET_MINUTES,
            sqlite_synchronous="OFF",
        )
        make_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._upserts: dict[type[Base], Any] = {
            model: _upsert(make_insert, model)[0]
            for model in (DailyStats, NodeDailyStats, ProcedureDailyStats)
        }
        self.rows = 0

    async def start(self) -> None:
        await self._writer.start()

    async def write(self, batch: Batch) -> None:
        self.rows += len(batch.rows)
        futures: list[asyncio.Future[Any]] = [
            self._writer.submit(_ledger_row(row)) for row in batch.rows
        ]
        reports = [
            self._writer.report_dossier(
                DossierReport(
                    dossier=str(d[0]),
                    node=str(d[1]),
                    procedure=str(d[2]),
                    outcome=str(d[3]),
                    saving_vnd=int(d[4]),
                    reported_at=int(d[5]),
                )
            )
            for d in batch.dossiers
        ]
        await asyncio.gather(*futures, *reports)
        rest = _remainder(batch)
        async with self._engine.begin() as conn:
            for model, params in _rollup_params(rest):
                if params:
                    await conn.execute(self._upserts[model], params)

    async def close(self) -> None:
        await self._writer.stop()


def _ledger_row(row: tuple[Any, ...]) -> LedgerRow:
    fields = dict(zip(ROW_COLUMNS, row, strict=True))
    fields["id"] = virtual_uuid7(int(fields["requested_at"]), int(fields.pop("seq")))
    return LedgerRow(**fields)


def _remainder(batch: Batch) -> Batch:
    """The rollups of a batch less what its rows and dossier reports add themselves."""
    rest = Batch(
        daily={d: list(c) for d, c in batch.daily.items()},
        per_node={k: list(c) for k, c in batch.per_node.items()},
        per_procedure={k: list(c) for k, c in batch.per_procedure.items()},
    )
    for row in batch.rows:
        (_, consumer, provider, _, _, _, _, _, _, outcome, requested_at, *_) = row
        req, resp = row[14], row[15]
        day = stats_day(int(requested_at), STATS_OFFSET_MINUTES)
        ok = outcome == "ok"
        daily = rest.daily[day]
        daily[0] -= 1
        daily[1 if ok else 2] -= 1
        daily[3] -= int(req)
        daily[4] -= int(resp)
        for node, role in ((consumer, "consumer"), (provider, "provider")):
            if node is not None:
                counts = rest.per_node[(day, str(node), role)]
                counts[0] -= 1
                counts[1 if ok else 2] -= 1
    for d in batch.dossiers:
        day = stats_day(int(d[5]), STATS_OFFSET_MINUTES)
        per = rest.per_procedure[(day, str(d[2]))]
        daily = rest.daily[day]
        if d[3] == "completed":
            per[0] -= 1
            per[2] -= int(d[4])
            daily[5] -= 1
            daily[7] -= int(d[4])
        else:
            per[1] -= 1
            daily[6] -= 1
    rest.daily = {d: c for d, c in rest.daily.items() if any(c)}
    rest.per_node = {k: c for k, c in rest.per_node.items() if any(c)}
    rest.per_procedure = {k: c for k, c in rest.per_procedure.items() if any(c)}
    return rest


class CountingSink:
    """Keeps nothing but the totals: for projections, which need no database."""

    def __init__(self) -> None:
        self.daily: dict[dt.date, list[int]] = {}
        self.per_procedure: dict[tuple[dt.date, str], list[int]] = {}

    async def write(self, batch: Batch) -> None:
        for day, counts in batch.daily.items():
            _add(self.daily.setdefault(day, [0] * len(counts)), counts)
        for key, counts in batch.per_procedure.items():
            _add(self.per_procedure.setdefault(key, [0] * len(counts)), counts)


def _add(into: list[int], values: Iterable[int]) -> None:
    for i, v in enumerate(values):
        into[i] += v
