"""Finding capacity: the search logic, and a search against a server of known capacity."""

from __future__ import annotations

from collections import Counter

import pytest

from loadtest.capacity import RateSearch, find_capacity, judge
from loadtest.openloop import LoadResult, Request, new_histogram
from loadtest.runner import GeneratorPool, RunResult, Step
from loadtest.targets import FixedTargetSpec
from tests.loadtest.conftest import Recorder
from tests.support.servers import ThreadServer


def test_the_search_grows_then_bisects() -> None:
    search = RateSearch(100, 10_000, growth=2, refine=2)
    tried = []
    while (rate := search.next_rate()) is not None:
        tried.append(rate)
        search.record(rate, passed=rate <= 500)
    # 100, 200, 400 pass; 800 fails; then (400+800)/2 = 600 fails, (400+600)/2 = 500 passes.
    assert tried == [100, 200, 400, 800, 600, 500]
    assert search.best == 500


def test_the_search_stops_at_the_maximum() -> None:
    search = RateSearch(100, 300, growth=2)
    tried = []
    while (rate := search.next_rate()) is not None:
        tried.append(rate)
        search.record(rate, passed=True)
    assert tried == [100, 200, 300]


def _run(
    *, latency_us: int, ok: int, errors: int, achieved: float, rate: float, late: int = 0
) -> RunResult:
    histogram = new_histogram()
    for _ in range(ok + errors):
        histogram.record_value(latency_us)
    result = LoadResult(
        target_rate=rate,
        duration=1.0,
        scheduled=ok + errors,
        sent=ok + errors,
        completed=ok + errors,
        statuses=Counter({200: ok, 500: errors}),
        errors=Counter(),
        histogram=histogram,
        late_starts=late,
        elapsed=(ok + errors) / achieved,
        by_label={},
    )
    return RunResult(
        step=Step(rate=rate, duration=1.0, max_requests=10_000),
        result=result,
        workers=1,
        worker_cpu=(0.3,),
        mean_factor=1.0,
    )


@pytest.mark.parametrize(
    ("latency_us", "errors", "achieved", "cpu", "late", "limit"),
    [
        (10_000, 0, 1000, 0.3, 0, "ok"),
        (60_000, 0, 1000, 0.3, 0, "latency"),
        (10_000, 5, 1000, 0.3, 0, "errors"),
        (10_000, 0, 800, 0.3, 0, "throughput"),
        (10_000, 0, 1000, 0.97, 0, "generator"),
        (10_000, 0, 1000, 0.8, 50, "generator"),  # busy and late
        (10_000, 0, 1000, 0.3, 50, "ok"),  # late but idle: the machine was short of CPU
    ],
)
def test_judge(
    latency_us: int, errors: int, achieved: float, cpu: float, late: int, limit: str
) -> None:
    run = _run(
        latency_us=latency_us,
        ok=1000 - errors,
        errors=errors,
        achieved=achieved,
        rate=1000,
        late=late,
    )
    run.worker_cpu = (cpu,)
    verdict = judge(run, slo_p99_ms=50, max_error_rate=0.001)
    assert verdict.limit == limit
    assert verdict.passed is (limit == "ok")


@pytest.mark.slow
def test_find_capacity_of_a_server_with_known_capacity(
    recorder: tuple[Recorder, ThreadServer],
) -> None:
    app, server = recorder
    app.service_seconds = 0.005  # one request at a time, 5 ms each: at most 200/s
    spec = FixedTargetSpec(Request("GET", f"{server.url}/ok"))
    with GeneratorPool(spec, workers=1) as pool:
        result = find_capacity(
            pool,
            slo_p99_ms=50,
            start_rate=40,
            max_rate=2_000,
            growth=2,
            refine=2,
            step_seconds=1.2,
            connections=64,
        )
    rates = list(dict.fromkeys(run.step.rate for run, _ in result.steps))  # retries once
    assert rates[:2] == [40, 80]
    # On a busy machine the generator may lag twice in a row: the search then stops there.
    assert result.limited_by in ("latency", "throughput", "generator")
    # Whatever the noise, 40/s is well within what the server answers, 320/s beyond it.
    assert 40 <= result.best.step.rate < 320  # type: ignore[union-attr]
    assert 35 <= result.sustainable_rate <= 210
