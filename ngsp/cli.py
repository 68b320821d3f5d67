"""The ``ngsp`` command line."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from common.logs import uvicorn_log_config
from common.server import GuardedHttpToolsProtocol
from national_hub.settings import HubSettings

__all__ = ["app", "main"]

app = typer.Typer(
    name="ngsp",
    help="ngsp-sim: a simulator of Vietnam's national data-sharing platform (NGSP/LGSP).",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")
ledger_app = typer.Typer(help="Ledger commands.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
pki_app = typer.Typer(help="The network's certificates (mutual TLS hub <-> providers).")
app.add_typer(pki_app, name="pki")


@pki_app.command("init")
def pki_init(
    network_dir: Annotated[
        Path, typer.Option("--network-dir", help="The CA (key included), for the nodes.")
    ],
    hub_dir: Annotated[
        Path | None,
        typer.Option("--hub-dir", help="Only what the hub needs: ca.pem, hub.pem, hub.key."),
    ] = None,
) -> None:
    """Make the network's CA and the hub's client certificate (kept if they exist)."""
    import shutil

    from common.files import private_dir
    from common.pki import Pki

    pki = Pki(network_dir)
    pki.ensure_hub()
    typer.echo(f"network CA and hub certificate in {network_dir}")
    if hub_dir is not None:
        private_dir(hub_dir)
        for path in (pki.ca_cert, pki.hub_cert, pki.hub_key):
            shutil.copy2(path, hub_dir / path.name)
        typer.echo(f"the hub's share (no CA key) in {hub_dir}")


DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where SQLite files and credentials.json live."),
]


def hub_settings(
    *,
    data_dir: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    database_url: str | None = None,
    registry: Path | None = None,
) -> HubSettings:
    """Settings from the environment, overridden by command-line options.

    Settings the hub refuses (a placeholder secret outside development, say) end the
    command with the reason, not a traceback.
    """
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if database_url is not None:
        overrides["database_url"] = database_url
    if registry is not None:
        overrides["registry_file"] = registry
    try:
        return HubSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        typer.echo(f"ngsp: refusing to start: {reasons}", err=True)
        raise typer.Exit(2) from None


def settings_env(settings: HubSettings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in a worker process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"NGSP_HUB_{name.upper()}"] = str(value)
    return env


async def prepare_hub(settings: HubSettings) -> None:
    """Migrate the schema and apply the registry file once, before any worker starts."""
    from national_hub.bootstrap import apply_registry_file
    from national_hub.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        if settings.registry_file is not None:
            applied = await apply_registry_file(runtime, settings.registry_file)
            typer.echo(
                f"registry: {applied.nodes} nodes, {applied.services} services, "
                f"{applied.grants} grants applied from {settings.registry_file}"
            )


def run_hub(settings: HubSettings, *, workers: int = 1, log_level: str = "warning") -> None:
    """Serve the hub with uvicorn (uvloop and httptools) until interrupted."""
    import uvicorn

    settings = settings.resolved()
    asyncio.run(prepare_hub(settings))
    worker_settings = settings.model_copy(update={"auto_migrate": False, "registry_file": None})
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": GuardedHttpToolsProtocol,
        "access_log": False,
        "log_level": log_level,
        "backlog": 4096,
        "timeout_keep_alive": 30,
        # The hub is the edge: no proxy in front whose headers it should trust.
        "proxy_headers": False,
        "log_config": uvicorn_log_config("hub", log_level),
    }
    if workers > 1:
        os.environ.update(settings_env(worker_settings))
        # Workers write their metrics to files that /metrics merges (prometheus-client's
        # multiprocess mode); a fresh directory per start, so no dead worker's counts linger.
        metrics_dir = settings.data_dir / f"metrics-{settings.port}"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir.resolve())
        uvicorn.run("national_hub.app:create_app_from_env", factory=True, workers=workers, **common)
    else:
        from national_hub.app import create_app

        uvicorn.run(create_app(worker_settings), **common)


@app.command()
def hub(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    database_url: Annotated[
        str | None, typer.Option(help="postgresql+asyncpg://... (default: SQLite in data dir)")
    ] = None,
    registry: Annotated[
        Path | None, typer.Option(help="YAML registry to apply at start.", exists=True)
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the national hub."""
    settings = hub_settings(
        data_dir=data_dir, host=host, port=port, database_url=database_url, registry=registry
    )
    typer.echo(f"hub: http://{settings.host}:{settings.port} (database: {_db_label(settings)})")
    typer.echo(f"credentials: {settings.credentials_path.resolve()}")
    run_hub(settings, workers=workers, log_level=log_level)


def _db_label(settings: HubSettings) -> str:
    url = settings.sqlalchemy_url
    return url.split("@")[-1] if "@" in url else url


@db_app.command("upgrade")
def db_upgrade(
    data_dir: DataDir = None,
    database_url: Annotated[str | None, typer.Option(help="Database URL.")] = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Bring the hub's schema to a revision (the hub also does this at start)."""
    from common.db import Database
    from national_hub.migrations import upgrade as upgrade_hub_schema

    settings = hub_settings(data_dir=data_dir, database_url=database_url)

    async def _run() -> None:
        db = Database.connect(settings.sqlalchemy_url)
        try:
            await upgrade_hub_schema(db, revision)
        finally:
            await db.dispose()

    asyncio.run(_run())
    typer.echo(f"schema at {revision}: {_db_label(settings)}")


@ledger_app.command("verify")
def ledger_verify(
    data_dir: DataDir = None,
    database_url: Annotated[str | None, typer.Option(help="Database URL.")] = None,
    rollups: Annotated[
        bool, typer.Option(help="Also recompute the statistics from the rows.")
    ] = True,
) -> None:
    """Check the ledger's hash chains (and rollups); exit 1 at the first sign of tampering."""
    from common.db import Database
    from national_hub.ledger.verify import verify_ledger

    settings = hub_settings(data_dir=data_dir, database_url=database_url)

    async def _run() -> int:
        db = Database.connect(settings.sqlalchemy_url)
        try:
            report = await verify_ledger(
                db, rollups=rollups, offset_minutes=settings.stats_utc_offset_minutes
            )
        finally:
            await db.dispose()
        recipes = ", ".join(f"v{v}: {n}" for v, n in sorted(report.recipes.items()))
        typer.echo(
            f"{report.rows:,} rows in {report.chains} chains"
            + (f" (hash recipe {recipes})" if recipes else "")
            + (", rollups recomputed" if report.rollups_checked else "")
        )
        if report.ok:
            typer.echo("ledger intact")
            return 0
        typer.echo(f"TAMPERING: {len(report.findings)} finding(s); the first ones:")
        for finding in report.findings[:20]:
            where = f"row {finding.row}" if finding.row else f"chain {finding.chain}"
            seq = f" (#{finding.seq})" if finding.seq else ""
            typer.echo(f"  {finding.kind:8s} {where}{seq}: {finding.detail}")
        return 1

    raise typer.Exit(asyncio.run(_run()))


def _register_commands() -> None:
    from loadtest.cli import load
    from simulation.cli import simulate

    app.command("simulate", help="Run a scenario in virtual time beside the published figures.")(
        simulate
    )
    app.command("load", help="Open-loop load against a running network; capacity reports.")(load)


_register_commands()


def main() -> None:
    """Entry point of the ``ngsp`` console script."""
    app()


@app.command()
def nodes(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Control API port (default 8100).")] = None,
    node_port_base: Annotated[
        int | None, typer.Option(help="First node port (default 8101); 0 for any free ports.")
    ] = None,
    roster: Annotated[
        str | None, typer.Option(help="roster-2020, roster-2025 or a YAML file.")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Connection state at this date (YYYY-MM-DD).")
    ] = None,
    hub_url: Annotated[str | None, typer.Option(help="The hub to register with.")] = None,
    population: Annotated[
        int | None, typer.Option(help="Synthetic citizens (default 100,000).")
    ] = None,
    register: Annotated[bool, typer.Option(help="Register the network with the hub.")] = True,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve every simulated node of the roster, each on its own port, and register them."""
    import uvicorn

    from provincial_nodes.app import create_app as create_nodes_app
    from provincial_nodes.settings import NodesSettings

    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "host": host,
        "port": port,
        "node_port_base": node_port_base,
        "roster": roster,
        "as_of": as_of,
        "hub_url": hub_url,
        "population_size": population,
        "register_with_hub": register,
    }
    settings = NodesSettings(**{k: v for k, v in overrides.items() if v is not None})
    typer.echo(
        f"nodes: control API http://{settings.host}:{settings.port}, roster {settings.roster} "
        f"as of {settings.effective_as_of()}, {settings.population_size:,} citizens"
    )
    uvicorn.run(
        create_nodes_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,
        access_log=False,
        log_level=log_level,
        log_config=uvicorn_log_config("nodes", log_level),
        timeout_graceful_shutdown=5,
    )


@app.command()
def gateway(
    data_dir: DataDir = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8080).")] = None,
    hub_url: Annotated[str | None, typer.Option(help="The hub to run dossiers through.")] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="redis://... to share rate limits between replicas.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the gateway: developer keys, procedures and dossiers."""
    import uvicorn

    from gateway.app import create_app as create_gateway_app
    from gateway.settings import GatewaySettings

    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "host": host,
        "port": port,
        "hub_url": hub_url,
        "redis_url": redis_url,
    }
    try:
        settings = GatewaySettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        typer.echo(f"ngsp: refusing to start: {reasons}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"gateway: http://{settings.host}:{settings.port} (hub {settings.hub_url})")
    uvicorn.run(
        create_gateway_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,
        access_log=False,
        log_level=log_level,
        log_config=uvicorn_log_config("gateway", log_level),
        timeout_graceful_shutdown=10,
    )


@app.command()
def up(
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where SQLite files and credentials.json live.")
    ] = Path("ngsp-data"),
    hub_port: Annotated[int, typer.Option(help="Hub port.")] = 8000,
    gateway_port: Annotated[int, typer.Option(help="Gateway port.")] = 8080,
    nodes_port: Annotated[int, typer.Option(help="Nodes control port.")] = 8100,
    node_port_base: Annotated[int, typer.Option(help="First node port.")] = 8101,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Hub worker processes.")] = 1,
    roster: Annotated[str, typer.Option(help="roster-2020 or roster-2025.")] = "roster-2020",
    as_of: Annotated[str | None, typer.Option(help="Connection state at this date.")] = None,
    population: Annotated[int, typer.Option(help="Synthetic citizens.")] = 100_000,
    database_url: Annotated[
        str | None, typer.Option(help="Hub database (default: SQLite in the data dir).")
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="Services' log level (info logs every exchange).")
    ] = "info",
) -> None:
    """Start the whole simulated network: hub, every node, gateway; Ctrl-C stops it all.

    Each service logs JSON lines to <data-dir>/logs/<service>.log.
    """
    from common.files import private_dir
    from common.pki import Pki
    from ngsp.network import Service, run_network

    # The network's CA and the hub's client certificate; each node's is issued as the
    # nodes register. Only the hub reaches a provider (mutual TLS).
    private_dir(data_dir)  # databases, keys and credentials: no one else's to read
    pki = Pki(data_dir / "pki")
    pki.ensure_hub()
    os.environ.update(
        {
            "NGSP_HUB_PROVIDER_CA_FILE": str(pki.ca_cert.resolve()),
            "NGSP_HUB_PROVIDER_CERT_FILE": str(pki.hub_cert.resolve()),
            "NGSP_HUB_PROVIDER_KEY_FILE": str(pki.hub_key.resolve()),
            "NGSP_NODES_TLS_DIR": str(pki.root.resolve()),
        }
    )
    python = [sys.executable, "-m", "ngsp"]
    dd = ["--data-dir", str(data_dir)]
    hub_cmd = [
        *python,
        "hub",
        *dd,
        "--port",
        str(hub_port),
        "--workers",
        str(workers),
        "--log-level",
        log_level,
    ]
    if database_url:
        hub_cmd += ["--database-url", database_url]
    nodes_cmd = [
        *python,
        "nodes",
        *dd,
        "--port",
        str(nodes_port),
        "--node-port-base",
        str(node_port_base),
        "--roster",
        roster,
        "--hub-url",
        f"http://127.0.0.1:{hub_port}",
        "--population",
        str(population),
        "--log-level",
        log_level,
    ]
    if as_of:
        nodes_cmd += ["--as-of", as_of]
    gateway_cmd = [
        *python,
        "gateway",
        *dd,
        "--port",
        str(gateway_port),
        "--hub-url",
        f"http://127.0.0.1:{hub_port}",
        "--log-level",
        log_level,
    ]
    services = [
        Service("hub", hub_cmd, f"http://127.0.0.1:{hub_port}", "/readyz"),
        Service("nodes", nodes_cmd, f"http://127.0.0.1:{nodes_port}", "/healthz"),
        Service("gateway", gateway_cmd, f"http://127.0.0.1:{gateway_port}", "/readyz"),
    ]
    raise typer.Exit(run_network(services, data_dir=data_dir))
