"""The report: projections per day, savings, references, JSON."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from loadtest.openloop import LoadResult, Request, new_histogram
from loadtest.profile import Shape, load_profile
from loadtest.report import Reference, build_report, project
from loadtest.runner import RunResult, Step
from loadtest.targets import Target
from loadtest.traffic import Savings


@dataclass(frozen=True)
class _Spec:
    """A target spec whose successful requests each save 1,000 VND."""

    kind: str = "test"

    def urls(self) -> list[str]:
        return ["http://127.0.0.1:9"]

    def open(self, *, worker: int, workers: int, seed: int) -> Target:  # pragma: no cover
        raise NotImplementedError

    def savings(self, ok_by_label: Mapping[str, int]) -> Savings | None:
        n = sum(ok_by_label.values())
        return Savings(vnd=1_000 * n, dossiers={"1.003011": n}, basis="test")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": "http://127.0.0.1:9"}


def _run(*, ok: int, errors: int, elapsed: float, shape: Shape | None = None) -> RunResult:
    shape = shape or Shape()
    histogram = new_histogram()
    for i in range(ok + errors):
        histogram.record_value(1000 + i)  # about 1 ms each
    result = LoadResult(
        target_rate=ok / elapsed,
        duration=elapsed,
        scheduled=ok + errors,
        sent=ok + errors,
        completed=ok + errors,
        statuses=Counter({200: ok, 503: errors}),
        errors=Counter(),
        histogram=histogram,
        late_starts=0,
        elapsed=elapsed,
        by_label={"citizen-check": Counter({"200": ok, "503": errors})},
    )
    step = Step(rate=ok / elapsed, duration=elapsed, max_requests=10 * ok, shape=shape)
    mean = shape.mean_factor(load_profile(), elapsed)
    return RunResult(step=step, result=result, workers=1, worker_cpu=(0.2,), mean_factor=mean)


def test_projection_of_a_flat_rate() -> None:
    profile = load_profile()
    p = project(1_000.0, mean_factor=1.0, profile=profile, shape="flat")
    assert p.per_day_flat == pytest.approx(86_400_000)
    assert p.day_shape == "weekday"
    assert p.per_day_shaped == pytest.approx(86_400_000 * profile.mean("weekday"))
    assert p.vnd_per_day(p.per_day_flat) is None


def test_a_profiled_run_projects_from_its_peak() -> None:
    profile = load_profile()
    # A run that played half a weekday achieved its mean rate; the peak is above it.
    p = project(300.0, mean_factor=0.5, profile=profile, shape="weekday", savings_vnd=600, ok=6)
    assert p.peak_rate == pytest.approx(600.0)
    assert p.per_day_shaped == pytest.approx(600 * profile.mean("weekday") * 86_400)
    assert p.vnd_per_day(p.per_day_shaped) == pytest.approx(100 * p.per_day_shaped)


def test_the_report_sets_the_projection_beside_the_references() -> None:
    profile = load_profile()
    run = _run(ok=9_990, errors=10, elapsed=10.0)
    refs = (Reference("NDXP 2024", 2_500_000, "FACTS.md"),)
    report = build_report(run, _Spec(), profile, references=refs)
    assert report["counts"] == {
        "scheduled": 10_000,
        "sent": 10_000,
        "completed": 10_000,
        "ok": 9_990,
        "errors": 10,
        "error_rate": 0.001,
    }
    assert report["achieved"]["ok_rate"] == pytest.approx(999.0)
    shaped = 999.0 * profile.mean("weekday") * 86_400
    assert report["projection"]["per_day_around_the_clock"] == round(999.0 * 86_400)
    assert report["projection"]["per_day_shaped"] == round(shaped)
    assert report["projection"]["vnd_per_day_shaped"] == round(shaped * 1_000)
    assert report["references"][0]["ratio_shaped"] == pytest.approx(shaped / 2_500_000, rel=1e-3)
    assert report["outcomes"] == {"200": 9_990, "503": 10}
    assert report["by_kind"]["citizen-check"]["errors"] == {"503": 10}
    assert report["latency_ms"]["p50"] == pytest.approx(6.0, rel=0.01)
    assert report["generator"]["limited"] is False
    json.dumps(report)  # what --json writes


def test_the_packaged_references_are_the_published_volumes() -> None:
    from loadtest.report import load_references

    volumes = [r.per_day for r in load_references()]
    assert volumes == [7_600, 1_600_000, 2_500_000, 5_000_000]


def test_a_fixed_target_saves_nothing() -> None:
    from loadtest.targets import FixedTargetSpec

    spec = FixedTargetSpec(Request("GET", "http://127.0.0.1:9/"))
    report = build_report(_run(ok=100, errors=0, elapsed=1.0), spec, load_profile())
    assert report["savings"] is None
    assert report["projection"]["vnd_per_day_shaped"] is None
