"""The deploy stack's files as data, and a real Prometheus server run by the tests."""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import IN_CI
from tests.support.servers import ChildProcess, free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"
GRAFANA_DIR = DEPLOY / "grafana"
DASHBOARDS_DIR = GRAFANA_DIR / "dashboards"
DATASOURCES_FILE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS_FILE = GRAFANA_DIR / "provisioning" / "dashboards" / "ngsp.yml"

#: Grafana's built-in variables, as the tests set them: a rate window of four 1 s
#: scrapes and more, and a range that covers the whole test.
GRAFANA_BUILTINS = {
    "__rate_interval": "30s",
    "__interval": "5s",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}


def require_tool(name: str) -> str:
    """The path of a Prometheus tool: fail in CI without it, skip elsewhere."""
    found = shutil.which(name)
    if found is None:
        message = f"{name} is not installed (Debian: apt-get install prometheus)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text("utf-8"))


# -- dashboards ---------------------------------------------------------------------


@dataclass(frozen=True)
class PanelQuery:
    """One target of one dashboard panel."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}/{self.panel}/{self.ref_id}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return doc


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def panel_queries() -> list[PanelQuery]:
    """Every PromQL expression of every panel of every dashboard."""
    queries: list[PanelQuery] = []
    for path in dashboard_files():
        doc = load_dashboard(path)
        for panel in all_panels(doc):
            for target in panel.get("targets", []):
                queries.append(
                    PanelQuery(path.stem, panel["title"], target["refId"], target["expr"])
                )
    return queries


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana's variables (``$x``, ``${x}``, ``[[x]]``) as Grafana would."""
    values = {**GRAFANA_BUILTINS, **variables}

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"no value for the variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(one, expr)


_LABEL_VALUES = re.compile(r"^label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)$")


def label_values_query(variable: dict[str, Any]) -> tuple[str | None, str]:
    """The metric selector and label of a ``label_values(metric, label)`` variable."""
    query = variable["query"]
    text = query["query"] if isinstance(query, dict) else query
    match = _LABEL_VALUES.match(text.strip())
    if match is None:
        raise ValueError(f"variable {variable['name']!r} does not use label_values(): {text!r}")
    return match.group(1), match.group(2)


# -- alert rules --------------------------------------------------------------------


def alert_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule of the shipped rule files, by alert name."""
    rules: dict[str, dict[str, Any]] = {}
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules[rule["alert"]] = rule
    return rules


# -- a real Prometheus ----------------------------------------------------------------


def derived_config(
    targets: dict[str, list[str]], *, self_address: str, interval: str = "1s"
) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with its targets moved to the given addresses.

    The jobs, metrics paths and rule files are the shipped ones; only where each job's
    targets are (Docker's DNS in the compose stack) and how often to scrape change.
    """
    config: dict[str, Any] = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    config["global"].update(
        scrape_interval=interval, scrape_timeout=interval, evaluation_interval=interval
    )
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    missing = set(targets) - set(jobs)
    if missing:
        raise KeyError(f"prometheus.yml has no job {sorted(missing)}")
    for name, job in jobs.items():
        addresses = [self_address] if name == "prometheus" else targets.get(name)
        if addresses is None:
            raise KeyError(f"the test gives no address for the job {name!r}")
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": addresses}]
    return config


class PrometheusServer:
    """``prometheus`` as a child process, with a temporary database, on a loopback port."""

    def __init__(self, binary: str, workdir: Path, targets: dict[str, list[str]]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.targets = targets
        self.address = ""
        self.url = ""
        self.process: ChildProcess | None = None
        self.http = httpx.Client(timeout=10.0)
        workdir.mkdir(parents=True, exist_ok=True)

    def _launch(self) -> ChildProcess:
        self.address = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.address}"
        self.http.base_url = httpx.URL(self.url)
        config_path = self.workdir / "prometheus.yml"
        config = derived_config(self.targets, self_address=self.address)
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
        log = self.workdir / "prometheus.log"
        log.unlink(missing_ok=True)
        args = [
            self.binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            "--storage.tsdb.retention.time=2h",
            "--log.level=warn",
        ]
        return ChildProcess(args, log=log).start()

    def start(self, timeout: float = 60.0) -> PrometheusServer:
        """Start and wait until ready; on a port another process took meanwhile, try again."""
        for _attempt in range(3):
            process = self.process = self._launch()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if process.proc is not None and process.proc.poll() is not None:
                    break
                try:
                    if self.http.get("/-/ready").status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
            else:
                raise TimeoutError(f"prometheus not ready in {timeout} s:\n{process.output()}")
            if "address already in use" not in process.output():
                raise RuntimeError(f"prometheus exited:\n{process.output()}")
        raise RuntimeError("prometheus found no free port in three attempts")

    def stop(self) -> None:
        self.http.close()
        if self.process is not None:
            self.process.stop(timeout=10)

    def api(self, path: str, **params: Any) -> Any:
        resp = self.http.get(f"/api/v1/{path}", params=params)
        body = resp.json()
        if resp.status_code != 200 or body.get("status") != "success":
            raise PromQLError(f"{path} {params}: {resp.status_code} {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's series (a scalar answer becomes one unlabelled series)."""
        data = self.api("query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return found


class PromQLError(RuntimeError):
    """Prometheus refused a query or answered an error."""


# -- the services' settings and command line ------------------------------------------


def settings_classes() -> dict[str, type[Any]]:
    """Each service's settings class by its environment prefix."""
    from gateway.settings import GatewaySettings
    from national_hub.settings import HubSettings
    from provincial_nodes.settings import NodesSettings

    return {
        "NGSP_HUB_": HubSettings,
        "NGSP_NODES_": NodesSettings,
        "NGSP_GATEWAY_": GatewaySettings,
    }


def setting_of(env_name: str) -> tuple[type[Any], str] | None:
    """The settings class and field an ``NGSP_*`` variable sets, or None if it sets none."""
    for prefix, cls in settings_classes().items():
        if env_name.startswith(prefix):
            field = env_name.removeprefix(prefix).lower()
            return (cls, field) if field in cls.model_fields else None
    return None


def parse_ngsp_command(args: list[str]) -> dict[str, Any]:
    """Parse ``ngsp <subcommand> <options>`` as the console script would, without running it.

    Raises the command line's usage error for an unknown option or a bad value.
    """
    import typer.main

    from ngsp.cli import app

    commands: dict[str, Any] = getattr(typer.main.get_command(app), "commands", {})
    name, *rest = args
    if name not in commands:
        raise ValueError(f"ngsp has no subcommand {name!r} (it has {sorted(commands)})")
    with commands[name].make_context(f"ngsp {name}", list(rest)) as ctx:
        params: dict[str, Any] = ctx.params
        return dict(params)


_EXPANSION = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}|\$\((\w+)\)")


def expand(value: str, values: dict[str, str]) -> str:
    """Expand compose's ``${VAR}``/``${VAR:?msg}`` and Kubernetes' ``$(VAR)`` references."""
    return _EXPANSION.sub(lambda m: values[m.group(1) or m.group(2)], value)


def references(value: str) -> set[str]:
    """The variables a compose or Kubernetes value refers to."""
    return {m.group(1) or m.group(2) for m in _EXPANSION.finditer(value)}


def env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values
