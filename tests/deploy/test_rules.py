"""The Prometheus configuration and alert rules, checked by promtool and against the docs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    PROMETHEUS_DIR,
    REPO,
    RULE_TESTS_DIR,
    RULES_DIR,
    alert_rules,
    derived_config,
    load_yaml,
    panel_queries,
)

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TESTS = sorted(RULE_TESTS_DIR.glob("*.yml"))


def promtool_run(promtool: str, *args: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=cwd
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return output


def test_scrape_configuration_is_valid(promtool: str) -> None:
    # Also loads and checks the rule files it names.
    output = promtool_run(promtool, "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert "SUCCESS" in output
    assert f"{len(alert_rules())} rules found" in output


def test_rule_files_pass_promtool(promtool: str) -> None:
    assert RULE_FILES
    promtool_run(promtool, "check", "rules", *RULE_FILES)


def test_rule_unit_tests_pass(promtool: str) -> None:
    """Each alert fires after its ``for:`` when provoked, and stays silent otherwise."""
    assert RULE_TESTS
    output = promtool_run(promtool, "test", "rules", *RULE_TESTS)
    assert "SUCCESS" in output


def test_configuration_the_tests_derive_is_valid(promtool: str, tmp_path: Path) -> None:
    config = derived_config(
        {"ngsp-hub": ["127.0.0.1:1"], "ngsp-nodes": ["127.0.0.1:2"], "ngsp-gateway": ["[::1]:3"]},
        self_address="127.0.0.1:4",
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), "utf-8")
    promtool_run(promtool, "check", "config", path)


def test_every_service_is_scraped() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"ngsp-hub", "ngsp-nodes", "ngsp-gateway", "prometheus"}
    for name in ("ngsp-hub", "ngsp-nodes", "ngsp-gateway"):
        assert jobs[name]["metrics_path"] == "/metrics"


def _unit_tests() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


@pytest.mark.parametrize("alert", sorted(alert_rules()))
def test_each_alert_is_unit_tested_firing_and_silent(alert: str) -> None:
    cases = [case for case in _unit_tests() if case["alertname"] == alert]
    assert any(case["exp_alerts"] for case in cases), f"no unit test shows {alert} firing"
    assert any(not case["exp_alerts"] for case in cases), f"no unit test shows {alert} silent"


@pytest.mark.parametrize("alert", sorted(alert_rules()))
def test_each_alert_says_what_and_how_bad(alert: str) -> None:
    rule = alert_rules()[alert]
    assert re.fullmatch(r"\d+[smh]", rule["for"])
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]


_METRIC = re.compile(r"\b(ngsp_[a-z0-9_]+)")
_SUFFIXES = ("_bucket", "_sum", "_count")


def _documented_metrics() -> set[str]:
    text = (REPO / "docs" / "metrics.md").read_text("utf-8")
    return set(re.findall(r"^\| `(ngsp_[a-z0-9_]+)`", text, flags=re.MULTILINE))


def _used_metrics() -> dict[str, set[str]]:
    exprs = [q.expr for q in panel_queries()] + [r["expr"] for r in alert_rules().values()]
    used: dict[str, set[str]] = {}
    for expr in exprs:
        for name in _METRIC.findall(expr):
            for suffix in _SUFFIXES:
                name = name.removesuffix(suffix)
            used.setdefault(name, set()).add(expr)
    return used


def test_dashboards_and_rules_use_only_documented_metrics() -> None:
    documented = _documented_metrics()
    assert len(documented) > 20
    unknown = {name: exprs for name, exprs in _used_metrics().items() if name not in documented}
    assert not unknown, f"not in docs/metrics.md: {unknown}"
