"""Protecting the hub from providers that fail and from more load than it can carry.

* **Circuit breaker, per provider.** After ``failure_threshold`` consecutive failures
  (timeouts, refused connections, 5xx) the circuit opens: the hub answers 503
  ``provider_circuit_open`` at once for ``open_seconds``, without tying up a connection
  on a provider that is not answering. Then one request is let through (half-open); its
  success closes the circuit, its failure opens it again.
* **In-flight bound, per provider.** At most ``per_provider`` exchanges wait on one
  provider; more get 503 ``provider_busy`` with ``Retry-After``, so one slow provider
  cannot take every connection and every byte of memory the hub has.
* **Load shedding.** When the hub itself is saturated (its event loop falls behind by more
  than ``lag_threshold`` while many exchanges are in flight, or ``max_in_flight`` is
  reached) new exchanges get 503 ``hub_overloaded`` with ``Retry-After`` before any work
  is done for them, so the ones admitted keep their latency, and the hub recovers the
  moment the flood stops.

The state is per worker process: each worker protects itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CircuitBreakers",
    "CircuitState",
    "InFlight",
    "LagMonitor",
    "LoadShedder",
    "LoginThrottle",
]


class CircuitState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class _Circuit:
    state: CircuitState = CircuitState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probing: bool = False


class CircuitBreakers:
    """One circuit per provider."""

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        open_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, CircuitState], None] | None = None,
    ) -> None:
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}
        self._on_change = on_change

    def _set(self, provider: str, circuit: _Circuit, state: CircuitState) -> None:
        if circuit.state != state:
            circuit.state = state
            if self._on_change is not None:
                self._on_change(provider, state)

    def state(self, provider: str) -> CircuitState:
        circuit = self._circuits.get(provider)
        return circuit.state if circuit else CircuitState.CLOSED

    def retry_after(self, provider: str) -> float | None:
        """None if a request to the provider may go now; else seconds until it may."""
        circuit = self._circuits.get(provider)
        if circuit is None or circuit.state == CircuitState.CLOSED:
            return None
        if circuit.state == CircuitState.OPEN:
            waited = self._clock() - circuit.opened_at
            if waited < self.open_seconds:
                return self.open_seconds - waited
            self._set(provider, circuit, CircuitState.HALF_OPEN)
            circuit.probing = False
        if circuit.probing:  # one probe at a time while half-open
            return 1.0
        circuit.probing = True
        return None

    def abandon(self, provider: str) -> None:
        """A request let through was not sent after all: free the half-open probe."""
        circuit = self._circuits.get(provider)
        if circuit is not None:
            circuit.probing = False

    def record(self, provider: str, success: bool) -> None:
        circuit = self._circuits.setdefault(provider, _Circuit())
        if success:
            circuit.failures = 0
            circuit.probing = False
            self._set(provider, circuit, CircuitState.CLOSED)
            return
        circuit.failures += 1
        circuit.probing = False
        if circuit.state == CircuitState.HALF_OPEN or circuit.failures >= self.failure_threshold:
            circuit.opened_at = self._clock()
            self._set(provider, circuit, CircuitState.OPEN)


class InFlight:
    """Counts exchanges in flight, in all and per provider, against their bounds."""

    def __init__(self, *, per_provider: int) -> None:
        self.per_provider = per_provider
        self.total = 0
        self._by_provider: dict[str, int] = {}

    def try_acquire(self, provider: str) -> bool:
        current = self._by_provider.get(provider, 0)
        if current >= self.per_provider:
            return False
        self._by_provider[provider] = current + 1
        return True

    def release(self, provider: str) -> None:
        remaining = self._by_provider.get(provider, 1) - 1
        if remaining:
            self._by_provider[provider] = remaining
        else:
            self._by_provider.pop(provider, None)

    def of(self, provider: str) -> int:
        return self._by_provider.get(provider, 0)


class LagMonitor:
    """How far the event loop falls behind: a timer's lateness, smoothed."""

    def __init__(
        self,
        *,
        interval: float = 0.02,
        smoothing: float = 0.3,
        on_sample: Callable[[float], None] | None = None,
    ) -> None:
        self.interval = interval
        self.smoothing = smoothing
        self.lag = 0.0
        self._on_sample = on_sample
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval)
            late = max(0.0, loop.time() - started - self.interval)
            self.lag += self.smoothing * (late - self.lag)
            if self._on_sample is not None:
                self._on_sample(self.lag)


class LoadShedder:
    """Decides, at the door, whether a new exchange is admitted.

    The hub is overloaded when exchanges crowd in (at least ``min_in_flight_to_shed`` in
    flight) and either the event loop falls behind (``lag``) or the hub's own part of
    recent exchanges, smoothed over the last few dozen, passes ``added_threshold``. That
    part leaves out the provider's time, so a slow provider (bounded by ``InFlight``) is
    no reason to refuse the others. Below the crowd everything is admitted: that is also
    how the smoothed figure is refreshed after a flood.

    Only overload that lasts ``sustain_seconds`` is shed: a pause (a collection, a slow
    disk write) gathers a crowd and a lag for a moment and clears by itself, and
    refusing exchanges over it would turn a few late answers into errors. A flood keeps
    the crowd and the lag, and is shed once they have lasted that long, or at once when
    the crowd reaches four times ``min_in_flight_to_shed`` (at the hub's capacity a pause
    would have to last a long while to gather that many).

    Once shedding, the hub is in a flood, and admits exchanges only while fewer than
    ``limit`` are in flight. The limit starts at the crowd's size and is adjusted every
    ``adjust_seconds``: while refusals outnumber the admissions, cut by a
    fifth if the loop lags more than ``flood_lag_threshold`` or the hub's own part
    passes ``flood_added_threshold`` (by default half ``added_threshold``, and never
    above it: refusals take CPU from the admitted exchanges, and a queue that was
    tolerable without them is not), else raised by a sixteenth (at least one). So the
    admitted exchanges find a short queue and a loop that turns quickly, whatever the
    refusals cost, and the hub serves as many as that allows. With fewer refusals the
    flood has passed and the limit grows by a quarter each time; once it is back at
    four times the crowd, the hub admits freely again. Waiting for a crowd to gather
    before each refusal, as outside a flood, would let a flood through in waves, each
    as deep as the crowd that ends it.
    """

    def __init__(
        self,
        *,
        max_in_flight: int,
        lag_threshold: float,
        lag: LagMonitor,
        min_in_flight_to_shed: int = 32,
        added_threshold: float = float("inf"),
        smoothing: float = 0.05,
        sustain_seconds: float = 0.0,
        flood_lag_threshold: float | None = None,
        flood_added_threshold: float | None = None,
        adjust_seconds: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        on_limit: Callable[[int], None] | None = None,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.sustain_seconds = sustain_seconds
        self._clock = clock
        #: When the present overload began (None: not overloaded).
        self._overloaded_since: float | None = None
        self.lag_threshold = lag_threshold
        self.flood_lag_threshold = (
            lag_threshold / 3 if flood_lag_threshold is None else flood_lag_threshold
        )
        self.lag = lag
        self.min_in_flight_to_shed = min_in_flight_to_shed
        self.added_threshold = added_threshold
        #: Never looser than the threshold that starts shedding.
        self.flood_added_threshold = min(
            added_threshold,
            added_threshold / 2 if flood_added_threshold is None else flood_added_threshold,
        )
        self.smoothing = smoothing
        self.adjust_seconds = adjust_seconds
        self.added = 0.0
        self.in_flight = 0
        #: The admission limit in force: ``max_in_flight`` unless a flood is on.
        self.limit = max_in_flight
        self.flooding = False
        self._floor = max(1, min_in_flight_to_shed // 8)
        self._adjusted_at = 0.0
        #: Admitted and refused since the limit was last adjusted (during a flood).
        self._admitted = self._refused = 0
        self._on_limit = on_limit

    def observe(self, added_seconds: float) -> None:
        """The hub's own part of an exchange that has just been answered."""
        self.added += self.smoothing * (added_seconds - self.added)

    def enter(self) -> bool:
        """Admit and count in (``in_flight``), or refuse."""
        if self.admit():
            self.in_flight += 1
            return True
        return False

    def admit(self) -> bool:
        if self.in_flight >= self.max_in_flight:
            return False
        if self.flooding:
            self._adjust()
            if self.flooding:
                if self.in_flight < self.limit:
                    self._admitted += 1
                    return True
                self._refused += 1
                return False
        # Lag alone (a pause, a slow commit) is no reason to refuse; lag with a crowd is.
        if not (
            self.in_flight >= self.min_in_flight_to_shed
            and (self.lag.lag > self.lag_threshold or self.added > self.added_threshold)
        ):
            self._overloaded_since = None
            return True
        now = self._clock()
        if self._overloaded_since is None:
            self._overloaded_since = now
        # A crowd four times the threshold is a flood's onset, not a pause: no waiting.
        if (
            self.in_flight < 4 * self.min_in_flight_to_shed
            and now - self._overloaded_since < self.sustain_seconds
        ):
            return True
        self._overloaded_since = None
        self.flooding = True
        self._adjusted_at = now
        self._admitted = self._refused = 0
        self._set_limit(self.min_in_flight_to_shed)
        return False

    def _adjust(self) -> None:
        now = self._clock()
        if now - self._adjusted_at < self.adjust_seconds:
            return
        self._adjusted_at = now
        # A flood while refusals outnumber the admissions: more than twice what the hub
        # serves is being offered. Fewer refusals are the limit's own doing (a load near
        # capacity, or a flood that has passed), and cutting the limit for them would
        # only refuse more: the limit grows instead.
        flood = self._refused > self._admitted
        self._admitted = self._refused = 0
        pressed = self.lag.lag > self.flood_lag_threshold or self.added > self.flood_added_threshold
        if flood and pressed:
            limit = max(self._floor, self.limit * 4 // 5)
        elif flood:
            limit = self.limit + max(1, self.limit // 16)  # feel for room, gently
        else:
            limit = max(self.limit + 1, self.limit * 5 // 4)  # the flood has passed
        if limit >= 4 * self.min_in_flight_to_shed:
            self.flooding = False
            limit = self.max_in_flight
        self._set_limit(limit)

    def _set_limit(self, limit: int) -> None:
        self.limit = limit
        if self._on_limit is not None:
            self._on_limit(limit)


class LoginThrottle:
    """Failed client authentications per client id: too many in a window lock the id.

    While locked, ``/token`` answers 429 for that client id whatever the secret, so a
    secret cannot be guessed by trying. Memory is bounded: ids are forgotten when their
    window passes, and the table is cleared if it ever grows past ``max_ids``.
    """

    def __init__(
        self,
        *,
        max_failures: int = 10,
        window_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_ids: int = 100_000,
    ) -> None:
        self.max_failures = max_failures
        self.window = window_seconds
        self._clock = clock
        self._max_ids = max_ids
        self._failures: dict[str, list[float]] = {}

    def _recent(self, client_id: str) -> list[float]:
        horizon = self._clock() - self.window
        times = [t for t in self._failures.get(client_id, ()) if t > horizon]
        if times:
            self._failures[client_id] = times
        else:
            self._failures.pop(client_id, None)
        return times

    def locked_for(self, client_id: str) -> float | None:
        """Seconds until the id may try again, or None if it may now."""
        times = self._recent(client_id)
        if len(times) < self.max_failures:
            return None
        return max(0.0, times[-self.max_failures] + self.window - self._clock())

    def failed(self, client_id: str) -> None:
        if len(self._failures) >= self._max_ids:
            self._failures.clear()
        self._failures.setdefault(client_id, []).append(self._clock())

    def succeeded(self, client_id: str) -> None:
        self._failures.pop(client_id, None)
