"""Failing providers and overload: circuit breaker, in-flight bound, load shedding."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from national_hub.resilience import CircuitBreakers, CircuitState, LagMonitor, LoadShedder
from tests.national_hub.conftest import Hub, build_network
from tests.support.servers import free_port


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
    shedder.in_flight = 50
    assert not shedder.admit()
    lag.lag = 0.001
    assert shedder.admit()
    shedder.in_flight = 100
    assert not shedder.admit()


async def test_circuit_breaker_against_a_dead_provider(
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    hub: Hub = hub_factory(circuit_failures=3, circuit_open_seconds=1.0)
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
    await asyncio.sleep(1.1)
    assert (await client.get(url, headers=auth)).status_code == 200
    assert (await client.get(url, headers=auth)).status_code == 200
    metrics = (await client.get(f"{hub.url}/metrics")).text
    assert 'ngsp_circuit_state{provider="PROV"} 0.0' in metrics


async def test_a_slow_provider_cannot_take_the_hub(
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    hub: Hub = hub_factory(max_in_flight_per_provider=4, provider_timeout_seconds=5.0)
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
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    hub: Hub = hub_factory(max_in_flight=8, provider_timeout_seconds=5.0)
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
    hub_factory: Any, provider: Any, client: httpx.AsyncClient
) -> None:
    """A refused request, body and all, is answered at the protocol; the next request on
    the same keep-alive connection (here pipelined in the same write) is served."""
    hub: Hub = hub_factory(max_in_flight=1, provider_timeout_seconds=5.0)
    net = await build_network(hub, provider, client)
    token = await net.token(client, "CONS")
    auth = {"Authorization": f"Bearer {token}"}
    slow = asyncio.create_task(
        client.get(f"{hub.url}/exchange/PROV/svc/slow?seconds=1.5", headers=auth)
    )
    await asyncio.sleep(0.5)  # the one exchange the hub admits is now in flight
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


def test_shedder_waits_out_a_passing_pause() -> None:
    lag = LagMonitor()
    now = [100.0]
    shedder = LoadShedder(
        max_in_flight=100,
        lag_threshold=0.02,
        lag=lag,
        min_in_flight_to_shed=10,
        sustain_seconds=0.25,
        clock=lambda: now[0],
    )
    shedder.in_flight, lag.lag = 20, 0.5
    assert shedder.admit()  # overload begins: waited out for a while
    now[0] += 0.2
    assert shedder.admit()
    lag.lag = 0.001  # the pause is over
    assert shedder.admit()
    lag.lag = 0.5  # a new one starts the wait again
    now[0] += 0.2
    assert shedder.admit()
    now[0] += 0.3  # it lasted: now it is overload
    assert not shedder.admit()
    lag.lag = 0.001
    assert shedder.admit()
    lag.lag, shedder.in_flight = 0.5, 40  # a crowd four times the threshold: at once
    assert not shedder.admit()
    shedder.in_flight = 100
    assert not shedder.admit()  # the hard bound never waits
    shedder.in_flight, lag.lag = 5, 0.001
    assert shedder.admit()


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
    shedder.in_flight = 20
    for _ in range(10):
        shedder.observe(0.2)
    assert not shedder.admit()  # the hub's own part is slow, with a crowd
    shedder.in_flight = 5
    assert shedder.admit()  # no crowd: admitted, which refreshes the figure
    for _ in range(10):
        shedder.observe(0.002)
    shedder.in_flight = 20
    assert shedder.admit()
