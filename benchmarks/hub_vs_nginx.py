"""The hub against an nginx reverse proxy, in front of the same static provider, in one run.

    python benchmarks/hub_vs_nginx.py [--database sqlite|postgresql] [--workers N]
                                      [--provider-tls] [--json FILE]

Starts nginx (Debian's package) serving a small static JSON document as the provider and
a plain nginx reverse proxy in front of it, and the hub (authentication, grant check and
durable ledger all on) in front of the same provider. Then, alternating the two targets
so that machine noise falls on both alike:

1. closed-loop throughput: ``wrk`` with 64 connections for ``--duration`` seconds,
   ``--repeats`` times each; medians of requests/s, p50 and p99;
2. hub-added latency: an open-loop generator (``loadtest.openloop``) at ``--rate``
   requests/s, straight to the provider and through the hub; the difference of the
   medians is what the hub adds.

With ``--provider-tls`` the run has four targets, alternated in each repeat: ``nginx``
and ``hub`` as above, and ``nginx-tls`` and ``hub-tls`` in front of the same provider
served over mutual TLS as well, the way the hub reaches a provider whose base URL is
``https://``. A PKI made for the run (``common.pki``) gives the provider a server
certificate for ``dancu.node.ngsp``; the provider accepts only a client certificate of
the network's CA. A second nginx reverse proxy reaches it over TLS with the hub's client
certificate (kept-alive upstream connections, sessions reused, the provider's name
checked), and a second hub, its registry pointing DANCU at ``https://127.0.0.1:<port>``,
with ``NGSP_HUB_PROVIDER_CA_FILE``, ``..._CERT_FILE`` and ``..._KEY_FILE`` set. Besides
the two-target results it reports hub-tls/nginx-tls, hub-tls/hub (what TLS to the
provider costs the hub's throughput) and the latency hub-tls adds over the plain
provider.

Everything listens on 127.0.0.1 and every run is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from common.pki import Pki, client_context, node_name
from loadtest.openloop import Request, run_open_loop

PAYLOAD = '{"id":"001203004567","full_name":"Nguyễn Văn An","date_of_birth":"2003-05-17"}'
SECRET = "bench-secret-0123456789abcdef"
PG_ADMIN = os.environ.get("NGSP_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def stop_cleanly_on_sigterm() -> None:
    """Make SIGTERM unwind like an exception, so the servers and generators started are
    stopped by the ``finally`` blocks instead of being left running."""

    def _exit(_signum: int, _frame: Any) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _exit)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class ProviderTls:
    """The provider over mutual TLS too: the run's PKI, the provider's TLS port and the
    port of the nginx reverse proxy that reaches it over TLS."""

    pki: Pki
    provider_port: int
    proxy_port: int

    @classmethod
    def make(cls, work: Path) -> ProviderTls:
        """A CA, the hub's client certificate and DANCU's server certificate in
        ``work/pki``, and two free ports."""
        pki = Pki(work / "pki")
        pki.ensure_hub()
        pki.ensure_nodes(["DANCU"])
        return cls(pki, free_port(), free_port())

    @property
    def provider_url(self) -> str:
        return f"https://127.0.0.1:{self.provider_port}"

    def hub_env(self) -> dict[str, str]:
        """The hub's settings for mutual TLS to providers."""
        return {
            "NGSP_HUB_PROVIDER_CA_FILE": str(self.pki.ca_cert.resolve()),
            "NGSP_HUB_PROVIDER_CERT_FILE": str(self.pki.hub_cert.resolve()),
            "NGSP_HUB_PROVIDER_KEY_FILE": str(self.pki.hub_key.resolve()),
        }

    def nginx_servers(self) -> str:
        """The provider on its TLS port, and the reverse proxy reaching it over TLS."""
        pki, name = self.pki, node_name("DANCU")
        return f"""
  upstream provider_tls {{ server 127.0.0.1:{self.provider_port}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{self.provider_port} ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {pki.node_cert("DANCU").resolve()};
    ssl_certificate_key {pki.node_key("DANCU").resolve()};
    ssl_client_certificate {pki.ca_cert.resolve()};
    ssl_verify_client on;
    location / {{ default_type application/json; return 200 '{PAYLOAD}'; }}
  }}
  server {{
    listen 127.0.0.1:{self.proxy_port};
    location / {{
      proxy_pass https://provider_tls;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_certificate {pki.hub_cert.resolve()};
      proxy_ssl_certificate_key {pki.hub_key.resolve()};
      proxy_ssl_trusted_certificate {pki.ca_cert.resolve()};
      proxy_ssl_verify on;
      proxy_ssl_name {name};
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }}
  }}
"""

    def check_provider(self, path: str) -> None:
        """The provider answers the hub's client certificate, and not a client without one
        (so that what is measured is mutual TLS)."""
        url = f"{self.provider_url}{path}"
        name = {"sni_hostname": node_name("DANCU")}  # the name its certificate carries
        pki = self.pki
        with_cert = client_context(pki.hub_cert, pki.hub_key, pki.ca_cert)
        with httpx.Client(verify=with_cert, timeout=5) as client:
            status = client.get(url, extensions=name).status_code
        if status != 200:
            raise RuntimeError(f"the TLS provider answered {status} to the hub's certificate")
        without = ssl.create_default_context(cafile=str(pki.ca_cert))
        try:
            with httpx.Client(verify=without, timeout=5) as client:
                status = client.get(url, extensions=name).status_code
        except httpx.HTTPError:
            return
        if 200 <= status < 400:
            raise RuntimeError("the TLS provider answered a client without a certificate")


def nginx_conf(
    work: Path, provider_port: int, proxy_port: int, tls: ProviderTls | None = None
) -> Path:
    conf = work / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  upstream provider {{ server 127.0.0.1:{provider_port}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{provider_port};
    location / {{ default_type application/json; return 200 '{PAYLOAD}'; }}
  }}
  server {{
    listen 127.0.0.1:{proxy_port};
    location / {{
      proxy_pass http://provider;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}{tls.nginx_servers() if tls else ""}
}}
"""
    )
    return conf


def registry(work: Path, provider_url: str) -> Path:
    path = work / "registry.yaml"
    document = {
        "nodes": [
            {
                "code": "DANCU",
                "name": "Cơ sở dữ liệu quốc gia về dân cư",
                "kind": "national_database",
                "base_url": provider_url,
                "services": [
                    {
                        "code": "citizens",
                        "base_path": "/citizens",
                        "openapi": {
                            "openapi": "3.1.0",
                            "info": {"title": "citizens", "version": "1"},
                            "paths": {"/{id}": {"get": {}}},
                        },
                    }
                ],
            },
            {
                "code": "P01",
                "name": "Thành phố Hà Nội",
                "kind": "province",
                "base_url": provider_url,
                "credentials": [{"client_id": "p01-bench", "client_secret": SECRET}],
            },
        ],
        "grants": [{"consumer": "P01", "provider": "DANCU", "service": "citizens"}],
    }
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    return path


def start_hub(
    work: Path,
    provider_url: str,
    port: int,
    *,
    workers: int,
    database: str,
    db_prefix: str,
    env_extra: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str | None]:
    """``ngsp hub`` in its own session, bootstrapped to route to ``provider_url``, on
    SQLite in ``work`` or on a fresh PostgreSQL database (its name is returned), with
    ``env_extra`` added to its environment."""
    env = {
        **os.environ,
        "NGSP_HUB_DATA_DIR": str(work / "data"),
        "NGSP_HUB_ADMIN_TOKEN": "bench-admin-token-0123456789abcdef",
        "NGSP_HUB_SIGNING_KEY": "bench-signing-key-0123456789abcdef",
        **(env_extra or {}),
    }
    pg_db = None
    if database == "postgresql":
        pg_db = f"{db_prefix}_{os.getpid()}"
        subprocess.run(["psql", PG_ADMIN, "-qc", f'CREATE DATABASE "{pg_db}"'], check=True)
        base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        env["NGSP_HUB_DATABASE_URL"] = f"{base}/{pg_db}"
    hub = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ngsp",
            "hub",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--registry",
            str(registry(work, provider_url)),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    return hub, pg_db


def drop_database(pg_db: str | None) -> None:
    if pg_db:
        subprocess.run(
            ["psql", PG_ADMIN, "-qc", f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'],
            check=False,
        )


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> dict[str, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    result = {"rps": rps}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", output)
        if m:
            result[f"p{pct}_ms"] = float(m.group(1)) * _UNITS[m.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non_2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    return result


def wrk(url: str, *, duration: int, connections: int, token: str | None) -> dict[str, float]:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True)
    return parse_wrk(out.stdout)


async def open_loop_p(url: str, token: str | None, rate: float, duration: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = Request("GET", url, headers)
    result = await run_open_loop(lambda i: req, rate=rate, duration=duration, connections=64)
    return result.summary()


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def hub_token(hub_url: str) -> str:
    """An access token of the bench's consumer (P01) from the hub at ``hub_url``."""
    return str(
        httpx.post(
            f"{hub_url}/token",
            data={"grant_type": "client_credentials"},
            auth=("p01-bench", SECRET),
        ).json()["access_token"]
    )


def main() -> None:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop rate for latency")
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument(
        "--provider-tls",
        action="store_true",
        help="also nginx-tls and hub-tls: the same provider over mutual TLS",
    )
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is required: apt-get install nginx-light wrk")

    work = Path(tempfile.mkdtemp(prefix="ngsp-bench-"))
    (work / "body").mkdir()
    (work / "proxy").mkdir()
    provider_port, proxy_port, hub_port = free_port(), free_port(), free_port()
    provider_url = f"http://127.0.0.1:{provider_port}"
    tls = ProviderTls.make(work) if args.provider_tls else None
    procs: list[subprocess.Popen[bytes]] = []
    pg_dbs: list[str | None] = []
    try:
        nginx = subprocess.Popen(
            ["nginx", "-c", str(nginx_conf(work, provider_port, proxy_port, tls)), "-p", str(work)]
        )
        procs.append(nginx)
        wait_ready(f"{provider_url}/citizens/x")
        hub, pg_db = start_hub(
            work,
            provider_url,
            hub_port,
            workers=args.workers,
            database=args.database,
            db_prefix="ngsp_bench",
        )
        procs.append(hub)
        pg_dbs.append(pg_db)
        path = "/citizens/001203004567"
        hub_tls_url = ""
        if tls is not None:
            tls.check_provider(path)
            (work / "hub-tls").mkdir()
            hub_tls_port = free_port()
            hub_tls_url = f"http://127.0.0.1:{hub_tls_port}"
            hub_tls, pg_db = start_hub(
                work / "hub-tls",
                tls.provider_url,
                hub_tls_port,
                workers=args.workers,
                database=args.database,
                db_prefix="ngsp_bench_tls",
                env_extra=tls.hub_env(),
            )
            procs.append(hub_tls)
            pg_dbs.append(pg_db)
        hub_url = f"http://127.0.0.1:{hub_port}"
        wait_ready(f"{hub_url}/readyz")
        token = hub_token(hub_url)
        targets = {
            "nginx": (f"http://127.0.0.1:{proxy_port}{path}", None),
            "hub": (f"{hub_url}/exchange/DANCU/citizens/001203004567", token),
        }
        if tls is not None:
            wait_ready(f"{hub_tls_url}/readyz")
            targets["nginx-tls"] = (f"http://127.0.0.1:{tls.proxy_port}{path}", None)
            targets["hub-tls"] = (
                f"{hub_tls_url}/exchange/DANCU/citizens/001203004567",
                hub_token(hub_tls_url),
            )
            for name, (url, tok) in targets.items():  # each answers before it is measured
                headers = {"Authorization": f"Bearer {tok}"} if tok else {}
                answer = httpx.get(url, headers=headers, timeout=10)
                if answer.status_code != 200:
                    raise RuntimeError(f"{name} answered {answer.status_code}: {answer.text}")
        for url, tok in targets.values():  # warm up every target
            wrk(url, duration=2, connections=args.connections, token=tok)
        width = max(len(name) for name in targets)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for r in range(args.repeats):
            for name, (url, tok) in targets.items():
                res = wrk(url, duration=args.duration, connections=args.connections, token=tok)
                runs[name].append(res)
                print(
                    f"  run {r + 1} {name:{width}s} {res['rps']:9.0f} req/s  "
                    f"p50 {res.get('p50_ms', 0):7.2f} ms  p99 {res.get('p99_ms', 0):7.2f} ms  "
                    f"non-2xx {res['non_2xx']:.0f}",
                    flush=True,
                )
        median = {
            name: {k: statistics.median(run[k] for run in rs) for k in rs[0]}
            for name, rs in runs.items()
        }
        direct = asyncio.run(
            open_loop_p(f"{provider_url}{path}", None, args.rate, args.latency_seconds)
        )
        through = asyncio.run(
            open_loop_p(targets["hub"][0], token, args.rate, args.latency_seconds)
        )
        added_p50 = through["latency_ms"]["p50"] - direct["latency_ms"]["p50"]
        added_p99 = through["latency_ms"]["p99"] - direct["latency_ms"]["p99"]
        with httpx.Client() as client:
            ledger = client.get(f"{hub_url}/stats/daily").json()["totals"]
        results = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": machine(),
            "database": args.database,
            "workers": args.workers,
            "connections": args.connections,
            "duration_s": args.duration,
            "repeats": args.repeats,
            "median": median,
            "ratio_hub_to_nginx": median["hub"]["rps"] / median["nginx"]["rps"],
            "open_loop_rate": args.rate,
            "direct": direct,
            "through_hub": through,
            "hub_added_p50_ms": added_p50,
            "hub_added_p99_ms": added_p99,
            "ledger_rows": ledger["transactions"],
        }
        if tls is not None:
            url, tok = targets["hub-tls"]
            through_tls = asyncio.run(open_loop_p(url, tok, args.rate, args.latency_seconds))
            with httpx.Client() as client:
                ledger_tls = client.get(f"{hub_tls_url}/stats/daily").json()["totals"]
            results |= {
                "provider_tls": True,
                "ratio_hub_tls_to_nginx_tls": median["hub-tls"]["rps"] / median["nginx-tls"]["rps"],
                "ratio_hub_tls_to_hub": median["hub-tls"]["rps"] / median["hub"]["rps"],
                "ratio_nginx_tls_to_nginx": median["nginx-tls"]["rps"] / median["nginx"]["rps"],
                "through_hub_tls": through_tls,
                # Against the plain provider: what a consumer sees added, TLS hop included.
                "hub_tls_added_p50_ms": through_tls["latency_ms"]["p50"]
                - direct["latency_ms"]["p50"],
                "hub_tls_added_p99_ms": through_tls["latency_ms"]["p99"]
                - direct["latency_ms"]["p99"],
                "ledger_rows_tls": ledger_tls["transactions"],
            }
        print()
        print(
            f"machine: {results['machine']}; database {args.database}, "
            f"{args.workers} hub worker(s), wrk -t2 -c{args.connections} "
            f"{args.duration}s x {args.repeats}"
        )
        column = max(8, width)
        print(f"{'target':{column}s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}")
        for name, m in median.items():
            print(f"{name:{column}s} {m['rps']:9.0f} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f}")
        print(f"ratio hub/nginx: {results['ratio_hub_to_nginx']:.3f}")
        if tls is not None:
            print(f"ratio hub-tls/nginx-tls: {results['ratio_hub_tls_to_nginx_tls']:.3f}")
            print(
                f"ratio hub-tls/hub: {results['ratio_hub_tls_to_hub']:.3f} "
                f"(nginx-tls/nginx: {results['ratio_nginx_tls_to_nginx']:.3f})"
            )
        print(
            f"open loop at {args.rate:g}/s: direct p50 {direct['latency_ms']['p50']:.2f} ms, "
            f"through hub p50 {through['latency_ms']['p50']:.2f} ms "
            f"(p99 {through['latency_ms']['p99']:.2f}); hub adds p50 {added_p50:.2f} ms, "
            f"p99 {added_p99:.2f} ms"
        )
        if tls is not None:
            got = results["through_hub_tls"]["latency_ms"]
            print(
                f"open loop at {args.rate:g}/s: through hub-tls p50 {got['p50']:.2f} ms "
                f"(p99 {got['p99']:.2f}); over the plain provider direct, hub-tls adds "
                f"p50 {results['hub_tls_added_p50_ms']:.2f} ms, "
                f"p99 {results['hub_tls_added_p99_ms']:.2f} ms"
            )
        print(f"ledger rows committed: {ledger['transactions']}")
        if tls is not None:
            print(f"ledger rows committed (hub-tls): {results['ledger_rows_tls']}")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for pg_db in pg_dbs:
            drop_database(pg_db)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
