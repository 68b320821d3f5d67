"""Dashboards and alerts against a real Prometheus scraping the real services.

The scenario (``tests/deploy/scenario.py``) runs once for the module: it starts the hub,
the simulated network, the gateway and Prometheus with the project's own scrape
configuration and alert rules, drives traffic, provokes each alert's condition for real
and records what Prometheus answered. Each test below asserts on one part of the record.

The rules' ``for:`` durations (minutes) are not waited for here: the unit tests in
``deploy/prometheus/tests`` show them with ``promtool test rules``. Here each alert's
expression answers, and Prometheus holds the alert (pending), while its condition is
provoked, and answers nothing while the network is healthy.
"""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _require_postgres
from tests.deploy.scenario import DOWN, ERRORS, NODE, SILENT, Record, Scenario, finite, start_stack
from tests.deploy.support import (
    PanelQuery,
    alert_rules,
    dashboard_files,
    load_dashboard,
    panel_queries,
)

QUERIES = panel_queries()
ALERTS = sorted(alert_rules())
VARIABLES = [
    variable
    for path in dashboard_files()
    for variable in load_dashboard(path).get("templating", {}).get("list", [])
    if variable.get("type") == "query"
]

pytestmark = pytest.mark.slow


def _run(scenario: Scenario) -> Record:
    """Run the scenario on its own event loop, in its own thread."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["record"] = asyncio.run(scenario.run())
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="deploy-scenario")
    thread.start()
    thread.join(timeout=300)
    if thread.is_alive():
        raise TimeoutError("the scenario did not end within 300 s")
    if "error" in outcome:
        raise outcome["error"]
    record: Record = outcome["record"]
    return record


@pytest.fixture(scope="module")
def record(prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Record]:
    _require_postgres()
    workdir: Path = tmp_path_factory.mktemp("deploy-stack")
    with start_stack(prometheus_binary, workdir) as stack:
        yield _run(Scenario(stack, QUERIES, VARIABLES))
    gc.collect()  # whatever the stack left unclosed is reported here, not in a later test


@pytest.mark.parametrize("query", QUERIES, ids=[q.id for q in QUERIES])
def test_dashboard_query_returns_data(record: Record, query: PanelQuery) -> None:
    assert query.id not in record.panel_errors, record.panel_errors.get(query.id)
    result = record.panels[query.id]
    assert result, f"{query.expr!r} returned nothing (notes: {record.notes})"
    assert finite(result), f"{query.expr!r} returned only NaN: {result}"


def test_dashboard_variables_list_the_roster(record: Record) -> None:
    assert record.variables, "no query variable evaluated"
    nodes = record.variables["node"]
    assert NODE in nodes
    assert {"DANCU", "HOTICH", "BAOHIEM", "DATDAI", "DOANHNGHIEP", "BTP", "P96"} <= set(nodes)
    assert "DVCQG" in nodes  # the public service portal, connected as a node of its own
    assert len(nodes) == 98


def test_rules_load_and_evaluate_without_error(record: Record) -> None:
    rules = [rule for group in record.rule_groups for rule in group["rules"]]
    assert sorted(r["name"] for r in rules if r["type"] == "alerting") == ALERTS
    broken = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
    assert not broken


def test_no_alert_while_healthy(record: Record) -> None:
    assert record.healthy_alerts == []


@pytest.mark.parametrize("alert", ALERTS)
def test_alert_expression_silent_while_healthy(record: Record, alert: str) -> None:
    assert record.healthy[alert] == []


#: The labels each alert must carry while provoked, and no other value of them.
EXPECTED: dict[str, tuple[str, set[str]]] = {
    "NgspProviderDown": ("node", {DOWN}),
    "NgspNodeTrafficStopped": ("consumer", {SILENT}),
    "NgspScrapeTargetDown": ("job", {"ngsp-gateway"}),
}


@pytest.mark.parametrize("alert", ALERTS)
def test_alert_fires_when_provoked(record: Record, alert: str) -> None:
    result = record.provoked.get(alert, [])
    assert result, f"{alert} did not answer while provoked (notes: {record.notes})"
    assert record.provoked_states.get(alert, set()) & {"pending", "firing"}
    if alert in EXPECTED:
        label, values = EXPECTED[alert]
        assert {series["metric"][label] for series in result} == values
    if alert == "NgspProviderErrorRateHigh":
        providers = {series["metric"]["provider"] for series in result}
        # The stopped provider's refused connections count too; nobody else's.
        assert ERRORS in providers
        assert providers <= {ERRORS, DOWN}


def test_series_stay_within_the_budget(record: Record) -> None:
    assert 0 < record.series['count({__name__=~"ngsp_.+"})'] < 50_000
