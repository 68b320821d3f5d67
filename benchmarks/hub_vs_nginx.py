"""The hub against an nginx reverse proxy, in front of the same static provider, in one run.

    python benchmarks/hub_vs_nginx.py [--database sqlite|postgresql] [--workers N]

Starts nginx (Debian's package) serving a small static JSON document as the provider and
a plain nginx reverse proxy in front of it, and the hub (authentication, grant check and
durable ledger all on) in front of the same provider. Then, alternating the two targets
so that machine noise falls on both alike:

1. closed-loop throughput: ``wrk`` with 64 connections for ``--duration`` seconds,
   ``--repeats`` times each; medians of requests/s, p50 and p99;
2. hub-added latency: an open-loop generator (``loadtest.openloop``) at ``--rate``
   requests/s, straight to the provider and through the hub; the difference of the
   medians is what the hub adds.

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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

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


def nginx_conf(work: Path, provider_port: int, proxy_port: int) -> Path:
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
  }}
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
    work: Path, provider_url: str, port: int, *, workers: int, database: str, db_prefix: str
) -> tuple[subprocess.Popen[bytes], str | None]:
    """``ngsp hub`` in its own session, bootstrapped to route to ``provider_url``, on
    SQLite in ``work`` or on a fresh PostgreSQL database (its name is returned)."""
    env = {
        **os.environ,
        "NGSP_HUB_DATA_DIR": str(work / "data"),
        "NGSP_HUB_ADMIN_TOKEN": "bench-admin-token-0123456789abcdef",
        "NGSP_HUB_SIGNING_KEY": "bench-signing-key-0123456789abcdef",
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
    procs: list[subprocess.Popen[bytes]] = []
    pg_db = None
    try:
        nginx = subprocess.Popen(
            ["nginx", "-c", str(nginx_conf(work, provider_port, proxy_port)), "-p", str(work)]
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
        hub_url = f"http://127.0.0.1:{hub_port}"
        wait_ready(f"{hub_url}/readyz")
        token = httpx.post(
            f"{hub_url}/token",
            data={"grant_type": "client_credentials"},
            auth=("p01-bench", SECRET),
        ).json()["access_token"]
        path = "/citizens/001203004567"
        targets = {
            "nginx": (f"http://127.0.0.1:{proxy_port}{path}", None),
            "hub": (f"{hub_url}/exchange/DANCU/citizens/001203004567", token),
        }
        for url, tok in targets.values():  # warm up both
            wrk(url, duration=2, connections=args.connections, token=tok)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for r in range(args.repeats):
            for name, (url, tok) in targets.items():
                res = wrk(url, duration=args.duration, connections=args.connections, token=tok)
                runs[name].append(res)
                print(
                    f"  run {r + 1} {name:5s} {res['rps']:9.0f} req/s  "
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
        print()
        print(
            f"machine: {results['machine']}; database {args.database}, "
            f"{args.workers} hub worker(s), wrk -t2 -c{args.connections} "
            f"{args.duration}s x {args.repeats}"
        )
        print(f"{'target':8s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}")
        for name, m in median.items():
            print(f"{name:8s} {m['rps']:9.0f} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f}")
        print(f"ratio hub/nginx: {results['ratio_hub_to_nginx']:.3f}")
        print(
            f"open loop at {args.rate:g}/s: direct p50 {direct['latency_ms']['p50']:.2f} ms, "
            f"through hub p50 {through['latency_ms']['p50']:.2f} ms "
            f"(p99 {through['latency_ms']['p99']:.2f}); hub adds p50 {added_p50:.2f} ms, "
            f"p99 {added_p99:.2f} ms"
        )
        print(f"ledger rows committed: {ledger['transactions']}")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        drop_database(pg_db)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
