"""Failing providers and overload: circuit breaker, in-flight bound, load shedding."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from national_hub.admission import LagMonitor, LoadShedder
from national_hub.resilience import CircuitBreakers, CircuitState
from tests.national_hub.conftest import Hub, build_network
from tests.support.servers import free_port
from tests.support.timing import FakeClock, until


def _answered(shedder: LoadShedder, added_seconds: float) -> None:
    """An exchange in flight is answered: counted out with the hub's own part of it."""
    shedder.in_flight += 1
    shedder.leave(added_seconds)


def test_circuit_opens_probes_and_closes() -> None:
    now = [0.0]
    circuits = CircuitBreakers(failure_threshold=3, open_seconds=10, clock=lambda: now[0])
    for _ in range(2):
        assert circuits.retry_after("P") is None
        circuits.record("P", success=False)
    assert circuits.state("P") is CircuitState.CLOSED
    circuits.record("P", success=False)
    assert circuits.state("P") is CircuitState.OPEN
    assert circuits.retry_after("P") == 10
    now[0] = 10.5
    assert circuits.retry_after("P") is None  # the half-open probe goes through
    assert circuits.state("P") is CircuitState.HALF_OPEN
    assert circuits.retry_after("P") == 1.0  # one probe at a time
    circuits.record("P", success=False)  # the probe failed: open again
    assert circuits.state("P") is CircuitState.OPEN
    now[0] = 21
    assert circuits.retry_after("P") is None
    circuits.record("P", success=True)
    assert circuits.state("P") is CircuitState.CLOSED
    assert circuits.retry_after("P") is None


def test_shedder_needs_a_crowd_and_lag() -> None:
    lag = LagMonitor()
    shedder = LoadShedder(max_in_flight=100, lag_threshold=0.02, lag=lag, min_in_flight_to_shed=10)
    lag.lag = 0.5
    shedder.in_flight = 5
    assert shedder.admit()  # lag, but no crowd: a pause, not overload
    assert not shedder.flooding
    shedder.in_flight = 12
    assert not shedder.admit()  # a crowd and lag (no pause to wait out here)
    assert shedder.flooding


def test_shedder_never_passes_its_hard_bound() -> None:
    shedder = LoadShedder(max_in_flight=100, lag_threshold=0.02, lag=LagMonitor())
    shedder.in_flight = 99
    assert shedder.admit()
    shedder.in_flight = 100
    assert not shedder.admit()  # with no lag and no flood


async def test_circuit_breaker_against_a_dead_provider(
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    hub: Hub = await hub_factory(circuit_failures=3, circuit_open_seconds=1.0)
    clock = FakeClock()
    hub.runtime.circuits._clock = clock  # the open period passes when the test says so
    net = await build_network(hub, provider, client)
    token = await net.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{hub.url}/exchange/PROV/svc/echo"
    live = net.provider.url
    dead = f"http://127.0.0.1:{free_port()}"
    await client.patch(f"{hub.url}/admin/nodes/PROV", headers=hub.admin, json={"base_url": dead})
    codes = [(await client.get(url, headers=auth)).json()["code"] for _ in range(5)]
    assert codes == ["provider_unavailable"] * 3 + ["provider_circuit_open"] * 2
    refused = await client.get(url, headers=auth)
    assert refused.status_code == 503
    assert 1 <= int(refused.headers["retry-after"]) <= 1
    rows = (
        await client.get(
            f"{hub.url}/transactions", params={"outcome": "circuit_open"}, headers=hub.admin
        )
    ).json()["items"]
    assert len(rows) >= 2
    metrics = (await client.get(f"{hub.url}/metrics")).text
    assert 'ngsp_circuit_state{provider="PROV"} 2.0' in metrics
    # The provider comes back: after the open period, the probe closes the circuit.
    await client.patch(f"{hub.url}/admin/nodes/PROV", headers=hub.admin, json={"base_url": live})
    assert (await client.get(url, headers=auth)).json()["code"] == "provider_circuit_open"
    clock.advance(1.1)
    assert (await client.get(url, headers=auth)).status_code == 200
    assert (await client.get(url, headers=auth)).status_code == 200
    metrics = (await client.get(f"{hub.url}/metrics")).text
    assert 'ngsp_circuit_state{provider="PROV"} 0.0' in metrics


async def test_a_slow_provider_cannot_take_the_hub(
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    hub: Hub = await hub_factory(max_in_flight_per_provider=4, provider_timeout_seconds=5.0)
    net = await build_network(hub, provider, client)
    token = await net.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    slow = [
        client.get(f"{hub.url}/exchange/PROV/svc/slow?seconds=1.5", headers=auth) for _ in range(10)
    ]
    answers = await asyncio.gather(*slow)
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) == 4
    busy = [r for r in answers if r.status_code == 503]
    assert len(busy) == 6
    assert all(r.json()["code"] == "provider_busy" for r in busy)
    assert all(r.headers["retry-after"] == "1" for r in busy)


async def test_shedding_under_a_flood_and_recovery(
    served_hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    """A real server: under a flood the door sheds at the protocol, before the app."""
    hub: Hub = served_hub_factory(max_in_flight=8, provider_timeout_seconds=5.0)
    net = await build_network(hub, provider, client)
    token = await net.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    flood = [
        client.get(f"{hub.url}/exchange/PROV/svc/slow?seconds=0.5", headers=auth) for _ in range(40)
    ]
    answers = await asyncio.gather(*flood)
    shed = [r for r in answers if r.status_code == 503]
    assert [r.json()["code"] for r in shed] == ["hub_overloaded"] * len(shed)
    assert len(shed) >= 30
    assert all(r.headers["retry-after"] == "1" for r in shed)
    assert sum(r.status_code == 200 for r in answers) >= 8
    started = time.monotonic()
    after = await client.get(f"{hub.url}/exchange/PROV/svc/echo", headers=auth)
    assert after.status_code == 200  # recovered as soon as the flood ended
    assert time.monotonic() - started < 5
    metrics = (await client.get(f"{hub.url}/metrics")).text
    assert 'ngsp_shed_total{reason="hub_overloaded"}' in metrics
    assert "ngsp_admission_limit 8.0" in metrics  # no flood limit in force: the hard bound


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length, read off a raw connection."""
    status_line = await reader.readline()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, value = line.decode().split(":", 1)
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, body


async def test_the_door_sheds_before_the_app_and_the_connection_goes_on(
    served_hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    """A refused request, body and all, is answered at the protocol; the next request on
    the same keep-alive connection (here pipelined in the same write) is served."""
    hub: Hub = served_hub_factory(max_in_flight=1, provider_timeout_seconds=5.0)
    net = await build_network(hub, provider, client)
    token = await net.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    slow = asyncio.create_task(
        client.get(f"{hub.url}/exchange/PROV/svc/slow?seconds=1.5", headers=auth)
    )
    # The one exchange the hub admits is now in flight.
    await until(lambda: hub.runtime.shedder.in_flight == 1, what="the slow exchange admitted")
    host, port = hub.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = b'{"applicant": {"name": "A"}}'
    head = f"Host: {host}\r\nAuthorization: Bearer {token}\r\n"
    writer.write(
        (
            f"POST /exchange/PROV/svc/echo HTTP/1.1\r\n{head}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        + f"GET /exchange/PROV/svc/echo HTTP/1.1\r\n{head}\r\n".encode()
    )
    shed = [await asyncio.wait_for(_read_response(reader), 5) for _ in range(2)]
    for status, headers, answer in shed:
        assert status == 503
        assert headers["retry-after"] == "1"
        assert headers["content-type"] == "application/problem+json"
        assert json.loads(answer)["code"] == "hub_overloaded"
    assert (await slow).status_code == 200
    writer.write(f"GET /exchange/PROV/svc/echo HTTP/1.1\r\n{head}\r\n".encode())
    status, headers, answer = await asyncio.wait_for(_read_response(reader), 5)
    assert status == 200
    assert headers["x-transaction-id"]
    writer.close()
    # Shed requests are counted, not written: the ledger holds the two served exchanges.
    rows = (await client.get(f"{hub.url}/transactions", headers=hub.admin)).json()["items"]
    assert len(rows) == 2
    metrics = (await client.get(f"{hub.url}/metrics")).text
    assert 'ngsp_shed_total{reason="hub_overloaded"} 2.0' in metrics


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _shedder(clock: _Clock, lag: LagMonitor, **options: Any) -> LoadShedder:
    settings: dict[str, Any] = {
        "max_in_flight": 1000,
        "lag_threshold": 0.02,
        "flood_lag_threshold": 0.005,
        "min_in_flight_to_shed": 10,
        "sustain_seconds": 0.25,
        "adjust_seconds": 0.02,
        "clock": clock,
    }
    return LoadShedder(lag=lag, **(settings | options))


def test_shedder_waits_out_a_passing_pause() -> None:
    lag, clock = LagMonitor(), _Clock()
    shedder = _shedder(clock, lag)
    shedder.in_flight, lag.lag = 20, 0.5
    assert shedder.admit()  # overload begins: waited out for a while
    clock.now += 0.2
    assert shedder.admit()
    lag.lag = 0.001  # the pause is over
    assert shedder.admit()
    lag.lag = 0.5  # a new one starts the wait again
    clock.now += 0.2
    assert shedder.admit()
    assert not shedder.flooding
    clock.now += 0.3  # it lasted: now it is overload
    assert not shedder.admit()
    assert shedder.flooding


def test_shedder_refuses_a_large_crowd_at_once() -> None:
    lag, clock = LagMonitor(), _Clock()
    shedder = _shedder(clock, lag)
    lag.lag, shedder.in_flight = 0.5, 40  # four times the crowd: a flood's onset
    assert not shedder.admit()
    assert shedder.flooding
    assert shedder.limit == 10


def test_a_flood_is_held_to_a_limit_that_follows_the_loop() -> None:
    lag, clock = LagMonitor(), _Clock()
    limits: list[int] = []
    shedder = _shedder(clock, lag, on_limit=limits.append)
    lag.lag, shedder.in_flight = 0.5, 40
    assert not shedder.admit()
    assert limits == [10]
    # In the flood, admitted below the limit and refused at it, whatever the lag.
    shedder.in_flight = 9
    assert shedder.admit()
    shedder.in_flight = 10
    assert not shedder.admit()
    assert not shedder.admit()

    def window(refused: int, admitted: int) -> None:
        clock.now += 0.021
        for _ in range(refused):
            shedder.in_flight = 999
            assert not shedder.admit()
        for _ in range(admitted):
            shedder.in_flight = 0
            assert shedder.admit()

    # Mostly refusals and a lagging loop: the limit is cut by a fifth each time, down to
    # an eighth of the crowd.
    window(50, 10)
    window(50, 10)
    assert limits[-2:] == [8, 6]
    for _ in range(10):
        window(50, 10)
    assert shedder.limit == 1
    # The loop keeps up: the limit grows again.
    lag.lag = 0.001
    window(50, 10)
    window(50, 10)
    assert shedder.limit == 3
    # Pressed, but the flood is over (a few refusals, many admissions): it grows too.
    # (Each adjustment weighs the window before it: the first one still saw the flood.)
    lag.lag = 0.5
    for _ in range(3):
        window(2, 50)
    assert shedder.limit == 4
    # Grown back to four times the crowd: the flood is over, admission is free again.
    for _ in range(200):
        window(0, 5)
        if not shedder.flooding:
            break
    assert not shedder.flooding
    assert shedder.limit == 1000
    assert limits[-1] == 1000
    shedder.in_flight, lag.lag = 30, 0.001
    assert shedder.admit()


def test_a_flood_ends_when_only_the_limit_refuses() -> None:
    """After a flood, a normal load is not held to the flood's limit for long: the few
    exchanges that limit refuses are not a flood, so it grows back even if the loop lags."""
    lag, clock = LagMonitor(), _Clock()
    shedder = _shedder(clock, lag)
    lag.lag, shedder.in_flight = 0.5, 40
    assert not shedder.admit()
    refused = 0
    for _ in range(400):
        clock.now += 0.021
        for in_flight in (0, 3, 6, 9, 12):  # a steady load needing up to 12 in flight
            shedder.in_flight = in_flight
            refused += not shedder.admit()
        if not shedder.flooding:
            break
    assert not shedder.flooding
    assert refused <= 12


def test_shedder_watches_the_hubs_own_part() -> None:
    lag = LagMonitor()
    shedder = LoadShedder(
        max_in_flight=100,
        lag_threshold=0.05,
        lag=lag,
        min_in_flight_to_shed=10,
        added_threshold=0.025,
        smoothing=0.5,
    )
    shedder.in_flight = 5
    for _ in range(10):
        _answered(shedder, 0.2)
    assert shedder.admit()  # no crowd: admitted, which refreshes the figure
    for _ in range(10):
        _answered(shedder, 0.002)
    shedder.in_flight = 20
    assert shedder.admit()  # a crowd, but the hub's own part is quick
    for _ in range(10):
        _answered(shedder, 0.2)
    assert not shedder.admit()  # the hub's own part is slow, with a crowd
    assert shedder.flooding


def test_a_flood_is_held_to_a_tighter_hub_part_than_starts_shedding() -> None:
    """In a flood the limit is cut while the hub's own part passes the flood's threshold,
    though it is below the one that starts shedding; below both, the limit grows."""
    lag, clock = LagMonitor(), _Clock()
    shedder = _shedder(clock, lag, added_threshold=0.02, flood_added_threshold=0.01, smoothing=1.0)
    lag.lag, shedder.in_flight = 0.5, 40
    assert not shedder.admit()
    assert shedder.limit == 10
    lag.lag = 0.001  # the loop keeps up; only the hub's part tells

    def window() -> None:
        clock.now += 0.021
        for in_flight in (999, 999, 999, 0):  # refusals outnumber admissions: a flood
            shedder.in_flight = in_flight
            shedder.admit()

    # (Each adjustment weighs the window before it: the first saw no refusals yet.)
    window()
    assert shedder.limit == 12
    _answered(shedder, 0.015)  # over the flood's threshold, under the starting one
    window()
    window()
    assert shedder.limit == 7  # cut twice by a fifth: 12 -> 9 -> 7
    _answered(shedder, 0.005)  # under both
    window()
    window()
    assert shedder.limit == 9  # grown by a sixteenth (at least one) each time
    assert shedder.flooding
