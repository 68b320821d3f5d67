"""Admission to the hub: whether a new exchange is let in at all, so that those let in keep
their latency when more arrives than the hub can carry.

When the hub itself is saturated (its event loop falls behind by more than
``lag_threshold`` while many exchanges are in flight, or ``max_in_flight`` is reached)
new exchanges get 503 ``hub_overloaded`` with ``Retry-After`` before any work is done for
them, so the ones admitted keep their latency, and the hub recovers the moment the flood
stops.

An exchange is counted in by ``LoadShedder.enter`` (at the server's door, or by the
handler when served without one) and out by ``LoadShedder.leave``, and nowhere else. The
state is per worker process: each worker protects itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

__all__ = ["LagMonitor", "LoadShedder"]


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

    def enter(self) -> bool:
        """Admit and count in (``in_flight``), or refuse. Every admission ends in ``leave``."""
        if self.admit():
            self.in_flight += 1
            return True
        return False

    def leave(self, added_seconds: float | None = None) -> None:
        """Count an admitted exchange out, with the hub's own part of it if it was answered."""
        self.in_flight -= 1
        if added_seconds is not None:
            self.added += self.smoothing * (added_seconds - self.added)

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
