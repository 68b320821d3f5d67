"""Capacity at the latency objective: the hub, an nginx reverse proxy and the nodes directly.

    python benchmarks/capacity.py [--database sqlite,postgresql] [--hub-workers 1]
                                  [--slo-p99 50] [--step-seconds 8] [--json FILE]

For each database it starts, on loopback, the hub (everything on: tokens, grants, the
durable ledger), the simulated network (97 nodes, 100,000 citizens) and nginx as a plain
reverse proxy mapping ``/exchange/{node}/...`` to the same nodes. Then, with the load
tool's open-loop generator and the hub-direct traffic model (``loadtest``):

1. capacity through the hub: the highest rate whose p99, measured from each request's
   scheduled time, stays within ``--slo-p99`` with errors ≤ 0.1%
   (``loadtest.capacity.find_capacity``);
2. the same search through nginx, in front of the same nodes: the capacity of the nodes
   and generator with a proxy that does nothing but forward;
3. latency at 50% of the hub's capacity, straight to the nodes, through nginx and through
   the hub: the difference of the medians is what each adds.

During every step it reads the CPU time of each component from ``/proc`` (the hub's and
the nodes' process groups, nginx, the generator's workers), so the report says which one
ran out of CPU first. At the end it checks that the hub's ledger holds a row for every
exchange the hub answered with a 2xx.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from loadtest.capacity import CapacityResult, find_capacity
from loadtest.runner import GeneratorPool, Progress, RunResult, Step
from loadtest.targets import HubTargetSpec, prepare_hub_target

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("NGSP_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
SIGNING_KEY = "bench-signing-key-0123456789abcdef"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready")


def group_cpu(pgid: int) -> float:
    """CPU seconds used so far by the live processes of a process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # field 5, pgrp
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def disk_probe(directory: Path, commits: int = 300) -> dict[str, float]:
    """Latency of durable SQLite commits (WAL, synchronous=FULL) in ``directory``: the floor
    under the hub's acknowledgement, and on a shared disk the most variable part of it."""
    import sqlite3

    path = directory / "probe.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
    times = []
    for i in range(commits):
        t0 = time.perf_counter()
        conn.execute("INSERT INTO t VALUES (?, ?)", (i, "x" * 200))
        times.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.002)
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    times.sort()
    return {
        "p50_ms": round(times[len(times) // 2], 3),
        "p99_ms": round(times[int(len(times) * 0.99)], 3),
        "max_ms": round(times[-1], 3),
    }


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


def nginx_conf(work: Path, port: int, nodes: dict[str, str]) -> Path:
    upstreams = "\n".join(
        f"  upstream n_{code} {{ server {url.removeprefix('http://')}; keepalive 16; }}"
        for code, url in nodes.items()
    )
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
{upstreams}
  server {{
    listen 127.0.0.1:{port};
    location ~ ^/exchange/([A-Z0-9]+)/(.*)$ {{
      proxy_pass http://n_$1/$2$is_args$args;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""
    )
    return conf


class Stack:
    """The hub, the nodes and nginx for one database, each in its own process group."""

    def __init__(self, work: Path, *, database: str, hub_workers: int, population: int) -> None:
        self.work = work
        self.database = database
        self.hub_workers = hub_workers
        self.population = population
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pg_db: str | None = None

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        data = self.work / "data"
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "NGSP_HUB_ADMIN_TOKEN": ADMIN_TOKEN,
            "NGSP_HUB_SIGNING_KEY": SIGNING_KEY,
            "NGSP_NODES_HUB_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        hub_port, control_port, proxy_port = free_port(), free_port(), free_port()
        self.hub_url = f"http://127.0.0.1:{hub_port}"
        self.control_url = f"http://127.0.0.1:{control_port}"
        self.nginx_url = f"http://127.0.0.1:{proxy_port}"
        python = [sys.executable, "-m", "ngsp"]
        hub_cmd = [
            *python,
            "hub",
            "--data-dir",
            str(data),
            "--port",
            str(hub_port),
            "--workers",
            str(self.hub_workers),
            "--log-level",
            "warning",
        ]
        if self.database == "postgresql":
            self.pg_db = f"ngsp_capacity_{os.getpid()}"
            subprocess.run(["psql", PG_ADMIN, "-qc", f'CREATE DATABASE "{self.pg_db}"'], check=True)
            base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            hub_cmd += ["--database-url", f"{base}/{self.pg_db}"]
        self._spawn("hub", hub_cmd, env)
        wait_ready(f"{self.hub_url}/readyz", self.procs["hub"])
        nodes_cmd = [
            *python,
            "nodes",
            "--data-dir",
            str(data),
            "--port",
            str(control_port),
            "--node-port-base",
            "0",
            "--hub-url",
            self.hub_url,
            "--population",
            str(self.population),
            "--log-level",
            "warning",
        ]
        self._spawn("nodes", nodes_cmd, env)
        wait_ready(f"{self.control_url}/healthz", self.procs["nodes"])
        listed = httpx.get(f"{self.control_url}/nodes", timeout=10).json()["items"]
        self.node_urls = {n["code"]: n["url"] for n in listed}
        (self.work / "body").mkdir(exist_ok=True)
        (self.work / "proxy").mkdir(exist_ok=True)
        conf = nginx_conf(self.work, proxy_port, self.node_urls)
        self._spawn("nginx", ["nginx", "-c", str(conf), "-p", str(self.work)], env)
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{self.nginx_url}/exchange/DANCU/healthz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.credentials = data / "credentials.json"

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = open(self.work / f"{name}.log", "ab")  # noqa: SIM115 - the child's lifetime
        self.procs[name] = subprocess.Popen(
            cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def cpu(self) -> dict[str, float]:
        return {name: group_cpu(proc.pid) for name, proc in self.procs.items()}

    def ledger_rows(self) -> int:
        totals = httpx.get(f"{self.hub_url}/stats/daily", timeout=30).json()["totals"]
        return int(totals["transactions"])

    def __exit__(self, *exc: object) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)
        if self.pg_db:
            subprocess.run(
                ["psql", PG_ADMIN, "-qc", f'DROP DATABASE IF EXISTS "{self.pg_db}" WITH (FORCE)'],
                check=False,
            )


class MeteredPool(GeneratorPool):
    """A generator pool that notes every component's CPU use during each step."""

    def __init__(self, spec: Any, stack: Stack, **kwargs: Any) -> None:
        super().__init__(spec, **kwargs)
        self.stack = stack
        self.usage: dict[int, dict[str, float]] = {}

    def run(
        self, step: Step, *, on_progress: Callable[[Progress], None] | None = None
    ) -> RunResult:
        before, t0 = self.stack.cpu(), time.monotonic()
        run = super().run(step, on_progress=on_progress)
        after, wall = self.stack.cpu(), time.monotonic() - t0
        cores = {k: round((after[k] - before[k]) / wall, 3) for k in after}
        cores["generator"] = round(sum(run.worker_cpu), 3)
        self.usage[id(run)] = cores
        return run


def step_row(pool: MeteredPool, run: RunResult, verdict: str = "") -> dict[str, Any]:
    r = run.result
    return {
        "rate": round(run.step.rate, 1),
        "achieved": round(r.achieved_rate, 1),
        "ok": r.ok,
        "errors": r.error_count,
        "p50_ms": round(r.percentile_ms(50), 2),
        "p99_ms": round(r.percentile_ms(99), 2),
        "cores": pool.usage.get(id(run), {}),
        "verdict": verdict,
    }


def search(pool: MeteredPool, name: str, args: argparse.Namespace) -> dict[str, Any]:
    print(f"  capacity through {name}:", flush=True)

    def show(run: RunResult, verdict: Any) -> None:
        row = step_row(pool, run, verdict.reason)
        print(
            f"    {row['rate']:8,.0f}/s → {row['achieved']:8,.1f}/s  p50 {row['p50_ms']:7.2f} ms"
            f"  p99 {row['p99_ms']:8.2f} ms  errors {row['errors']:5d}  cores {row['cores']}"
            f"  {'pass' if verdict.passed else 'FAIL'} {verdict.reason}",
            flush=True,
        )

    result: CapacityResult = find_capacity(
        pool,
        slo_p99_ms=args.slo_p99,
        start_rate=args.start_rate,
        max_rate=args.max_rate,
        growth=args.growth,
        refine=args.refine,
        step_seconds=args.step_seconds,
        timeout=5.0,
        on_step=show,
    )
    best = result.best
    floor = best.step.rate if best else 0.0
    above = [(run, v) for run, v in result.steps if not v.passed and run.step.rate > floor]
    first_failure = min(above, key=lambda rv: rv[0].step.rate, default=None)
    return {
        "capacity": round(result.sustainable_rate, 1),
        "per_day": round(result.sustainable_rate * 86_400),
        "limited_by": result.limited_by,
        "best": step_row(pool, best) if best else None,
        "first_failure_above": (
            step_row(pool, first_failure[0], first_failure[1].reason) if first_failure else None
        ),
        "steps": [step_row(pool, run, v.reason) for run, v in result.steps],
    }


def latency(pools: dict[str, MeteredPool], rate: float, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("direct", "nginx", "hub"):
        step = Step(rate=rate, duration=seconds, max_requests=int(rate * seconds * 1.2) + 100)
        run = pools[name].run(step)
        out[name] = step_row(pools[name], run)
        row = out[name]
        print(
            f"    {name:6s} at {rate:,.0f}/s: p50 {row['p50_ms']:.2f} ms, "
            f"p99 {row['p99_ms']:.2f} ms, errors {row['errors']}, cores {row['cores']}",
            flush=True,
        )
    for name in ("nginx", "hub"):
        out[f"{name}_adds_p50_ms"] = round(out[name]["p50_ms"] - out["direct"]["p50_ms"], 2)
        out[f"{name}_adds_p99_ms"] = round(out[name]["p99_ms"] - out["direct"]["p99_ms"], 2)
    return out


def bench(database: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"ngsp-capacity-{database}-"))
    print(f"\n== {database}, hub workers {args.hub_workers} ==", flush=True)
    load_before = os.getloadavg()[0]
    disk = disk_probe(work)
    print(f"  durable SQLite commit on this disk: {disk}; load average {load_before:.2f}")
    try:
        with Stack(
            work, database=database, hub_workers=args.hub_workers, population=args.population
        ) as stack:
            spec: HubTargetSpec = asyncio.run(prepare_hub_target(stack.credentials))
            specs = {
                "hub": spec,
                "nginx": dataclasses.replace(spec, hub_url=stack.nginx_url),
                "direct": dataclasses.replace(spec, direct=stack.node_urls),
            }
            # Each pool its own seed: the same draws twice would register the same births
            # twice (409 already_registered).
            pools = {
                name: MeteredPool(s, stack, workers=args.generators, seed=args.seed + i)
                for i, (name, s) in enumerate(specs.items())
            }
            try:
                for pool in pools.values():
                    pool.start()
                # Warm up every path (connections, caches) before measuring.
                for pool in pools.values():
                    pool.run(Step(rate=200, duration=3, max_requests=1000))
                ledger_before = stack.ledger_rows()
                hub = search(pools["hub"], "the hub", args)
                nginx = search(pools["nginx"], "nginx", args)
                half = max(50.0, hub["capacity"] / 2)
                print(f"  latency at 50% of the hub's capacity ({half:,.0f}/s):", flush=True)
                lat = latency(pools, half, args.latency_seconds)
                time.sleep(2)
                ok_through_hub = sum(row["ok"] for row in hub["steps"]) + lat["hub"]["ok"]
                ledger_added = stack.ledger_rows() - ledger_before
            finally:
                for pool in pools.values():
                    pool.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "database": database,
        "hub_workers": args.hub_workers,
        "hub": hub,
        "nginx": nginx,
        "hub_to_nginx": round(hub["capacity"] / nginx["capacity"], 3)
        if nginx["capacity"]
        else None,
        "latency_at_half_capacity": lat,
        "ledger": {"ok_through_hub": ok_through_hub, "rows_added": ledger_added},
        "disk_commit_ms": disk,
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--database", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--hub-workers", type=int, default=1)
    parser.add_argument("--generators", type=int, default=1, help="generator processes")
    parser.add_argument("--population", type=int, default=100_000)
    parser.add_argument("--slo-p99", type=float, default=50.0, help="milliseconds")
    parser.add_argument("--start-rate", type=float, default=100.0)
    parser.add_argument("--max-rate", type=float, default=8_000.0)
    parser.add_argument("--growth", type=float, default=1.5)
    parser.add_argument("--refine", type=int, default=3)
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    if shutil.which("nginx") is None:
        sys.exit("nginx is required: apt-get install nginx-light")
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "slo_p99_ms": args.slo_p99,
        "step_seconds": args.step_seconds,
        "generators": args.generators,
        "population": args.population,
        "runs": [bench(db.strip(), args) for db in args.database.split(",") if db.strip()],
    }
    print(f"\nmachine: {results['machine']}; SLO p99 ≤ {args.slo_p99:g} ms, errors ≤ 0.1%")
    print(f"{'set-up':28s} {'hub /s':>8s} {'a day':>13s} {'nginx /s':>9s} {'hub/nginx':>9s}")
    for run in results["runs"]:
        label = f"{run['database']}, {run['hub_workers']} hub worker(s)"
        print(
            f"{label:28s} {run['hub']['capacity']:8,.0f} {run['hub']['per_day']:13,} "
            f"{run['nginx']['capacity']:9,.0f} {run['hub_to_nginx'] or 0:9.2f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
