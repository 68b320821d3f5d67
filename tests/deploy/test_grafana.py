"""The Grafana dashboards (hand-kept JSON) and their provisioning, checked as data.

Whether every panel's query parses and returns data is shown against a real Prometheus in
``test_prometheus.py``; here each dashboard is checked for what Grafana needs to load it.
"""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import (
    DASHBOARD_PROVIDERS_FILE,
    DASHBOARDS_DIR,
    DATASOURCES_FILE,
    GRAFANA_BUILTINS,
    all_panels,
    dashboard_files,
    label_values_query,
    load_dashboard,
    load_yaml,
    substitute,
)

DASHBOARDS = dashboard_files()
#: The three dashboards of the issue.
EXPECTED = {
    "ngsp-national-overview": "National overview",
    "ngsp-node-detail": "Node detail",
    "ngsp-gateway-dossiers": "Gateway and dossiers",
}


def datasource_uid() -> str:
    sources = load_yaml(DATASOURCES_FILE)["datasources"]
    assert len(sources) == 1
    assert sources[0]["type"] == "prometheus"
    uid: str = sources[0]["uid"]
    return uid


def test_the_three_dashboards_exist() -> None:
    docs = [load_dashboard(path) for path in DASHBOARDS]
    assert {doc["uid"]: doc["title"].split("— ")[-1] for doc in docs} == EXPECTED


def test_provisioned_datasource_is_the_prometheus_service() -> None:
    source = load_yaml(DATASOURCES_FILE)["datasources"][0]
    assert source["url"] == "http://prometheus:9090"
    assert source["access"] == "proxy"
    assert source["isDefault"] is True


def test_dashboard_provider_loads_the_dashboards_folder() -> None:
    providers = load_yaml(DASHBOARD_PROVIDERS_FILE)["providers"]
    assert len(providers) == 1
    assert providers[0]["type"] == "file"
    assert providers[0]["options"]["path"].startswith("/")
    # The compose file mounts deploy/grafana/dashboards at that path (test_compose.py).


def _overlap(a: dict[str, int], b: dict[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_is_well_formed(path: Path) -> None:
    doc = load_dashboard(path)
    uid = datasource_uid()
    assert doc["schemaVersion"] >= 36
    assert 0 < len(doc["uid"]) <= 40
    assert doc["editable"] is False  # provisioned read-only: change the file
    panels = all_panels(doc)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for a, b in combinations(panels, 2):
        assert not _overlap(a["gridPos"], b["gridPos"]), (a["title"], b["title"])
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel.get("description"), f"{panel['title']} has no description"
        targets = panel["targets"]
        assert targets, f"{panel['title']} has no query"
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", panel["datasource"])["uid"] == uid


def _variables(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = doc.get("templating", {}).get("list", [])
    return found


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_every_variable_used_is_defined(path: Path) -> None:
    doc = load_dashboard(path)
    defined = {v["name"]: "x" for v in _variables(doc)}
    for panel in all_panels(doc):
        for target in panel.get("targets", []):
            substitute(target["expr"], defined)  # raises on an undefined variable
    for name in defined:
        assert name not in GRAFANA_BUILTINS


def test_node_detail_chooses_its_node_from_the_roster_metrics() -> None:
    doc = load_dashboard(DASHBOARDS_DIR / "node-detail.json")
    (variable,) = _variables(doc)
    assert variable["name"] == "node"
    assert variable["type"] == "query"
    assert variable["datasource"]["uid"] == datasource_uid()
    metric, label = label_values_query(variable)
    assert (metric, label) == ("ngsp_node_up", "node")
    exprs = [t["expr"] for p in all_panels(doc) for t in p.get("targets", [])]
    assert exprs
    assert all(re.search(r'(node|consumer|provider)="\$node"', e) for e in exprs)
