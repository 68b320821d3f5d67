"""Several generator processes: the rate is split between them, the histograms merged."""

from __future__ import annotations

from collections import Counter

import pytest

from loadtest.openloop import Request, new_histogram
from loadtest.runner import GeneratorPool, Progress, Step, auto_workers, merge_results
from loadtest.targets import FixedTargetSpec
from tests.loadtest.conftest import Recorder
from tests.support.servers import ThreadServer


def test_two_workers_keep_the_rate_and_merge_exactly(
    recorder: tuple[Recorder, ThreadServer],
) -> None:
    app, server = recorder
    spec = FixedTargetSpec(Request("GET", f"{server.url}/ok", label="ok"))
    seen: list[Progress] = []
    with GeneratorPool(spec, workers=2) as pool:
        run = pool.run(Step(rate=300, duration=3.0, max_requests=5_000), on_progress=seen.append)
        arrivals = list(app.arrivals)
        # The same workers run the next step; its request cap is shared between them.
        capped = pool.run(Step(rate=1000, duration=20.0, max_requests=100))
    assert capped.result.completed == len(app.arrivals) - len(arrivals) == 100
    r = run.result
    assert run.workers == 2
    assert len(run.worker_cpu) == 2
    assert r.scheduled == pytest.approx(900, abs=4)
    assert r.completed == r.ok == len(arrivals) == r.histogram.get_total_count()
    assert r.by_label == {"ok": Counter({"200": r.completed})}
    assert r.label_histograms["ok"].get_total_count() == r.completed
    assert r.achieved_rate == pytest.approx(300, rel=0.1)
    # The two workers' arrivals interleave: no second is much busier than another.
    first = arrivals[0]
    per_second = Counter(int(t - first) for t in arrivals)
    assert all(240 <= per_second[s] <= 360 for s in (0, 1)), per_second
    assert seen
    assert seen[-1].completed <= r.completed


def test_merged_percentiles_are_those_of_all_values() -> None:
    parts = []
    everything = new_histogram()
    for offset in (0, 50_000):
        h = new_histogram()
        for v in range(1_000, 40_000, 7):
            h.record_value(v + offset)
            everything.record_value(v + offset)
        parts.append(
            {
                "histogram": h.encode(),
                "statuses": {"200": 10},
                "errors": {"timeout": 1},
                "by_label": {"a": {"200": 10}},
                "scheduled": 11,
                "sent": 11,
                "completed": 11,
                "late_starts": 0,
                "elapsed": 1.0 + offset / 1e6,
            }
        )
    merged = merge_results(Step(rate=10, duration=1, max_requests=100), parts)
    for p in (50, 90, 99, 99.9):
        assert merged.histogram.get_value_at_percentile(p) == everything.get_value_at_percentile(p)
    assert merged.completed == 22
    assert merged.errors == Counter({"timeout": 2})
    assert merged.statuses == Counter({200: 20})
    assert merged.elapsed == pytest.approx(1.05)


def test_auto_workers() -> None:
    assert auto_workers(100, cpus=2) == 1
    assert auto_workers(4_000, cpus=2) == 2
    assert auto_workers(40_000, cpus=2) == 2
    assert auto_workers(40_000, cpus=8) == 8
