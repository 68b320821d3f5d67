"""Refusals of requests from no known client: counted, not a durable row each.

A request refused before the hub knows who sent it (no token, a forged one, an unknown
client id at ``/token``, no admin token) is the cheapest thing an outsider can send, and
a ledger row each, fsync'd and never removable, would let a stranger fill the ledger and
spend the very capacity the refusal protects. So these are counted in memory per minute,
source address and reason, and written every ``flush_seconds`` as a few aggregated rows
(``refusals``: one per minute, source and reason, with the count). Refusals of known
clients (a grant missing, a node token on the admin API) stay ledger rows.

The number of distinct sources kept per minute is bounded: past ``max_sources`` the rest
count under ``other``, so a crowd of addresses cannot grow the table without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from national_hub.models import refusals_table

__all__ = ["RefusalCounter", "refusals_table"]

log = logging.getLogger("ngsp.hub.refusals")

_OTHER = "other"


def _minute() -> int:
    return int(time.time() // 60)


class RefusalCounter:
    """Counts refusals of unknown senders and writes them in aggregate."""

    def __init__(
        self, engine: AsyncEngine, *, flush_seconds: float = 1.0, max_sources: int = 1000
    ) -> None:
        self._engine = engine
        self.flush_seconds = flush_seconds
        self.max_sources = max_sources
        self._counts: Counter[tuple[int, str, str]] = Counter()
        self._sources: dict[int, set[str]] = {}
        self._task: asyncio.Task[None] | None = None

    def count(self, source: str | None, reason: str) -> None:
        """One refusal of an unknown sender from ``source`` (its address), for ``reason``."""
        minute = _minute()
        seen = self._sources.setdefault(minute, set())
        where = (source or "unknown")[:64]
        if where not in seen:
            if len(seen) >= self.max_sources:
                where = _OTHER
            else:
                seen.add(where)
        self._counts[(minute, where, reason)] += 1

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="refusal-counts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            try:
                await self.flush()
            except Exception as exc:  # the database may be briefly away: keep the counts
                log.warning("refusal counts not written yet: %s", exc)

    async def flush(self) -> None:
        """Add the counts so far to the table, one upsert per (minute, source, reason)."""
        if not self._counts:
            return
        counts, self._counts = self._counts, Counter()
        now = _minute()
        self._sources = {m: s for m, s in self._sources.items() if m >= now - 1}
        rows = [
            {"minute": m, "source": s, "reason": r, "count": n} for (m, s, r), n in counts.items()
        ]
        dialect = sqlite if self._engine.dialect.name == "sqlite" else postgresql
        statement = dialect.insert(refusals_table)
        statement = statement.on_conflict_do_update(
            index_elements=["minute", "source", "reason"],
            set_={"count": refusals_table.c.count + statement.excluded.count},
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(statement, rows)
        except Exception:
            self._counts.update(counts)  # not lost: tried again at the next flush
            raise

    async def since(self, minute: int) -> list[dict[str, int | str]]:
        """The aggregated rows from ``minute`` on, newest first."""
        async with self._engine.connect() as conn:
            result = await conn.execute(
                select(refusals_table)
                .where(refusals_table.c.minute >= minute)
                .order_by(refusals_table.c.minute.desc(), refusals_table.c.count.desc())
                .limit(10_000)
            )
            return [dict(row._mapping) for row in result]
