"""The compose stack and the image, checked as data (no Docker engine runs here).

Every variable a service sets must be a setting of that service, with a value its
settings class accepts; every command must parse with the ``ngsp`` command line; every
file mounted must exist; the addresses the services give each other must name a service
and a port it listens on.
"""

from __future__ import annotations

import re
import secrets
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import ValidationError

from tests.deploy.support import (
    DASHBOARD_PROVIDERS_FILE,
    DASHBOARDS_DIR,
    DATASOURCES_FILE,
    DEPLOY,
    PROMETHEUS_DIR,
    REPO,
    env_file,
    expand,
    load_yaml,
    parse_ngsp_command,
    references,
    setting_of,
    settings_classes,
)

COMPOSE = load_yaml(DEPLOY / "docker-compose.yml")
SERVICES: dict[str, Any] = COMPOSE["services"]
ENV_EXAMPLE = env_file(DEPLOY / ".env.example")
NGSP = ("hub", "nodes", "gateway")
#: Random values for the secrets, as deploy/README.md has the operator make them.
SECRETS = {name: secrets.token_urlsafe(32) for name in ENV_EXAMPLE}


def environment(service: str) -> dict[str, str]:
    env: dict[str, str] = {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}
    return env


def ngsp_args(service: str) -> list[str]:
    """The ``ngsp`` command line a service runs (after its shell preamble, if any)."""
    spec = SERVICES[service]
    if spec.get("entrypoint"):
        script = " ".join(spec["command"])
        match = re.search(r"exec ngsp (.+)$", script, flags=re.DOTALL)
        assert match, f"{service} does not exec ngsp"
        return shlex.split(match.group(1))
    return [str(a) for a in spec["command"]]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_services() -> None:
    assert set(SERVICES) == {
        "postgres",
        "redis",
        "pki",
        "hub",
        "nodes",
        "gateway",
        "lb",
        "prometheus",
        "grafana",
    }


def test_only_the_hub_reaches_the_providers() -> None:
    """Mutual TLS in the stack: the CA's key stays with the nodes, the hub gets its own."""
    from ngsp.cli import app as ngsp_cli

    pki = SERVICES["pki"]
    assert pki["command"][:2] == ["pki", "init"]
    assert {c.name for c in typer.main.get_command(ngsp_cli).commands["pki"].commands.values()} == {
        "init"
    }  # type: ignore[attr-defined]
    hub = environment("hub")
    assert hub["NGSP_HUB_PROVIDER_CA_FILE"] == "/hub-tls/ca.pem"
    assert {v.split(":")[0] for v in SERVICES["hub"]["volumes"]} == {"hub-tls"}
    assert environment("nodes")["NGSP_NODES_TLS_DIR"] == "/network-ca"
    assert "network-ca:/network-ca" in SERVICES["nodes"]["volumes"]
    assert not any("network-ca" in v for v in SERVICES["gateway"].get("volumes", []))
    assert (
        environment("nodes")["NGSP_NODES_PORTAL_CLIENT_SECRET"]
        == environment("gateway")["NGSP_GATEWAY_PORTAL_CLIENT_SECRET"]
    )


def test_one_image_built_from_the_dockerfile() -> None:
    images = {SERVICES[name]["image"] for name in NGSP}
    assert len(images) == 1
    build = SERVICES["hub"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    version = re.search(r'^version = "(.+)"$', (REPO / "pyproject.toml").read_text(), re.M)
    assert version is not None
    assert images == {f"ngsp-sim:{version.group(1)}"}


@pytest.mark.parametrize("service", NGSP)
def test_commands_parse_with_the_cli(service: str) -> None:
    args = ngsp_args(service)
    assert args[0] == service
    parse_ngsp_command(args)


@pytest.mark.parametrize("service", NGSP)
def test_each_variable_is_a_setting_with_a_valid_value(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(service)
    assert env
    for name, value in env.items():
        assert setting_of(name) is not None, f"{service}: {name} is not a setting"
        monkeypatch.setenv(name, expand(value, SECRETS))
    for prefix, cls in settings_classes().items():
        if any(name.startswith(prefix) for name in env):
            cls()  # the values as the service reads them


def test_hub_and_gateway_run_in_production() -> None:
    assert environment("hub")["NGSP_HUB_ENVIRONMENT"] == "production"
    assert environment("gateway")["NGSP_GATEWAY_ENVIRONMENT"] == "production"


def test_secrets_come_from_the_env_file_and_are_required() -> None:
    used: set[str] = set()
    for spec in SERVICES.values():
        for name, value in spec.get("environment", {}).items():
            refs = references(str(value))
            used |= refs
            if refs and name in {"NGSP_HUB_ADMIN_TOKEN", "NGSP_HUB_SIGNING_KEY"}:
                assert ":?" in str(value), f"{name} must be required"
    assert used == set(ENV_EXAMPLE)
    for name in ("NGSP_HUB_ADMIN_TOKEN", "NGSP_NODES_ADMIN_TOKEN", "NGSP_GATEWAY_ADMIN_TOKEN"):
        assert name in used


def test_real_secrets_stay_out_of_the_repository() -> None:
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_example_secrets_are_refused() -> None:
    """An unedited copy of .env.example cannot run a production hub or gateway."""
    hub_cls = settings_classes()["NGSP_HUB_"]
    gateway_cls = settings_classes()["NGSP_GATEWAY_"]
    with pytest.raises(ValidationError, match="placeholder"):
        hub_cls(
            environment="production",
            admin_token=ENV_EXAMPLE["NGSP_HUB_ADMIN_TOKEN"],
            signing_key=SECRETS["NGSP_HUB_SIGNING_KEY"],
        )
    with pytest.raises(ValidationError, match="placeholder"):
        hub_cls(
            environment="production",
            admin_token=SECRETS["NGSP_HUB_ADMIN_TOKEN"],
            signing_key=ENV_EXAMPLE["NGSP_HUB_SIGNING_KEY"],
        )
    with pytest.raises(ValidationError, match="placeholder"):
        gateway_cls(environment="production", admin_token=ENV_EXAMPLE["NGSP_GATEWAY_ADMIN_TOKEN"])
    hub_cls(
        environment="production",
        admin_token=SECRETS["NGSP_HUB_ADMIN_TOKEN"],
        signing_key=SECRETS["NGSP_HUB_SIGNING_KEY"],
    )


def test_services_find_each_other() -> None:
    hub, nodes, gateway = (ngsp_args(name) for name in NGSP)
    assert option(hub, "--port") == "8000"
    assert option(gateway, "--port") == "8080"
    assert option(nodes, "--port") == "8100"
    # Nodes and gateway reach the hub through the load balancer, on the hub's port.
    assert option(nodes, "--hub-url") == option(gateway, "--hub-url") == "http://lb:8000"
    assert SERVICES["nodes"]["hostname"] == option(nodes, "--host") == "nodes"
    assert option(gateway, "--redis-url") == "redis://redis:6379/0"
    postgres = SERVICES["postgres"]["environment"]
    hub_db = environment("hub")["NGSP_HUB_DATABASE_URL"]
    gateway_db = environment("gateway")["NGSP_GATEWAY_DATABASE_URL"]
    user = postgres["POSTGRES_USER"]
    assert hub_db.startswith(f"postgresql+asyncpg://{user}:${{POSTGRES_PASSWORD}}@postgres:5432/")
    assert gateway_db.startswith(f"postgresql+asyncpg://{user}:${{POSTGRES_PASSWORD}}@postgres:")
    assert hub_db.endswith("/" + postgres["POSTGRES_DB"])
    init = (DEPLOY / "postgres" / "init" / "01-gateway-database.sql").read_text()
    gateway_database = gateway_db.rsplit("/", 1)[1]
    assert f"CREATE DATABASE {gateway_database} OWNER {user};" in init
    assert "./postgres/init:/docker-entrypoint-initdb.d:ro" in SERVICES["postgres"]["volumes"]
    # The gateway reads the credentials the nodes write, where the nodes write them.
    nodes_dir = environment("nodes")["NGSP_NODES_DATA_DIR"]
    credentials = environment("gateway")["NGSP_GATEWAY_CREDENTIALS_FILE"]
    assert credentials == f"{nodes_dir}/credentials.json"
    assert f"shared:{nodes_dir}" in SERVICES["nodes"]["volumes"]
    assert f"shared:{nodes_dir}:ro" in SERVICES["gateway"]["volumes"]
    assert f"{nodes_dir}/credentials.json http://lb:8000" in " ".join(SERVICES["nodes"]["command"])


def test_hub_and_gateway_are_replicated_behind_the_load_balancer() -> None:
    assert SERVICES["hub"]["deploy"]["replicas"] >= 2
    assert SERVICES["gateway"]["deploy"]["replicas"] >= 2
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert "server hub:8000 resolve;" in conf
    assert "server gateway:8080 resolve;" in conf
    assert re.search(r"listen 8000;\s+location / \{\s+proxy_pass http://hub;", conf)
    assert re.search(r"listen 8080;\s+location / \{\s+proxy_pass http://gateway;", conf)
    assert SERVICES["lb"]["ports"] == ["8000:8000", "8080:8080"]
    assert "./nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in SERVICES["lb"]["volumes"]


def test_health_checks_use_each_service_s_own_endpoint() -> None:
    for service, url in (
        ("hub", "http://127.0.0.1:8000/readyz"),
        ("gateway", "http://127.0.0.1:8080/readyz"),
        ("nodes", "http://nodes:8100/healthz"),
    ):
        assert url in " ".join(SERVICES[service]["healthcheck"]["test"])


def _mounts(service: str) -> dict[str, Path]:
    """Container path → host path of the service's bind mounts."""
    mounts: dict[str, Path] = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_mounted_files_exist(service: str) -> None:
    for host in _mounts(service).values():
        assert host.exists(), host


def test_prometheus_gets_the_configuration_and_the_rules() -> None:
    mounts = _mounts("prometheus")
    command = SERVICES["prometheus"]["command"]
    config = next(a.split("=", 1)[1] for a in command if a.startswith("--config.file="))
    assert mounts[config] == PROMETHEUS_DIR / "prometheus.yml"
    rules_dir = str(Path(config).parent / "rules")
    assert mounts[rules_dir] == PROMETHEUS_DIR / "rules"
    scrape = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    assert scrape["rule_files"] == ["rules/*.yml"]
    # Each job points at a service and the port it listens on.
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    hub_sd = jobs["ngsp-hub"]["dns_sd_configs"][0]
    gateway_sd = jobs["ngsp-gateway"]["dns_sd_configs"][0]
    assert (hub_sd["names"], hub_sd["port"]) == (["hub"], 8000)
    assert (gateway_sd["names"], gateway_sd["port"]) == (["gateway"], 8080)
    assert jobs["ngsp-nodes"]["static_configs"][0]["targets"] == ["nodes:8100"]
    assert "9090:9090" in SERVICES["prometheus"]["ports"]


def test_grafana_gets_the_datasource_and_the_dashboards() -> None:
    mounts = _mounts("grafana")
    provisioning = "/etc/grafana/provisioning"
    assert mounts[f"{provisioning}/datasources"] == DATASOURCES_FILE.parent
    assert mounts[f"{provisioning}/dashboards"] == DASHBOARD_PROVIDERS_FILE.parent
    provider = load_yaml(DASHBOARD_PROVIDERS_FILE)["providers"][0]
    assert mounts[provider["options"]["path"]] == DASHBOARDS_DIR
    home = environment("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (DASHBOARDS_DIR / Path(home).name).exists()


# -- the image --------------------------------------------------------------------------

DOCKERFILE = (DEPLOY / "Dockerfile").read_text("utf-8")


def _instructions(name: str) -> list[str]:
    return re.findall(rf"^{name} (.+)$", DOCKERFILE, flags=re.MULTILINE)


def test_image_installs_the_lock_and_the_package_and_runs_ngsp() -> None:
    assert "uv export --frozen" in DOCKERFILE
    assert "pip install --require-hashes -r" in DOCKERFILE
    assert "pip install --no-deps ." in DOCKERFILE
    assert _instructions("ENTRYPOINT") == ['["ngsp"]']
    assert _instructions("USER") == ["ngsp"]
    (base,) = _instructions("FROM")
    assert base.startswith("python:3.11")
    parse_ngsp_command(["hub", "--host", "0.0.0.0", "--port", "8000"])  # the default CMD
    exposed = " ".join(_instructions("EXPOSE")).split()
    assert {"8000", "8080", "8100"} <= set(exposed)


def test_image_copies_every_package_and_nothing_else() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {name.rstrip("*") for name in included}
    copied = {line.split()[0] for line in _instructions("COPY")}
    assert copied == {"pyproject.toml", *packages}
    assert "README.md" in _instructions("COPY")[0]  # pyproject's readme
    assert "uv.lock" in _instructions("COPY")[0]  # the versions the suite passed with
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    allowed = {line.removeprefix("!").rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "uv.lock", *packages}
