"""The Kubernetes manifests, checked as data (no cluster here; kubectl is optional).

Each workload's selector must match its pods, each Service must select pods that have
the port it names, each NGSP variable must be a setting with a value its settings class
accepts, each secret a key of the Secret, each command must parse with the ``ngsp``
command line, and the Prometheus ConfigMap must hold the same jobs and the same rules as
deploy/prometheus.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    DEPLOY,
    PROMETHEUS_DIR,
    RULES_DIR,
    env_file,
    expand,
    load_yaml,
    parse_ngsp_command,
    references,
    setting_of,
    settings_classes,
)

K8S = DEPLOY / "k8s"
KUSTOMIZATION = load_yaml(K8S / "kustomization.yaml")
SECRET_KEYS = env_file(K8S / "secrets.env.example")
#: Values for what a pod only knows at run time, and for the secrets.
RUNTIME = {"POD_IP": "10.1.2.3"} | {k: secrets.token_urlsafe(32) for k in SECRET_KEYS}
#: The image's services and the subcommand each runs.
NGSP = {"ngsp-hub": "hub", "ngsp-nodes": "nodes", "ngsp-gateway": "gateway"}


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in KUSTOMIZATION["resources"]:
        docs.extend(d for d in yaml.safe_load_all((K8S / name).read_text("utf-8")) if d)
    return docs


DOCS = documents()


def of_kind(*kinds: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in DOCS if d["kind"] in kinds}


WORKLOADS = of_kind("Deployment", "StatefulSet")
SERVICES = of_kind("Service")


def container(workload: str) -> dict[str, Any]:
    (only,) = WORKLOADS[workload]["spec"]["template"]["spec"]["containers"]
    c: dict[str, Any] = only
    return c


def env_values(workload: str) -> dict[str, str]:
    """The container's variables as the pod sees them (secrets and fields filled in)."""
    values: dict[str, str] = {}
    for var in container(workload).get("env", []):
        if "value" in var:
            values[var["name"]] = expand(var["value"], {**RUNTIME, **values})
        elif "secretKeyRef" in var["valueFrom"]:
            values[var["name"]] = RUNTIME[var["valueFrom"]["secretKeyRef"]["key"]]
        else:
            values[var["name"]] = RUNTIME[var["name"]]
    return values


def ngsp_args(workload: str) -> list[str]:
    c = container(workload)
    if c.get("command"):
        script = " ".join(c["args"])
        _, sep, tail = script.partition("exec ngsp ")
        assert sep, f"{workload} does not exec ngsp"
        return tail.split()
    return [str(a) for a in c["args"]]


def test_kustomization_lists_every_manifest() -> None:
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(KUSTOMIZATION["resources"]) == manifests
    (generator,) = KUSTOMIZATION["secretGenerator"]
    assert generator["name"] == "ngsp-secrets"
    assert generator["envs"] == ["secrets.env"]
    # secrets.env holds the real values: deploy/.gitignore keeps it out of the repository.
    assert "k8s/secrets.env" in (DEPLOY / ".gitignore").read_text().split()


def test_workloads() -> None:
    assert set(WORKLOADS) == {
        "ngsp-postgres",
        "ngsp-redis",
        "ngsp-hub",
        "ngsp-nodes",
        "ngsp-gateway",
        "ngsp-prometheus",
    }
    assert WORKLOADS["ngsp-hub"]["spec"]["replicas"] >= 2
    assert WORKLOADS["ngsp-gateway"]["spec"]["replicas"] >= 2
    assert WORKLOADS["ngsp-nodes"]["spec"]["replicas"] == 1


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_selector_matches_the_pods(name: str) -> None:
    spec = WORKLOADS[name]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_selects_pods_with_its_ports(name: str) -> None:
    spec = SERVICES[name]["spec"]
    selected = [
        w
        for w in WORKLOADS.values()
        if spec["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(selected) == 1, f"{name} selects {len(selected)} workloads"
    pods = container(selected[0]["metadata"]["name"])
    ports = {p["name"]: p["containerPort"] for p in pods["ports"]}
    for port in spec["ports"]:
        assert port["targetPort"] in ports
        assert port["port"] == ports[port["targetPort"]]


@pytest.mark.parametrize("name", sorted(NGSP))
def test_ngsp_container_runs_the_image_and_its_subcommand(name: str) -> None:
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    assert container(name)["image"] == compose["services"]["hub"]["image"]
    image = KUSTOMIZATION["images"][0]
    assert f"{image['newName']}:{image['newTag']}" == container(name)["image"]
    args = ngsp_args(name)
    assert args[0] == NGSP[name]
    parse_ngsp_command(args)


@pytest.mark.parametrize("name", sorted(NGSP))
def test_each_variable_is_a_setting_with_a_valid_value(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = env_values(name)
    used_for_expansion = {
        ref for var in container(name)["env"] for ref in references(var.get("value", ""))
    }
    for var, value in values.items():
        if var.startswith("NGSP_"):
            assert setting_of(var) is not None, f"{name}: {var} is not a setting"
            monkeypatch.setenv(var, value)
        else:
            assert var in used_for_expansion, f"{name}: {var} is set but used by nothing"
    for prefix, cls in settings_classes().items():
        if any(var.startswith(prefix) for var in values):
            cls()


def test_secrets_are_keys_of_the_generated_secret() -> None:
    for name, workload in WORKLOADS.items():
        for c in workload["spec"]["template"]["spec"]["containers"]:
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "ngsp-secrets", name
                    assert ref["key"] in SECRET_KEYS, (name, ref["key"])


def test_services_find_each_other() -> None:
    hub, nodes, gateway = (env_values(n) for n in ("ngsp-hub", "ngsp-nodes", "ngsp-gateway"))
    assert hub["NGSP_HUB_ENVIRONMENT"] == gateway["NGSP_GATEWAY_ENVIRONMENT"] == "production"
    assert nodes["NGSP_NODES_HUB_URL"] == gateway["NGSP_GATEWAY_HUB_URL"] == "http://ngsp-hub:8000"
    assert hub["NGSP_HUB_DATABASE_URL"].endswith("@ngsp-postgres:5432/ngsp_hub")
    assert gateway["NGSP_GATEWAY_DATABASE_URL"].endswith("@ngsp-postgres:5432/ngsp_gateway")
    assert gateway["NGSP_GATEWAY_REDIS_URL"] == "redis://ngsp-redis:6379/0"
    assert nodes["NGSP_NODES_HOST"] == RUNTIME["POD_IP"]
    shared = nodes["NGSP_NODES_DATA_DIR"]
    assert gateway["NGSP_GATEWAY_CREDENTIALS_FILE"] == f"{shared}/credentials.json"
    assert f"{shared}/credentials.json http://ngsp-hub:8000" in " ".join(
        container("ngsp-nodes")["args"]
    )
    postgres = env_values("ngsp-postgres")
    assert postgres["POSTGRES_DB"] == "ngsp_hub"
    credentials = f"//{postgres['POSTGRES_USER']}:{RUNTIME['POSTGRES_PASSWORD']}@"
    assert credentials in hub["NGSP_HUB_DATABASE_URL"]
    init = of_kind("ConfigMap")["ngsp-postgres-init"]["data"]["01-gateway-database.sql"]
    assert init == (DEPLOY / "postgres" / "init" / "01-gateway-database.sql").read_text()


def _routes(app: Any) -> set[str]:
    """The paths an app serves, from its OpenAPI document (built without starting it)."""
    return set(app.openapi()["paths"])


def test_probes_call_endpoints_the_services_have() -> None:
    from gateway.app import create_app as gateway_app
    from national_hub.app import create_app as hub_app
    from provincial_nodes.app import create_app as nodes_app

    routes = {
        "ngsp-hub": _routes(hub_app(settings_classes()["NGSP_HUB_"]())),
        "ngsp-gateway": _routes(gateway_app(settings_classes()["NGSP_GATEWAY_"]())),
        "ngsp-nodes": _routes(nodes_app(settings_classes()["NGSP_NODES_"]())),
    }
    for name, paths in routes.items():
        for probe in ("readinessProbe", "livenessProbe"):
            assert container(name)[probe]["httpGet"]["path"] in paths, (name, probe)
        assert "/metrics" in paths


def test_prometheus_config_map_matches_deploy_prometheus() -> None:
    data = of_kind("ConfigMap")["ngsp-prometheus"]["data"]
    for rules in RULES_DIR.glob("*.yml"):
        assert yaml.safe_load(data[rules.name]) == load_yaml(rules), f"{rules.name} differs"
    cluster = yaml.safe_load(data["prometheus.yml"])
    compose = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert cluster["rule_files"] == compose["rule_files"]
    assert cluster["global"] == compose["global"]

    def jobs(config: dict[str, Any]) -> dict[str, str | None]:
        return {j["job_name"]: j.get("metrics_path") for j in config["scrape_configs"]}

    assert jobs(cluster) == jobs(compose)
    by_job = {j["job_name"]: j for j in cluster["scrape_configs"]}
    for job, service in (("ngsp-hub", "ngsp-hub-pods"), ("ngsp-gateway", "ngsp-gateway-pods")):
        (sd,) = by_job[job]["dns_sd_configs"]
        assert sd["names"] == [service]
        assert SERVICES[service]["spec"]["clusterIP"] == "None"  # one address per pod
        assert sd["port"] == SERVICES[service]["spec"]["ports"][0]["port"]
    assert by_job["ngsp-nodes"]["static_configs"][0]["targets"] == ["ngsp-nodes:8100"]
    # The rules are mounted where rule_files looks.
    volumes = WORKLOADS["ngsp-prometheus"]["spec"]["template"]["spec"]["volumes"]
    (config,) = (v["configMap"] for v in volumes if "configMap" in v)
    items = {i["key"]: i["path"] for i in config["items"]}
    assert items == {"prometheus.yml": "prometheus.yml", "ngsp-alerts.yml": "rules/ngsp-alerts.yml"}


def test_prometheus_config_map_passes_promtool(promtool: str, tmp_path: Path) -> None:
    data = of_kind("ConfigMap")["ngsp-prometheus"]["data"]
    (tmp_path / "rules").mkdir()
    (tmp_path / "prometheus.yml").write_text(data["prometheus.yml"])
    (tmp_path / "rules" / "ngsp-alerts.yml").write_text(data["ngsp-alerts.yml"])
    proc = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kustomize_builds(tmp_path: Path) -> None:
    """Where kubectl is installed (it is optional), the kustomization builds offline."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    shutil.copy(copy / "secrets.env.example", copy / "secrets.env")
    proc = subprocess.run(
        [kubectl, "kustomize", str(copy)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    built = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert {d["metadata"].get("namespace") for d in built if d["kind"] != "Namespace"} == {"ngsp"}
    assert len(built) == len(DOCS) + 1  # and the generated Secret


def test_only_the_hub_reaches_the_nodes_ports() -> None:
    """The NetworkPolicy: the nodes' own ports take the hub's pods alone; the hub and the
    nodes get their certificates from Secrets, the CA's key only where nodes are issued."""
    (policy,) = [d for d in DOCS if d["kind"] == "NetworkPolicy"]
    nodes = WORKLOADS["ngsp-nodes"]["spec"]["template"]
    hub = WORKLOADS["ngsp-hub"]["spec"]["template"]
    assert policy["spec"]["podSelector"]["matchLabels"] == nodes["metadata"]["labels"]
    node_ports, control = policy["spec"]["ingress"]
    (peer,) = node_ports["from"]
    assert peer["podSelector"]["matchLabels"] == hub["metadata"]["labels"]
    assert node_ports["ports"] == [{"protocol": "TCP", "port": 8101, "endPort": 8197}]
    assert control["ports"] == [{"protocol": "TCP", "port": 8100}]
    secrets_of = {
        name: {
            v["secret"]["secretName"]
            for v in w["spec"]["template"]["spec"].get("volumes", [])
            if "secret" in v
        }
        for name, w in WORKLOADS.items()
    }
    assert secrets_of["ngsp-hub"] == {"ngsp-hub-tls"}
    assert secrets_of["ngsp-nodes"] == {"ngsp-network-ca"}
    assert secrets_of["ngsp-gateway"] == set()
    assert env_values("ngsp-nodes")["NGSP_NODES_TLS_DIR"] == "/tls"
    assert env_values("ngsp-hub")["NGSP_HUB_PROVIDER_CA_FILE"] == "/hub-tls/ca.pem"
