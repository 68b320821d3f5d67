"""Prometheus helpers every service shares: latency buckets and the exposition.

With several worker processes each worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and ``render`` merges them, so every worker's counts appear
whichever worker answers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = [
    "CONTENT_TYPE_LATEST",
    "LATENCY_BUCKETS",
    "drop_created_series",
    "multiprocess_dir",
    "render",
]

#: Seconds: fine below 10 ms, where the hub's own part lives, up to the 10 s timeout.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


def drop_created_series() -> None:
    """Leave out the ``*_created`` series, process-wide: they double the series count and no
    dashboard reads them. Each service's app factory calls it before making its metrics."""
    disable_created_metrics()  # type: ignore[no-untyped-call]


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render(registry: CollectorRegistry) -> bytes:
    """The exposition text: this process's registry, or every worker's in multiprocess mode."""
    if multiprocess_dir():
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
    return generate_latest(registry)
