"""Time in tests: a clock a test moves by hand, and waiting for a condition by polling.

A test that sleeps for as long as something might take is slow when the machine is idle
and flaky when it is busy. A test that polls a condition every few milliseconds goes on
as soon as it holds; its deadline is only a guard against waiting for ever, never what
the test checks.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

__all__ = ["FakeClock", "until", "until_sync"]


class FakeClock:
    """A monotonic clock (seconds) that moves only when the test moves it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    within: float = 10.0,
    interval: float = 0.01,
    what: str = "the condition",
) -> None:
    """Return as soon as ``condition()`` holds (it may be a coroutine function); fail
    the test if it has not held within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within:g} s")
        await asyncio.sleep(interval)


def until_sync(
    condition: Callable[[], bool],
    *,
    within: float = 10.0,
    interval: float = 0.01,
    what: str = "the condition",
) -> None:
    """``until`` for code outside an event loop."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {within:g} s")
        time.sleep(interval)
