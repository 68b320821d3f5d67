"""An open-loop load generator: requests leave on schedule whatever the server does.

A closed-loop tool (a fixed number of clients, each waiting for its answer before the
next request) slows down when the server does, and so never sends the requests that
would have queued: the latency it reports hides the stall (coordinated omission). Here
request *i* is scheduled at ``start + i / rate`` and its latency is measured from that
scheduled moment, so a server that stalls for a second shows a second of queueing in
every request scheduled during the stall.

Latencies go into an HDR histogram (microsecond resolution, 3 significant digits), so
percentiles are exact to 0.1% whatever the run's length.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from hdrh.histogram import HdrHistogram

from common.http1 import Http1Client

__all__ = [
    "LoadResult",
    "Request",
    "TargetRefused",
    "check_target",
    "new_histogram",
    "run_open_loop",
]

#: Highest latency the histogram holds: one hour, in microseconds.
_MAX_US = 3_600_000_000


def new_histogram() -> HdrHistogram:
    """An empty latency histogram: 1 µs to one hour, 3 significant digits."""
    return HdrHistogram(1, _MAX_US, 3)


class TargetRefused(ValueError):
    """The target is not on this machine (or a configured test address)."""


def check_target(url: str, *, allowed: frozenset[str] = frozenset()) -> None:
    """Refuse any target that is not loopback or explicitly allowed."""
    host = urlsplit(url).hostname or ""
    if host in allowed or host == "localhost":
        return
    try:
        if ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise TargetRefused(f"{host or url!r} is not a loopback address; load goes to 127.0.0.1 only")


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    #: A label for the report (a service, a procedure); never request content.
    label: str = ""


@dataclass
class LoadResult:
    """What an open-loop run measured."""

    target_rate: float
    duration: float
    scheduled: int
    sent: int
    completed: int
    statuses: Counter[int]
    errors: Counter[str]
    histogram: HdrHistogram
    #: Requests that left more than 10 ms after their scheduled time: the generator lagged.
    late_starts: int
    elapsed: float
    by_label: dict[str, Counter[str]]
    #: Latencies since the progress callback last reset it (for live p50/p99).
    interval: HdrHistogram = field(default_factory=lambda: new_histogram())
    #: True once sending has stopped and the run is waiting for the last answers.
    draining: bool = False
    #: Latencies by label, when the run was asked to keep them.
    label_histograms: dict[str, HdrHistogram] = field(default_factory=dict)
    #: Latencies of the answers that succeeded (2xx/3xx) alone: what a server that sheds
    #: load (fast 503s) did for the requests it admitted.
    ok_histogram: HdrHistogram = field(default_factory=lambda: new_histogram())

    @property
    def achieved_rate(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 400)

    @property
    def error_count(self) -> int:
        """Answers other than 2xx/3xx, plus transport errors (each completed request once)."""
        return self.completed - self.ok

    def percentile_ms(self, p: float) -> float:
        return float(self.histogram.get_value_at_percentile(p)) / 1000.0

    @property
    def generator_limited(self) -> bool:
        """True when the generator could not keep its own schedule (over 1% late)."""
        return self.late_starts > max(10, self.scheduled // 100)

    def summary(self) -> dict[str, Any]:
        return {
            "target_rate": self.target_rate,
            "achieved_rate": round(self.achieved_rate, 1),
            "scheduled": self.scheduled,
            "completed": self.completed,
            "ok": self.ok,
            "errors": self.error_count,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "transport_errors": dict(self.errors),
            "latency_ms": {
                f"p{p:g}": round(self.percentile_ms(p), 3) for p in (50, 90, 95, 99, 99.9)
            }
            | {"max": round(self.histogram.get_max_value() / 1000.0, 3)},
            "generator_limited": self.generator_limited,
        }


async def run_open_loop(
    next_request: Callable[[int], Request],
    *,
    rate: float,
    duration: float,
    max_requests: int | None = None,
    connections: int = 256,
    request_timeout: float = 30.0,
    max_in_flight: int = 20_000,
    on_progress: Callable[[LoadResult], None] | None = None,
    allowed_hosts: frozenset[str] = frozenset(),
    rate_at: Callable[[float], float] | None = None,
    progress_interval: float = 1.0,
    stop: asyncio.Event | None = None,
    latency_by_label: bool = False,
) -> LoadResult:
    """Send ``next_request(i)`` at ``rate`` per second for ``duration`` seconds.

    ``rate_at(elapsed)``, if given, overrides the rate over time (a daily profile). The
    run stops at ``duration`` or ``max_requests``, whichever comes first, then waits up to
    ``request_timeout`` for answers still in flight. ``on_progress(result)`` is called
    every ``progress_interval`` seconds with the result so far; it may read and reset
    ``result.interval``, the latencies recorded since. Setting ``stop`` ends the sending
    early (an interrupted run), as reaching ``duration`` would. With ``latency_by_label``
    each label's latencies also go into a histogram of their own.
    """
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be positive")
    cap = max_requests if max_requests is not None else int(rate * duration * 1.5) + 1000
    histogram = new_histogram()
    result = LoadResult(
        target_rate=rate,
        duration=duration,
        scheduled=0,
        sent=0,
        completed=0,
        statuses=Counter(),
        errors=Counter(),
        histogram=histogram,
        late_starts=0,
        elapsed=0.0,
        by_label={},
    )
    in_flight: set[asyncio.Task[None]] = set()
    checked: set[str] = set()

    async with Http1Client(limit=connections, timeout=request_timeout) as client:

        async def fire(req: Request, scheduled_at: float) -> None:
            outcome = "unanswered"
            try:
                status, _ = await client.request(
                    req.method, req.url, headers=req.headers, body=req.body
                )
                result.statuses[status] += 1
                outcome = str(status)
            except TimeoutError:
                result.errors["timeout"] += 1
                outcome = "timeout"
            except (OSError, ValueError) as exc:
                outcome = type(exc).__name__
                result.errors[outcome] += 1
            finally:
                # Also when the run gives up on the request (cancelled after the drain).
                if outcome == "unanswered":
                    result.errors[outcome] += 1
                now = time.perf_counter()
                latency_us = max(1, min(int((now - scheduled_at) * 1e6), _MAX_US))
                histogram.record_value(latency_us)
                result.interval.record_value(latency_us)
                if outcome.isdigit() and 200 <= int(outcome) < 400:
                    result.ok_histogram.record_value(latency_us)
                result.completed += 1
                result.by_label.setdefault(req.label, Counter())[outcome] += 1
                if latency_by_label:
                    per_label = result.label_histograms.get(req.label)
                    if per_label is None:
                        per_label = result.label_histograms[req.label] = new_histogram()
                    per_label.record_value(latency_us)

        start = time.perf_counter()
        next_at = start
        i = 0

        async def report_progress() -> None:
            # Its own task, so progress keeps coming when nothing is sent (a quiet hour of
            # a profile) and while the last answers drain.
            assert on_progress is not None
            while True:
                await asyncio.sleep(progress_interval)
                if not result.draining:
                    result.elapsed = time.perf_counter() - start
                on_progress(result)

        reporter = asyncio.create_task(report_progress()) if on_progress is not None else None
        try:
            while i < cap:
                now = time.perf_counter()
                elapsed = now - start
                if elapsed >= duration or (stop is not None and stop.is_set()):
                    break
                current_rate = rate_at(elapsed) if rate_at is not None else rate
                if current_rate <= 0:
                    await asyncio.sleep(0.01)
                    next_at = time.perf_counter()
                    continue
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                    now = time.perf_counter()
                if now - next_at > 0.010:
                    result.late_starts += 1
                req = next_request(i)
                host = urlsplit(req.url).hostname or ""
                if host not in checked:
                    check_target(req.url, allowed=allowed_hosts)
                    checked.add(host)
                result.scheduled += 1
                if len(in_flight) >= max_in_flight:
                    # Too much outstanding work: count the request as failed, do not queue it.
                    result.errors["generator_backlog"] += 1
                    backlog_us = max(1, min(int((now - next_at) * 1e6), _MAX_US))
                    histogram.record_value(backlog_us)
                    result.interval.record_value(backlog_us)
                    result.completed += 1
                else:
                    task = asyncio.create_task(fire(req, next_at))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    result.sent += 1
                i += 1
                next_at += 1.0 / current_rate
            # The rate is what was sent over the sending period, not over the drain after it.
            result.elapsed = time.perf_counter() - start
            result.draining = True
            if in_flight:
                await asyncio.wait(in_flight, timeout=request_timeout + 1)
        finally:
            if reporter is not None:
                reporter.cancel()
            for task in list(in_flight):
                task.cancel()
            pending = [t for t in (reporter, *in_flight) if t is not None]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
    return result
