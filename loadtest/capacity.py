"""Find the highest rate a deployment sustains within its latency objective.

The search runs open-loop steps of fixed length: it multiplies the rate by ``growth``
after each step that passes, and once one fails, bisects between the best pass and the
first failure ``refine`` times. A step passes when its p99 (measured from schedule) is
within the SLO, its errors are at most ``max_error_rate`` and it achieved at least 95% of
the rate asked (an open-loop step that falls behind is over capacity even if the
percentiles have not caught up yet). A step on which the generator itself was the limit
(twice in a row: once may be a hiccup of a busy machine) ends the search: the result is
then a lower bound, and says so.

``judge`` and ``RateSearch`` are plain logic, tested without a server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from loadtest.profile import Shape
from loadtest.runner import GeneratorPool, Progress, RunResult, Step

__all__ = ["CapacityResult", "RateSearch", "Verdict", "find_capacity", "judge"]

MIN_ACHIEVED = 0.95


@dataclass(frozen=True)
class Verdict:
    passed: bool
    #: "ok", "latency", "errors", "throughput", "generator" or "interrupted".
    limit: str
    reason: str


def judge(
    run: RunResult,
    *,
    slo_p99_ms: float,
    max_error_rate: float,
    min_achieved: float = MIN_ACHIEVED,
) -> Verdict:
    """Whether one step sustained its rate within the objective, and if not, why."""
    r = run.result
    if run.interrupted:
        return Verdict(False, "interrupted", "interrupted")
    if run.generator_limited:
        return Verdict(False, "generator", "the generator was the limit")
    error_rate = r.error_count / r.completed if r.completed else 1.0
    if error_rate > max_error_rate:
        return Verdict(False, "errors", f"errors {error_rate:.2%} > {max_error_rate:.2%}")
    p99 = r.percentile_ms(99)
    if p99 > slo_p99_ms:
        return Verdict(False, "latency", f"p99 {p99:,.1f} ms > {slo_p99_ms:g} ms")
    asked = run.step.rate * run.mean_factor
    if asked > 0 and r.achieved_rate < min_achieved * asked:
        return Verdict(
            False, "throughput", f"achieved {r.achieved_rate:,.0f}/s of {asked:,.0f}/s asked"
        )
    return Verdict(True, "ok", f"p99 {p99:,.1f} ms, errors {error_rate:.2%}")


@dataclass
class RateSearch:
    """Which rate to try next: geometric growth, then bisection."""

    start: float
    max_rate: float
    growth: float = 1.5
    refine: int = 3
    best: float | None = None
    failed: float | None = None
    _refined: int = 0
    _done: bool = False

    def __post_init__(self) -> None:
        if not (0 < self.start <= self.max_rate) or self.growth <= 1:
            raise ValueError("need 0 < start <= max_rate and growth > 1")

    def next_rate(self) -> float | None:
        """The next rate to try, or None when the search is over."""
        if self._done:
            return None
        if self.failed is None:
            if self.best is None:
                return self.start
            if self.best >= self.max_rate:
                return None
            return min(self.best * self.growth, self.max_rate)
        if self._refined >= self.refine:
            return None
        low = self.best or 0.0
        return (low + self.failed) / 2

    def record(self, rate: float, passed: bool) -> None:
        if self.failed is not None:
            self._refined += 1
        if passed:
            self.best = max(rate, self.best or 0.0)
        else:
            self.failed = rate if self.failed is None else min(self.failed, rate)

    def stop(self) -> None:
        self._done = True


@dataclass
class CapacityResult:
    slo_p99_ms: float
    max_error_rate: float
    steps: list[tuple[RunResult, Verdict]] = field(default_factory=list)
    #: Why the search ended: "latency", "errors", "throughput" (the first failure's limit),
    #: "generator", "max_rate", "interrupted".
    limited_by: str = ""

    @property
    def best(self) -> RunResult | None:
        """The passing step with the highest rate asked."""
        passing = [run for run, verdict in self.steps if verdict.passed]
        return max(passing, key=lambda run: run.step.rate, default=None)

    @property
    def sustainable_rate(self) -> float:
        """Successful exchanges a second in the best passing step (0 if none passed)."""
        best = self.best
        if best is None or not best.result.elapsed:
            return 0.0
        return best.result.ok / best.result.elapsed


def find_capacity(
    pool: GeneratorPool,
    *,
    slo_p99_ms: float,
    max_error_rate: float = 0.001,
    start_rate: float = 100.0,
    max_rate: float = 20_000.0,
    step_seconds: float = 10.0,
    growth: float = 1.5,
    refine: int = 3,
    connections: int = 256,
    timeout: float = 10.0,
    on_step: Callable[[RunResult, Verdict], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> CapacityResult:
    """Step the rate up until the SLO or the error budget breaks; bounded in steps and time."""
    search = RateSearch(start_rate, max_rate, growth=growth, refine=refine)
    outcome = CapacityResult(slo_p99_ms=slo_p99_ms, max_error_rate=max_error_rate)
    while (rate := search.next_rate()) is not None:
        step = Step(
            rate=rate,
            duration=step_seconds,
            max_requests=int(rate * step_seconds * 1.2) + 100,
            shape=Shape(),
            connections=connections,
            timeout=timeout,
        )
        for attempt in range(2):
            run = pool.run(step, on_progress=on_progress)
            verdict = judge(run, slo_p99_ms=slo_p99_ms, max_error_rate=max_error_rate)
            outcome.steps.append((run, verdict))
            if on_step is not None:
                on_step(run, verdict)
            # A generator that lagged once may have been descheduled on a busy machine:
            # the same step again tells a hiccup from a limit.
            if verdict.limit != "generator" or attempt:
                break
        if verdict.limit in ("generator", "interrupted"):
            outcome.limited_by = verdict.limit
            search.stop()
            break
        search.record(rate, verdict.passed)
    if not outcome.limited_by:
        # What broke at the lowest rate that failed: the limit just above the capacity.
        failures = [(run.step.rate, v.limit) for run, v in outcome.steps if not v.passed]
        outcome.limited_by = min(failures)[1] if failures else "max_rate"
    return outcome
