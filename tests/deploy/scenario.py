"""The platform under watch: real services, real traffic, real faults, a real Prometheus.

``start_stack`` starts what the compose stack runs, on loopback ports: the hub on
PostgreSQL, the simulated network (all 97 nodes of 2020), the gateway on PostgreSQL, and
Prometheus with the project's scrape configuration and alert rules, scraping every second.
``Scenario.run`` then drives traffic through the network and provokes each alert's
condition for real, one after the other, recording what Prometheus answers at each
moment; the tests assert on the record.

The timeline (about a minute and a half, most of it waiting for ``SILENT``'s minute):

1. healthy traffic, which goes on to the end: exchanges between several nodes, dossiers
   through the gateway (a failing one among them), refused tokens and grants, a key over
   its rate limit; one consumer (``SILENT``) takes part for the first seconds only;
2. healthy check: no alert expression answers and no alert is pending;
3. a provider stopped (an outage of ``DOWN``: its port refuses connections);
4. errors injected (every answer of ``ERRORS`` a 500);
5. every dashboard query evaluated;
6. a slow database: every ledger insert waits 100 ms (a trigger), so the ledger falls
   behind the traffic (hub latency, ledger backlog);
7. a failing database: every ledger insert raises (ledger commit failures);
8. the gateway stopped (a scrape target down);
9. ``SILENT`` has been quiet for a minute (a node's traffic dropped to zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from common.credentials import CredentialsFile
from common.hubclient import HubClient
from gateway.app import create_app as create_gateway_app
from gateway.settings import GatewaySettings
from tests.conftest import POSTGRES_ADMIN_DSN
from tests.deploy.support import (
    PanelQuery,
    PrometheusServer,
    alert_rules,
    label_values_query,
    substitute,
)
from tests.support.hub import Hub, hub_starter
from tests.support.nodes import network_of, nodes_starter
from tests.support.servers import ThreadServer, free_port

#: The node the node-detail dashboard is checked with.
NODE = "P01"
#: A consumer that sends traffic in the first phase only.
SILENT = "P04"
#: The provider stopped, and the node whose answers fail.
DOWN = "DATDAI"
ERRORS = "P01"
#: Consumers that keep sending all along.
ACTIVE = ("P01", "P79", "P48", "BCA", "BTP")

GATEWAY_ADMIN = "gateway-admin-token-0123456789abcdef"
PORTAL = "portal-secret-chosen-by-the-operator-0123"
#: Background exchanges per second, all the way through.
RATE = 20.0

_FAULT_SQL = """
CREATE TABLE ngsp_test_ledger_fault (
    id int PRIMARY KEY, sleep_ms int NOT NULL, fail boolean NOT NULL
);
INSERT INTO ngsp_test_ledger_fault VALUES (1, 0, false);
CREATE FUNCTION ngsp_test_ledger_fault() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE f ngsp_test_ledger_fault;
BEGIN
    SELECT * INTO f FROM ngsp_test_ledger_fault WHERE id = 1;
    IF f.fail THEN
        RAISE EXCEPTION 'injected ledger failure';
    END IF;
    IF f.sleep_ms > 0 THEN
        PERFORM pg_sleep(f.sleep_ms / 1000.0);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ngsp_test_ledger_fault BEFORE INSERT ON ledger
    FOR EACH ROW EXECUTE FUNCTION ngsp_test_ledger_fault();
"""


@dataclass
class Stack:
    """The running services and Prometheus."""

    hub: Hub
    nodes: ThreadServer
    gateway: ThreadServer
    prometheus: PrometheusServer
    hub_dsn: str
    credentials: Path

    @property
    def network(self) -> Any:
        return network_of(self.nodes)


@dataclass
class Record:
    """What Prometheus answered during the scenario."""

    panels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    panel_errors: dict[str, str] = field(default_factory=dict)
    variables: dict[str, list[str]] = field(default_factory=dict)
    healthy: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    healthy_alerts: list[dict[str, Any]] = field(default_factory=list)
    provoked: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    provoked_states: dict[str, set[str]] = field(default_factory=dict)
    rule_groups: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# -- the stack ------------------------------------------------------------------------


def _pg(statement: str, dsn: str = POSTGRES_ADMIN_DSN) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[tuple[str, str]]:
    """A fresh database on the test PostgreSQL; its SQLAlchemy and asyncpg URLs."""
    _pg(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield base.replace("postgresql://", "postgresql+asyncpg://") + f"/{name}", f"{base}/{name}"
    finally:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def start_stack(prometheus_binary: str, workdir: Path) -> Iterator[Stack]:
    """The compose stack's services on loopback ports, and Prometheus; stopped on exit.

    As in deploy/docker-compose.yml: the hub and the gateway in production (secrets set,
    nothing written to credentials.json by the hub), each on its own PostgreSQL database,
    the nodes writing their credentials to a directory of their own that the gateway
    reads, with the hub's URL put there first. One difference: the gateway counts rate
    limits in process, as it leaves its Redis connections open when it stops (Redis-shared
    limits are tested in tests/gateway).
    """
    prefix = f"ngsp_t_{uuid.uuid4().hex[:10]}"
    with (
        postgres_database(f"{prefix}_hub") as (hub_url, hub_dsn),
        postgres_database(f"{prefix}_gw") as (gateway_db, _),
        contextlib.ExitStack() as stops,
    ):
        start_hub, stop_hubs = hub_starter(workdir / "hub", hub_url)
        start_nodes, stop_nodes = nodes_starter(workdir / "shared")
        stops.callback(stop_hubs)
        stops.callback(stop_nodes)
        hub = start_hub(
            environment="production",
            provider_timeout_seconds=2.0,
            probe_interval_seconds=1.0,
            stats_refresh_seconds=1.0,
        )
        _pg(_FAULT_SQL, hub_dsn)
        credentials = workdir / "shared" / "credentials.json"
        CredentialsFile(credentials).set_section("hub", {"url": hub.url})
        nodes = start_nodes(hub)
        # The operator connects the public service portal (the gateway's own identity, the
        # one that reports completed dossiers) with a secret of its choosing.
        gateway_port = free_port()
        portal = httpx.post(
            f"{hub.url}/admin/registry",
            json={
                "nodes": [
                    {
                        "code": "DVCQG",
                        "name": "Cổng Dịch vụ công quốc gia",
                        "kind": "portal",
                        "base_url": f"http://127.0.0.1:{gateway_port}",
                        "credentials": [{"client_id": "dvcqg-portal", "client_secret": PORTAL}],
                    }
                ],
                "grants": [],
            },
            headers=hub.admin,
            timeout=30,
        )
        assert portal.status_code == 200, portal.text
        settings = GatewaySettings(
            environment="production",
            data_dir=workdir / "gateway",
            database_url=gateway_db,
            hub_url=hub.url,
            credentials_file=credentials,
            admin_token=GATEWAY_ADMIN,
            port=gateway_port,
            portal_client_id="dvcqg-portal",
            portal_client_secret=PORTAL,
        )
        gateway = ThreadServer(create_gateway_app(settings), port=settings.port).start()
        stops.callback(gateway.stop)
        prometheus = PrometheusServer(
            prometheus_binary,
            workdir / "prometheus",
            {
                "ngsp-hub": [hub.url.removeprefix("http://")],
                "ngsp-nodes": [nodes.url.removeprefix("http://")],
                "ngsp-gateway": [gateway.url.removeprefix("http://")],
            },
        )
        stops.callback(prometheus.stop)
        prometheus.start()
        yield Stack(
            hub=hub,
            nodes=nodes,
            gateway=gateway,
            prometheus=prometheus,
            hub_dsn=hub_dsn,
            credentials=credentials,
        )


# -- traffic --------------------------------------------------------------------------


Call = tuple[str, str, str, str]  # provider, service, method, path


class Traffic:
    """Open-loop exchanges between nodes, and dossiers through the gateway, until stopped."""

    def __init__(self, stack: Stack, samples: dict[str, Any], http: httpx.AsyncClient) -> None:
        self.stack = stack
        self.http = http
        self.samples = samples
        self.active = {*ACTIVE, SILENT}
        self.clients = {
            code: HubClient.from_credentials(stack.credentials, code, http=http)
            for code in self.active
        }
        self.in_flight: set[asyncio.Task[None]] = set()
        self.last_done: dict[str, float] = {}
        self.statuses: dict[int, int] = {}
        self.transport_errors = 0
        self.dossiers = True
        self.gateway_key = ""
        self._tasks: list[asyncio.Task[None]] = []

    def calls(self, consumer: str) -> list[Call]:
        s = self.samples
        calls: list[Call] = [
            ("DANCU", "population", "GET", f"/citizens/{s['citizens'][0]['id_number']}"),
            ("DANCU", "population", "GET", f"/citizens/{s['citizens'][1]['id_number']}/household"),
            ("DANCU", "population", "GET", "/citizens/001099000000"),
            ("BAOHIEM", "health-insurance", "GET", f"/cards/{s['citizens'][2]['card_number']}"),
            ("DATDAI", "land", "GET", f"/parcels/{s['parcel_ids'][0]}"),
            ("DOANHNGHIEP", "business-registry", "GET", f"/enterprises/{s['tax_codes'][0]}"),
            ("HOTICH", "civil-status", "GET", "/births/unknown-record"),
        ]
        if consumer.startswith("P"):
            calls.append((consumer, "one-stop", "GET", "/dossiers/unknown-dossier"))
        return calls

    async def _one(self, consumer: str, call: Call) -> None:
        provider, service, method, path = call
        try:
            resp = await self.clients[consumer].call(provider, service, method, path)
            self.statuses[resp.status_code] = self.statuses.get(resp.status_code, 0) + 1
        except httpx.HTTPError:
            self.transport_errors += 1
        self.last_done[consumer] = time.monotonic()

    async def _exchanges(self) -> None:
        plans = {code: itertools.cycle(self.calls(code)) for code in self.clients}
        order = itertools.cycle(sorted(self.clients))
        next_at = time.monotonic()
        while True:
            consumer = next(order)
            if consumer in self.active and len(self.in_flight) < 1000:
                task = asyncio.create_task(self._one(consumer, next(plans[consumer])))
                self.in_flight.add(task)
                task.add_done_callback(self.in_flight.discard)
            next_at += 1.0 / RATE
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def dossier(self, n: int, *, mother: str | None = None) -> dict[str, Any]:
        if n % 2:
            tax_code = self.samples["tax_codes"][n % len(self.samples["tax_codes"])]
            return {"procedure": "2.001610", "province": "P01", "applicant": {"tax_code": tax_code}}
        mothers = self.samples["mothers"]
        born = (dt.date.today() - dt.timedelta(days=10)).isoformat()
        return {
            "procedure": "1.001022",
            "province": "P01",
            "applicant": {
                "mother_id": mother or mothers[n % len(mothers)]["id_number"],
                "child_full_name": "Nguyễn Minh Khôi",
                "child_gender": "male",
                "child_date_of_birth": born,
                "address": "Số 1 Tràng Tiền, phường Hoàn Kiếm",
            },
        }

    async def submit(self, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(
            f"{self.stack.gateway.url}/dossiers",
            json=body,
            headers={"X-API-Key": self.gateway_key},
        )

    async def _dossiers(self) -> None:
        for n in itertools.count():
            if self.dossiers:
                with contextlib.suppress(httpx.HTTPError):
                    await self.submit(self.dossier(n))
            await asyncio.sleep(1.0)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._exchanges(), name="exchanges"),
            asyncio.create_task(self._dossiers(), name="dossiers"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.in_flight:
            await asyncio.wait(list(self.in_flight), timeout=60)
        for task in list(self.in_flight):
            task.cancel()


# -- the scenario ---------------------------------------------------------------------


def finite(result: list[dict[str, Any]]) -> bool:
    """At least one series with a number (not NaN) in an instant query's answer."""
    return any(not math.isnan(float(series["value"][1])) for series in result)


class Scenario:
    """Drives the traffic, provokes each condition and records what Prometheus answers."""

    def __init__(
        self, stack: Stack, queries: list[PanelQuery], variables: list[dict[str, Any]]
    ) -> None:
        self.stack = stack
        self.prom = stack.prometheus
        self.queries = queries
        self.variables = variables
        self.rules = alert_rules()
        self.record = Record()

    async def ask(self, expr: str) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.prom.query, expr)

    async def wait_for(
        self,
        what: str,
        check: Callable[[], Awaitable[bool]],
        *,
        seconds: float,
    ) -> bool:
        """Poll ``check`` until it holds, for at most ``seconds``; note it if it never does."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await check():
                return True
            await asyncio.sleep(0.5)
        self.record.notes.append(f"gave up after {seconds:g} s waiting for {what}")
        return False

    async def provoked(self, alert: str, *, seconds: float = 30.0) -> None:
        """Wait until the alert's expression answers and Prometheus holds the alert."""
        expr = self.rules[alert]["expr"]

        async def check() -> bool:
            result = await self.ask(expr)
            states = {
                a["state"]
                for a in await asyncio.to_thread(self.prom.alerts)
                if a["labels"].get("alertname") == alert
            }
            self.record.provoked[alert] = result
            self.record.provoked_states[alert] = states
            return bool(result) and bool(states)

        await self.wait_for(f"{alert} while provoked", check, seconds=seconds)

    async def fault(self, http: httpx.AsyncClient, node: str, spec: dict[str, Any] | None) -> None:
        url = f"{self.stack.nodes.url}/admin/faults/{node}"
        headers = {"Authorization": f"Bearer {self.stack.network.admin_token}"}
        if spec is None:
            resp = await http.delete(url, headers=headers)
        else:
            resp = await http.put(url, json=spec, headers=headers)
        resp.raise_for_status()

    async def ledger_fault(self, *, sleep_ms: int = 0, fail: bool = False) -> None:
        conn = await asyncpg.connect(self.stack.hub_dsn, timeout=5)
        try:
            await conn.execute(
                "UPDATE ngsp_test_ledger_fault SET sleep_ms = $1, fail = $2 WHERE id = 1",
                sleep_ms,
                fail,
            )
        finally:
            await conn.close()

    async def run(self) -> Record:
        limits = httpx.Limits(max_connections=1200, max_keepalive_connections=200)
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:
            samples = (await http.get(f"{self.stack.nodes.url}/samples?n=20")).json()
            traffic = Traffic(self.stack, samples, http)
            try:
                await self._run(http, traffic)
            finally:
                await traffic.stop()
        return self.record

    async def _scraped(self) -> bool:
        up = await self.ask('sum(up{job=~"ngsp-.+"})')
        nodes = await self.ask("sum(max by (node) (ngsp_node_up))")
        roster = len(self.stack.network.listeners)
        return (
            bool(up)
            and float(up[0]["value"][1]) == 3
            and bool(nodes)
            and float(nodes[0]["value"][1]) == roster
        )

    async def _silent(self) -> bool:
        for name, rule in self.rules.items():
            self.record.healthy[name] = await self.ask(rule["expr"])
        self.record.healthy_alerts = await asyncio.to_thread(self.prom.alerts)
        return not self.record.healthy_alerts and not any(self.record.healthy.values())

    async def _run(self, http: httpx.AsyncClient, traffic: Traffic) -> None:
        gw = self.stack.gateway.url
        admin = {"Authorization": f"Bearer {GATEWAY_ADMIN}"}
        traffic.gateway_key = (
            await http.post(f"{gw}/admin/keys", json={"name": "traffic"}, headers=admin)
        ).json()["key"]
        await self.wait_for("every target scraped and every node up", self._scraped, seconds=30)

        # 1. Healthy traffic, with the failures a healthy platform sees anyway. SILENT
        # takes part for the first seconds only.
        traffic.start()
        started = time.monotonic()
        await traffic.submit(traffic.dossier(0, mother="001099000000"))  # no such mother
        hub = self.stack.hub.url
        await http.get(f"{hub}/exchange/DANCU/population/citizens/001099000000")
        await http.get(
            f"{hub}/exchange/DANCU/population/citizens/001099000000",
            headers={"Authorization": "Bearer not-a-token"},
        )
        await http.post(
            f"{hub}/token", data={"grant_type": "client_credentials"}, auth=("nobody", "wrong")
        )
        await traffic.clients["P01"].call("P79", "one-stop", "GET", "/dossiers/x")  # not granted
        limited = (
            await http.post(
                f"{gw}/admin/keys",
                json={"name": "limited", "rate_limit_per_minute": 1},
                headers=admin,
            )
        ).json()["key"]
        for _ in range(3):
            await http.get(f"{gw}/dossiers", headers={"X-API-Key": limited})
        await asyncio.sleep(max(0.0, 3 - (time.monotonic() - started)))
        traffic.active.discard(SILENT)
        await asyncio.sleep(5)

        # 2. Healthy: no alert expression answers, no alert is pending. (A moment's blip,
        # a health probe slower than its timeout on a busy machine, say, is let pass, as
        # the rules' `for:` lets it pass.)
        await asyncio.sleep(3)
        await self.wait_for("every alert silent", self._silent, seconds=10)
        self.record.rule_groups = (await asyncio.to_thread(self.prom.api, "rules"))["groups"]

        # 3. A provider stopped.
        await self.fault(http, DOWN, {"outage": True})
        await self.provoked("NgspProviderDown")
        await self.fault(http, DOWN, None)

        # 4. Errors injected: every answer of ERRORS is a 500.
        await self.fault(http, ERRORS, {"error_rate": 1.0})
        await self.provoked("NgspProviderErrorRateHigh")
        await asyncio.sleep(2)
        await self.fault(http, ERRORS, None)

        # 5. Every dashboard query, with every kind of data in.
        await asyncio.sleep(2)
        await self.evaluate_dashboards()

        # 6. A slow database: each ledger row takes 100 ms to insert; the traffic does not
        # wait, so the ledger falls behind.
        await self.ledger_fault(sleep_ms=100)
        await self.provoked("NgspLedgerBacklogGrowing")
        await self.provoked("NgspHubLatencyHigh")
        await self.ledger_fault()

        # 7. A failing database.
        await self.ledger_fault(fail=True)
        await self.provoked("NgspLedgerCommitsFailing")
        await self.ledger_fault()

        # 8. The gateway stopped.
        traffic.dossiers = False
        await asyncio.to_thread(self.stack.gateway.stop)
        await self.provoked("NgspScrapeTargetDown")

        # 9. SILENT has sent nothing for a minute (the expression's window).
        quiet_since = traffic.last_done.get(SILENT, time.monotonic())
        remaining = 62.0 - (time.monotonic() - quiet_since)
        await asyncio.sleep(max(0.0, remaining))
        await self.provoked("NgspNodeTrafficStopped", seconds=20)
        self.record.notes.append(
            f"traffic: statuses {dict(sorted(traffic.statuses.items()))}, "
            f"{traffic.transport_errors} transport errors"
        )

    async def evaluate_dashboards(self) -> None:
        for variable in self.variables:
            metric, label = label_values_query(variable)
            params = {"match[]": metric} if metric else {}
            values = await asyncio.to_thread(self.prom.api, f"label/{label}/values", **params)
            self.record.variables[variable["name"]] = list(values)
        for query in self.queries:
            expr = substitute(query.expr, {"node": NODE})
            try:
                self.record.panels[query.id] = await self.ask(expr)
            except Exception as exc:
                self.record.panel_errors[query.id] = f"{expr}: {exc}"
        for name in ('count({__name__=~"ngsp_.+"})', "prometheus_tsdb_head_series"):
            result = await self.ask(name)
            self.record.series[name] = float(result[0]["value"][1]) if result else 0.0
