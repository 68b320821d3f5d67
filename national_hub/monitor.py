"""Background watchers of a running hub: node health probes and the rollup gauges.

The hub probes every connected node's ``/healthz`` (which the simulated nodes answer)
every ``probe_interval_seconds``, so operators see a provider go down before consumers
do. Today's and all-time totals are read from the rollup tables, not counted in memory,
so they are right across worker processes and restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.http1 import AnswerTooLarge, Http1Client
from common.pki import node_name
from national_hub.ledger.writer import stats_day
from national_hub.metrics import HubMetrics
from national_hub.models import DailyStats
from national_hub.registry import RegistryCache

__all__ = ["probe_nodes", "refresh_stats"]

log = logging.getLogger("ngsp.hub.monitor")

_PROBE_SECONDS = 2.0


async def _probe(client: Http1Client, url: str, server_name: str) -> bool:
    """Over the hub's own client: mutual TLS to a node that requires it, as exchanges go."""
    try:
        async with asyncio.timeout(_PROBE_SECONDS):
            answer = await client.fetch("GET", url, max_body=4096, server_name=server_name)
    except (OSError, TimeoutError, AnswerTooLarge):  # the client's errors are OSErrors
        return False
    return answer.status < 500


async def probe_nodes(
    registry: RegistryCache,
    client: Http1Client,
    metrics: HubMetrics,
    *,
    interval: float,
) -> None:
    """Probe every connected node forever, ``interval`` seconds apart."""
    while True:
        snapshot = await registry.current()
        nodes = [n for n in snapshot.nodes.values() if n.active and n.base_url]
        started = time.perf_counter()

        async def one(code: str, base_url: str) -> None:
            t0 = time.perf_counter()
            up = await _probe(client, base_url.rstrip("/") + "/healthz", node_name(code))
            metrics.node_up.labels(code).set(1 if up else 0)
            metrics.node_probe_seconds.labels(code).set(time.perf_counter() - t0)

        await asyncio.gather(*(one(n.code, n.base_url) for n in nodes))
        for code, node in snapshot.nodes.items():
            if not node.active:
                # Not probed: a node not connected (yet) is not a node that is down.
                with contextlib.suppress(KeyError):
                    metrics.node_up.remove(code)
                with contextlib.suppress(KeyError):
                    metrics.node_probe_seconds.remove(code)
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))


async def refresh_stats(
    sessions: async_sessionmaker[AsyncSession],
    metrics: HubMetrics,
    *,
    offset_minutes: int,
    interval: float,
) -> None:
    """Copy today's and all-time totals from the rollups into gauges, forever."""
    columns = (
        "transactions",
        "successes",
        "failures",
        "procedures_completed",
        "dossiers_failed",
        "vnd_saved",
    )
    while True:
        try:
            today = stats_day(time.time_ns() // 1000, offset_minutes)
            async with sessions() as session:
                row = await session.get(DailyStats, today)
                totals = (
                    await session.execute(
                        select(
                            *(func.coalesce(func.sum(getattr(DailyStats, c)), 0) for c in columns)
                        )
                    )
                ).one()
            for name, value in zip(columns, totals, strict=True):
                metrics.all_time.labels(name).set(float(value))
                metrics.today.labels(name).set(float(getattr(row, name)) if row else 0.0)
        except Exception as exc:  # the database may be down for a moment; keep going
            log.warning("refreshing the statistics gauges failed: %s", exc)
        await asyncio.sleep(interval)
