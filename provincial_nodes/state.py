"""What the simulated nodes remember: births, residence registrations, cards and dossiers.

The synthetic population is computed, never stored; this is the part that changes when
procedures run. It lives in a SQLite file (``nodes.db``) so a restart keeps it, and in
memory for lookups, which happen on every population query. Writes go to the file first,
in one dedicated thread, and reach memory only once committed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from common.files import private_file

__all__ = ["Birth", "Card", "NodeState", "OneStopDossier", "Residence", "now_iso"]


@dataclass(frozen=True, slots=True)
class Birth:
    """A birth registered with the civil status database; the child's ID is new."""

    record_number: str
    child_id_number: str
    full_name: str
    gender: str
    date_of_birth: str
    place_of_birth: str
    mother_id_number: str
    father_id_number: str | None
    registered_in: str
    registered_at: str


@dataclass(frozen=True, slots=True)
class Residence:
    """A permanent residence registration, the latest of which is a citizen's address."""

    citizen_id_number: str
    province: str
    address: str
    dossier_id: str
    registered_at: str


@dataclass(frozen=True, slots=True)
class Card:
    """A health-insurance card issued (or reissued) by the nodes."""

    card_number: str
    citizen_id_number: str
    kind: str
    valid_from: str
    valid_to: str
    issued_at: str
    reissues: int


@dataclass(frozen=True, slots=True)
class OneStopDossier:
    """A dossier of a province's one-stop system."""

    dossier_id: str
    province: str
    kind: str
    citizen_id_number: str
    status: str
    created_at: str


_T = TypeVar("_T", Birth, Residence, Card, OneStopDossier)

_TABLES: dict[type[Any], tuple[str, str]] = {
    Birth: ("births", "record_number"),
    Residence: ("residences", "dossier_id"),
    Card: ("cards", "card_number"),
    OneStopDossier: ("dossiers", "dossier_id"),
}


def _columns(kind: type[Any]) -> list[str]:
    return [f.name for f in fields(kind)]


class NodeState:
    """The nodes' changing data: a SQLite file, mirrored in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="nodes-state")
        self._conn: sqlite3.Connection | None = None
        self.births_by_id: dict[str, Birth] = {}
        self.births_by_record: dict[str, Birth] = {}
        self.children_of: dict[str, list[str]] = defaultdict(list)
        self.residence: dict[str, Residence] = {}
        self.cards: dict[str, Card] = {}
        self.card_of: dict[str, str] = {}
        self.dossiers: dict[str, OneStopDossier] = {}
        #: Next ordinal per (province, gender, birth year), for new ID numbers.
        self.id_ordinals: dict[tuple[str, str, int], int] = defaultdict(int)
        #: Next sequence number per (province, year), for dossier ids.
        self.dossier_seq: dict[tuple[str, int], int] = defaultdict(int)
        self.birth_seq: dict[tuple[str, int], int] = defaultdict(int)
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        private_file(self.path)
        rows = await self._run(self._open_sync)
        for kind, items in rows.items():
            for values in items:
                self._remember(kind(**values))

    def _open_sync(self) -> dict[type[Any], list[dict[str, Any]]]:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # The simulated agencies' records: WAL with NORMAL survives a crash of the process
        # (not of the machine) at a fraction of FULL's cost per write.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        for kind, (table, key) in _TABLES.items():
            spec = ", ".join(
                f"{c} TEXT PRIMARY KEY" if c == key else f"{c}" for c in _columns(kind)
            )
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({spec})")
        self._conn = conn
        loaded: dict[type[Any], list[dict[str, Any]]] = {}
        for kind, (table, _) in _TABLES.items():
            cols = _columns(kind)
            cursor = conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY rowid")
            loaded[kind] = [dict(zip(cols, row, strict=True)) for row in cursor]
        return loaded

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self._run(_close)
        self._executor.shutdown(wait=True)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _write_sync(self, records: tuple[Any, ...], replace: bool) -> None:
        conn = self._conn
        assert conn is not None, "state not open"
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        with conn:  # one transaction for all of them
            conn.execute("BEGIN")
            for record in records:
                table, _ = _TABLES[type(record)]
                values = asdict(record)
                cols = list(values)
                conn.execute(
                    f"{verb} INTO {table} ({', '.join(cols)}) "
                    f"VALUES ({', '.join('?' for _ in cols)})",
                    [values[c] for c in cols],
                )

    async def save(self, record: _T, *, replace: bool = False) -> _T:
        """Commit a record to the file, then make it visible in memory."""
        await self.save_all(record, replace=replace)
        return record

    async def save_all(self, *records: Any, replace: bool = False) -> None:
        """Commit several records in one transaction, then make them visible in memory."""
        await self._run(self._write_sync, records, replace)
        for record in records:
            self._remember(record)

    def _remember(self, record: Any) -> None:
        if isinstance(record, Birth):
            self.births_by_id[record.child_id_number] = record
            self.births_by_record[record.record_number] = record
            for parent in (record.mother_id_number, record.father_id_number):
                if parent:
                    self.children_of[parent].append(record.child_id_number)
            # Ordinals are handed out in order, so the count per bucket is the next one.
            key = (record.child_id_number[1:3], record.gender, int(record.date_of_birth[:4]))
            self.id_ordinals[key] += 1
            reg_year = int(record.registered_at[:4])
            seq = int(record.record_number.rsplit("-", 1)[1])
            k = (record.registered_in, reg_year)
            self.birth_seq[k] = max(self.birth_seq[k], seq)
        elif isinstance(record, Residence):
            self.residence[record.citizen_id_number] = record
        elif isinstance(record, Card):
            self.cards[record.card_number] = record
            self.card_of[record.citizen_id_number] = record.card_number
        elif isinstance(record, OneStopDossier):
            self.dossiers[record.dossier_id] = record
            year = int(record.created_at[:4])
            seq = int(record.dossier_id.rsplit("-", 1)[1])
            k = (record.province, year)
            self.dossier_seq[k] = max(self.dossier_seq[k], seq)

    @property
    def lock(self) -> asyncio.Lock:
        """Held while a write allocates numbers, so two requests never take the same one."""
        return self._lock


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
