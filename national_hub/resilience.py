"""Protecting the hub from providers that fail and from more load than it can carry.

* **Circuit breaker, per provider.** After ``failure_threshold`` consecutive failures
  (timeouts, refused connections, 5xx) the circuit opens: the hub answers 503
  ``provider_circuit_open`` at once for ``open_seconds``, without tying up a connection
  on a provider that is not answering. Then one request is let through (half-open); its
  success closes the circuit, its failure opens it again.
* **In-flight bound, per provider.** At most ``per_provider`` exchanges wait on one
  provider; more get 503 ``provider_busy`` with ``Retry-After``, so one slow provider
  cannot take every connection and every byte of memory the hub has.
Admission to the hub as a whole (load shedding) is ``national_hub.admission``.

The state is per worker process: each worker protects itself.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CircuitBreakers",
    "CircuitState",
    "InFlight",
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
    """Counts exchanges in flight per provider, against the bound."""

    def __init__(self, *, per_provider: int) -> None:
        self.per_provider = per_provider
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
