"""The open-loop generator: it keeps its schedule, and measures latency from it."""

from __future__ import annotations

import pytest

from loadtest.openloop import Request, TargetRefused, check_target, run_open_loop
from tests.loadtest.conftest import Recorder
from tests.support.servers import ThreadServer


async def test_rate_accuracy_against_a_known_server(
    recorder: tuple[Recorder, ThreadServer],
) -> None:
    app, server = recorder
    req = Request("GET", f"{server.url}/ok")
    result = await run_open_loop(lambda i: req, rate=200, duration=3.0, connections=32)
    assert result.scheduled == pytest.approx(600, abs=3)
    assert result.ok == result.completed == len(app.arrivals)
    assert result.achieved_rate == pytest.approx(200, rel=0.1)
    # Arrivals are spread evenly, not in bursts: every half second holds about 100.
    first = app.arrivals[0]
    halves = [0] * 6
    for t in app.arrivals:
        halves[min(5, int((t - first) / 0.5))] += 1
    assert all(70 <= n <= 130 for n in halves[:5]), halves


async def test_a_server_stall_shows_in_p99(recorder: tuple[Recorder, ThreadServer]) -> None:
    app, server = recorder
    app.stall_at, app.stall_for = 1.0, 0.6
    req = Request("GET", f"{server.url}/ok")
    result = await run_open_loop(lambda i: req, rate=200, duration=3.0, connections=32)
    assert result.ok == result.completed
    # About 120 of the 600 requests were scheduled during the stall: their latency counts
    # from their scheduled moment, so the stall is in the tail, whatever the sending.
    assert result.percentile_ms(99) >= 300
    assert result.histogram.get_max_value() / 1000 >= 450
    assert result.percentile_ms(50) < 100


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.8:8000/",
        "http://example.com/",
        "http://203.0.113.7/",
        "http://[2001:db8::1]/",
    ],
)
def test_only_loopback_targets_are_accepted(url: str) -> None:
    with pytest.raises(TargetRefused):
        check_target(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/x", "http://localhost/", "http://[::1]:80/", "http://127.8.9.1/"]
)
def test_loopback_targets_pass(url: str) -> None:
    check_target(url)


def test_a_configured_test_address_passes() -> None:
    check_target("http://10.0.0.8:8000/", allowed=frozenset({"10.0.0.8"}))


async def test_the_generator_refuses_before_sending() -> None:
    req = Request("GET", "http://203.0.113.7:9/never")
    with pytest.raises(TargetRefused):
        await run_open_loop(lambda i: req, rate=100, duration=1.0)


async def test_every_run_stops_at_its_request_cap(
    recorder: tuple[Recorder, ThreadServer],
) -> None:
    app, server = recorder
    req = Request("GET", f"{server.url}/ok")
    result = await run_open_loop(lambda i: req, rate=500, duration=30.0, max_requests=40)
    assert result.scheduled == result.completed == len(app.arrivals) == 40
