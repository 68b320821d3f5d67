"""Open-loop load from several generator processes, merged into one result.

One Python process sends a few thousand requests a second before its own event loop
becomes the limit, and a generator at its limit starts requests late (and measures its
own queueing as the server's). So ``GeneratorPool`` starts N worker processes (``spawn``:
nothing inherited but the target's spec), each opens the target once and then runs
steps on command. For each step every worker runs ``run_open_loop`` at ``rate / N``,
starting ``k / rate`` seconds after a common instant so that the merged arrivals stay
evenly spaced. Each worker sends, every second, its counts and an HDR histogram of the
latencies of that second (for the live progress line), and at the end its whole
histogram, encoded; the parent adds the histograms (``decode_and_add``: the sum of HDR
histograms is exact, unlike an average of percentiles) and the counters into one
``LoadResult``.

A worker that used over 90% of a core, or over 70% while starting more than 1% of its
requests over 10 ms late, marks the step as limited by the generator: the figures then say
more about the generator than about the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import queue
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Self

from hdrh.histogram import HdrHistogram

from loadtest.openloop import LoadResult, new_histogram, run_open_loop
from loadtest.profile import DailyProfile, Shape, load_profile
from loadtest.targets import TargetSpec

__all__ = [
    "GeneratorError",
    "GeneratorPool",
    "Progress",
    "RunResult",
    "Step",
    "auto_workers",
    "merge_results",
]

#: What one worker process is expected to send comfortably, requests per second.
WORKER_RATE = 2500.0
#: A worker busier than this share of a core is the limit of the run, not the target.
BUSY_CPU = 0.9
#: A worker this busy that also started requests late was the limit too.
LATE_AND_BUSY_CPU = 0.7
_READY_TIMEOUT = 180.0


class GeneratorError(RuntimeError):
    """A worker process failed; the message carries its traceback."""


def auto_workers(rate: float, *, cpus: int | None = None) -> int:
    """Enough workers for ``rate``, one per ``WORKER_RATE`` requests/s, at most one a core."""
    cores = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, min(cores, math.ceil(rate / WORKER_RATE)))


@dataclass(frozen=True)
class Step:
    """One open-loop run: its full rate, its length and its bounds."""

    rate: float
    duration: float
    max_requests: int
    #: How the rate varies; ``rate`` is its peak.
    shape: Shape = field(default_factory=Shape)
    connections: int = 256
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.duration > 0 and self.max_requests > 0):
            raise ValueError("a step needs a positive rate, duration and request cap")


@dataclass(frozen=True)
class Progress:
    """The live state of a step, about once a second."""

    elapsed: float
    #: Requests answered per second over the last interval, and the rate asked for now.
    rate: float
    target_rate: float
    completed: int
    errors: int
    #: Latency percentiles of the last interval, in milliseconds.
    p50_ms: float
    p99_ms: float
    draining: bool


@dataclass
class RunResult:
    """A step's merged result and what the generator itself looked like."""

    step: Step
    result: LoadResult
    workers: int
    #: Share of one core each worker used from its start to its last answer.
    worker_cpu: tuple[float, ...]
    #: The mean rate multiplier of the step's shape over its duration (1 when flat).
    mean_factor: float
    interrupted: bool = False
    #: The seed of the traffic draws (the same seed on a fresh network repeats the run).
    seed: int = 0

    @property
    def generator_busy(self) -> bool:
        return max(self.worker_cpu, default=0.0) > BUSY_CPU

    @property
    def generator_limited(self) -> bool:
        """The generator's own work limited the step, so its figures are not the target's.

        Late starts alone do not say so: on a machine short of CPU (the target's processes
        beside the generator, other tenants) a generator is descheduled now and then, and
        the latency of its late requests, counted from schedule, already shows it. Late
        starts from a generator that was itself busy do.
        """
        cpu = max(self.worker_cpu, default=0.0)
        return self.generator_busy or (self.result.generator_limited and cpu > LATE_AND_BUSY_CPU)


def merge_results(step: Step, parts: list[Mapping[str, Any]]) -> LoadResult:
    """One ``LoadResult`` from the workers' final summaries (histograms added)."""
    histogram = new_histogram()
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    by_label: dict[str, Counter[str]] = {}
    label_histograms: dict[str, HdrHistogram] = {}
    ok_histogram = new_histogram()
    for part in parts:
        histogram.decode_and_add(part["histogram"])
        if "ok_histogram" in part:
            ok_histogram.decode_and_add(part["ok_histogram"])
        for label, encoded in part.get("label_histograms", {}).items():
            label_histograms.setdefault(label, new_histogram()).decode_and_add(encoded)
        statuses.update({int(k): v for k, v in part["statuses"].items()})
        errors.update(part["errors"])
        for label, outcomes in part["by_label"].items():
            by_label.setdefault(label, Counter()).update(outcomes)
    return LoadResult(
        target_rate=step.rate,
        duration=step.duration,
        scheduled=sum(p["scheduled"] for p in parts),
        sent=sum(p["sent"] for p in parts),
        completed=sum(p["completed"] for p in parts),
        statuses=statuses,
        errors=errors,
        histogram=histogram,
        late_starts=sum(p["late_starts"] for p in parts),
        elapsed=max((p["elapsed"] for p in parts), default=0.0),
        by_label=by_label,
        label_histograms=label_histograms,
        ok_histogram=ok_histogram,
    )


class GeneratorPool:
    """N generator processes with the target open, running steps on command.

    ::

        with GeneratorPool(spec, workers=2) as pool:
            run = pool.run(Step(rate=1000, duration=30, max_requests=40_000))
    """

    def __init__(
        self,
        spec: TargetSpec,
        *,
        workers: int = 1,
        seed: int = 0,
        allowed_hosts: frozenset[str] = frozenset(),
    ) -> None:
        if workers < 1:
            raise ValueError("at least one worker")
        self.spec = spec
        self.workers = workers
        self.seed = seed
        self.allowed_hosts = allowed_hosts
        self.profile = load_profile()
        self._ctx = mp.get_context("spawn")
        self._events: Any = None
        self._commands: list[Any] = []
        self._stop: Any = None
        self._procs: list[BaseProcess] = []

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers and wait until each has opened the target."""
        self._events = self._ctx.Queue()
        self._stop = self._ctx.Event()
        for index in range(self.workers):
            commands = self._ctx.Queue()
            proc = self._ctx.Process(
                target=_worker_main,
                args=(
                    index,
                    self.workers,
                    self.spec,
                    self.seed,
                    self.allowed_hosts,
                    commands,
                    self._events,
                    self._stop,
                ),
                name=f"ngsp-load-{index}",
                daemon=True,
            )
            proc.start()
            self._commands.append(commands)
            self._procs.append(proc)
        ready: set[int] = set()
        deadline = time.monotonic() + _READY_TIMEOUT
        while len(ready) < self.workers:
            kind, index, payload = self._next_event(deadline)
            if kind == "ready":
                ready.add(index)
            elif kind == "error":
                self.close()
                raise GeneratorError(f"generator {index} failed to start:\n{payload}")

    def close(self) -> None:
        """Stop the workers (politely, then by force)."""
        for commands in self._commands:
            with contextlib.suppress(Exception):
                commands.put(None)
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        self._procs.clear()
        self._commands.clear()

    def _next_event(self, deadline: float) -> tuple[str, int, Any]:
        while True:
            try:
                event: tuple[str, int, Any] = self._events.get(timeout=0.25)
                return event
            except queue.Empty:
                pass
            for index, proc in enumerate(self._procs):
                if not proc.is_alive():
                    raise GeneratorError(f"generator {index} exited with {proc.exitcode}")
            if time.monotonic() > deadline:
                raise GeneratorError("the generators did not answer in time")

    def run(
        self, step: Step, *, on_progress: Callable[[Progress], None] | None = None
    ) -> RunResult:
        """Run one step on every worker and merge what they measured.

        Ctrl-C stops the sending early; the answers already on their way are still
        awaited, and the result is marked interrupted.
        """
        self._stop.clear()
        start_at = time.monotonic() + 0.5
        for commands in self._commands:
            commands.put((step, start_at))
        done: dict[int, Mapping[str, Any]] = {}
        latest: dict[int, Mapping[str, Any]] = {}
        interval = new_histogram()
        last_shown, last_completed = start_at, 0
        interrupted = False
        deadline = start_at + step.duration + step.timeout + 60.0
        while len(done) < self.workers:
            try:
                kind, index, payload = self._next_event(deadline)
            except KeyboardInterrupt:
                if interrupted:
                    raise
                interrupted = True
                self._stop.set()
                continue
            if kind == "error":
                raise GeneratorError(f"generator {index} failed:\n{payload}")
            if kind == "done":
                done[index] = payload
            elif kind == "progress":
                latest[index] = payload
                interval.decode_and_add(payload["interval"])
            now = time.monotonic()
            if on_progress is not None and latest and now - last_shown >= 1.0:
                completed = sum(p["completed"] for p in latest.values())
                elapsed = max(p["elapsed"] for p in latest.values())
                on_progress(
                    Progress(
                        elapsed=elapsed,
                        rate=(completed - last_completed) / (now - last_shown),
                        target_rate=step.rate * step.shape.factor(self.profile, elapsed),
                        completed=completed,
                        errors=sum(p["errors"] for p in latest.values()),
                        p50_ms=interval.get_value_at_percentile(50) / 1000.0,
                        p99_ms=interval.get_value_at_percentile(99) / 1000.0,
                        draining=all(p["draining"] for p in latest.values()),
                    )
                )
                interval.reset()
                last_shown, last_completed = now, completed
        parts = [done[i] for i in sorted(done)]
        return RunResult(
            step=step,
            result=merge_results(step, parts),
            workers=self.workers,
            worker_cpu=tuple(p["cpu"] for p in parts),
            mean_factor=step.shape.mean_factor(self.profile, step.duration),
            interrupted=interrupted or any(p["stopped"] for p in parts),
            seed=self.seed,
        )


# --- inside a worker process ----------------------------------------------------------------


def _worker_main(
    index: int,
    workers: int,
    spec: TargetSpec,
    seed: int,
    allowed_hosts: frozenset[str],
    commands: Any,
    events: Any,
    stop: Any,
) -> None:
    # Ctrl-C reaches the whole process group; the parent decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        target = spec.open(worker=index, workers=workers, seed=seed)
        profile = load_profile()
    except BaseException:
        events.put(("error", index, traceback.format_exc()))
        return
    events.put(("ready", index, None))
    while True:
        command = commands.get()
        if command is None:
            return
        step, start_at = command
        try:
            with _event_loop() as runner:
                summary = runner.run(
                    _run_step(
                        target, step, start_at, index, workers, profile, allowed_hosts, events, stop
                    )
                )
        except BaseException:
            events.put(("error", index, traceback.format_exc()))
            return
        events.put(("done", index, summary))


@contextlib.contextmanager
def _event_loop() -> Iterator[asyncio.Runner]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        with asyncio.Runner() as runner:
            yield runner
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        yield runner


async def _run_step(
    target: Any,
    step: Step,
    start_at: float,
    index: int,
    workers: int,
    profile: DailyProfile,
    allowed_hosts: frozenset[str],
    events: Any,
    stop: Any,
) -> dict[str, Any]:
    share = step.rate / workers
    shape = step.shape
    rate_at = None if shape.flat else (lambda elapsed: share * shape.factor(profile, elapsed))
    delay = start_at + index / step.rate - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
    stopped = asyncio.Event()

    async def watch_stop() -> None:
        # ``stop`` is a multiprocessing.Event (set by the parent), which cannot be awaited.
        while not stop.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        stopped.set()

    def progress(result: LoadResult) -> None:
        events.put(
            (
                "progress",
                index,
                {
                    "elapsed": result.elapsed,
                    "completed": result.completed,
                    "errors": result.error_count,
                    "interval": result.interval.encode(),
                    "draining": result.draining,
                },
            )
        )
        result.interval.reset()

    cpu0, wall0 = time.process_time(), time.monotonic()
    helpers = [asyncio.create_task(target.maintain()), asyncio.create_task(watch_stop())]
    try:
        result = await run_open_loop(
            target.request,
            rate=share,
            duration=step.duration,
            max_requests=max(1, math.ceil(step.max_requests / workers)),
            connections=step.connections,
            request_timeout=step.timeout,
            on_progress=progress,
            allowed_hosts=allowed_hosts,
            rate_at=rate_at,
            stop=stopped,
            latency_by_label=True,
        )
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
    cpu = (time.process_time() - cpu0) / max(time.monotonic() - wall0, 1e-6)
    return {
        "scheduled": result.scheduled,
        "sent": result.sent,
        "completed": result.completed,
        "statuses": {str(k): v for k, v in result.statuses.items()},
        "errors": dict(result.errors),
        "by_label": {label: dict(c) for label, c in result.by_label.items()},
        "histogram": result.histogram.encode(),
        "ok_histogram": result.ok_histogram.encode(),
        "label_histograms": {k: h.encode() for k, h in result.label_histograms.items()},
        "late_starts": result.late_starts,
        "elapsed": result.elapsed,
        "cpu": cpu,
        "stopped": stopped.is_set(),
    }
