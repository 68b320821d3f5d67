"""How many Prometheus series the platform makes with the full 2020 roster under load.

    python benchmarks/series.py [--rate 300] [--duration 90s] [--population 100000]
                                [--sweep] [--json FILE]

Starts, on loopback, the whole simulated network with ``ngsp up`` (the hub on SQLite, all
97 nodes of 2020, the gateway) and Prometheus (Debian's ``prometheus`` package) with the
project's scrape configuration and alert rules (``deploy/prometheus``), its targets
moved to the loopback ports. Then:

1. runs the load tool (``python -m loadtest``, the hub-direct traffic model: every
   connected body as a consumer, weighted by population) for ``--duration``;
2. meanwhile submits, through the gateway, two procedures' dossiers in every province,
   stops one provider for a while and injects errors into another, so that the failure
   outcomes a bad day brings have their series too;
3. with ``--sweep``, then has every body call every service of every node once, granted
   or not: the refusals are labelled by consumer, provider and service too, so this is
   the count a misbehaving or scanning network would bring;
4. reads the number of series from Prometheus: ``count({__name__=~"ngsp_.+"})`` (the
   platform's own), ``prometheus_tsdb_head_series`` (everything in the head block), and
   the series per metric and per job.

The goal (issue 5) is under 50,000 active series. Everything listens on 127.0.0.1, every
wait is bounded, and every process started is stopped at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY_PROMETHEUS = REPO / "deploy" / "prometheus"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready in {timeout:g} s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def prometheus_config(targets: dict[str, str], self_address: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with each job's targets moved to loopback ports."""
    config: dict[str, Any] = yaml.safe_load((DEPLOY_PROMETHEUS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="5s", scrape_timeout="5s", evaluation_interval="5s")
    config["rule_files"] = [str(DEPLOY_PROMETHEUS / p) for p in config["rule_files"]]
    for job in config["scrape_configs"]:
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        address = self_address if job["job_name"] == "prometheus" else targets[job["job_name"]]
        job["static_configs"] = [{"targets": [address]}]
    return config


class Prometheus:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = self.http.get("/api/v1/query", params={"query": expr}).json()
        if body.get("status") != "success":
            raise RuntimeError(f"{expr}: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, expr: str) -> int:
        result = self.query(expr)
        return int(float(result[0]["value"][1])) if result else 0


def exposed_samples(urls: dict[str, str]) -> dict[str, int]:
    """Sample lines each service's /metrics page holds right now (the series it exports)."""
    counts: dict[str, int] = {}
    for job, url in urls.items():
        text = httpx.get(f"{url}/metrics", timeout=30).text
        counts[job] = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return counts


def dossiers(gateway: str, key: str, nodes_url: str) -> dict[int, int]:
    """Two procedures' dossiers in every province, through the gateway; statuses seen."""
    samples = httpx.get(f"{nodes_url}/samples", params={"n": 50}, timeout=30).json()
    roster = httpx.get(f"{nodes_url}/nodes", timeout=30).json()["items"]
    provinces = [n["code"] for n in roster if n["kind"] == "province"]
    born = (dt.date.today() - dt.timedelta(days=20)).isoformat()
    statuses: dict[int, int] = {}
    with httpx.Client(timeout=60, headers={"X-API-Key": key}) as client:
        for i, province in enumerate(provinces):
            mother = samples["mothers"][i % len(samples["mothers"])]["id_number"]
            tax_code = samples["tax_codes"][i % len(samples["tax_codes"])]
            lookup = {"tax_code": tax_code}
            for body in (
                {"procedure": "2.001610", "province": province, "applicant": lookup},
                {
                    "procedure": "1.001022",
                    "province": province,
                    "applicant": {
                        "mother_id": mother,
                        "child_full_name": "Trần Thị Mai",
                        "child_gender": "female",
                        "child_date_of_birth": born,
                        "address": "Số 5 Lê Lợi",
                    },
                },
            ):
                code = client.post(f"{gateway}/dossiers", json=body).status_code
                statuses[code] = statuses.get(code, 0) + 1
    return statuses


def fault(nodes_url: str, token: str, node: str, spec: dict[str, Any] | None) -> None:
    url = f"{nodes_url}/admin/faults/{node}"
    headers = {"Authorization": f"Bearer {token}"}
    if spec is None:
        httpx.delete(url, headers=headers, timeout=30).raise_for_status()
    else:
        httpx.put(url, json=spec, headers=headers, timeout=30).raise_for_status()


#: A path of each service, for the sweep (any answer will do: it is the labels that count).
SWEEP_PATHS = {
    "population": "/citizens/001099000000",
    "civil-status": "/births/unknown",
    "health-insurance": "/cards/unknown",
    "land": "/parcels/unknown",
    "business-registry": "/enterprises/unknown",
    "one-stop": "/dossiers/unknown",
}


async def sweep(credentials: Path, nodes_url: str) -> dict[int, int]:
    """Every body calls every service of every node once, granted or not (the worst case)."""
    import asyncio

    from common.hubclient import HubClient

    statuses: dict[int, int] = {}
    limit = asyncio.Semaphore(64)
    limits = httpx.Limits(max_connections=128)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        roster = (await http.get(f"{nodes_url}/nodes")).json()["items"]
        consumers = [n["code"] for n in roster if n["kind"] != "national_database"]
        services = [(n["code"], s) for n in roster for s in n["services"]]
        clients = {c: HubClient.from_credentials(credentials, c, http=http) for c in consumers}

        async def one(consumer: str, provider: str, service: str) -> None:
            async with limit:
                path = SWEEP_PATHS.get(service, "/")
                resp = await clients[consumer].call(provider, service, "GET", path)
                statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1

        await asyncio.gather(*(one(c, p, s) for c in consumers for p, s in services))
    return statuses


def count_series(prometheus: Prometheus, urls: dict[str, str]) -> dict[str, Any]:
    """The series Prometheus holds now: the platform's, all of them, per job and metric."""
    per_metric = {
        r["metric"]["__name__"]: int(float(r["value"][1]))
        for r in prometheus.query('count by (__name__) ({__name__=~"ngsp_.+"})')
    }
    per_job = {
        r["metric"].get("job", "?"): int(float(r["value"][1]))
        for r in prometheus.query('count by (job) ({__name__=~"ngsp_.+"})')
    }
    return {
        "ngsp_series": prometheus.scalar('count({__name__=~"ngsp_.+"})'),
        "head_series": prometheus.scalar("prometheus_tsdb_head_series"),
        "consumer_provider_service_triples": prometheus.scalar(
            "count(count by (consumer, provider, service) (ngsp_exchanges_total))"
        ),
        "exchange_series": prometheus.scalar("count(ngsp_exchanges_total)"),
        "per_job": per_job,
        "per_metric": dict(sorted(per_metric.items(), key=lambda kv: -kv[1])),
        "exposed_samples": exposed_samples(urls),
    }


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    prometheus_bin = shutil.which("prometheus")
    if prometheus_bin is None:
        raise SystemExit("prometheus is not installed (Debian: apt-get install prometheus)")
    data = work / "ngsp-data"
    ports = {"hub": free_port(), "gateway": free_port(), "nodes": free_port()}
    urls = {
        "ngsp-hub": f"http://127.0.0.1:{ports['hub']}",
        "ngsp-gateway": f"http://127.0.0.1:{ports['gateway']}",
        "ngsp-nodes": f"http://127.0.0.1:{ports['nodes']}",
    }
    up: subprocess.Popen[bytes] | None = None
    prom: subprocess.Popen[bytes] | None = None
    load: subprocess.Popen[bytes] | None = None
    try:
        print(f"starting the network ({args.population:,} citizens) ...", flush=True)
        with open(work / "up.log", "wb") as log:
            up = subprocess.Popen(
                [
                    sys.executable, "-m", "ngsp", "up",
                    "--data-dir", str(data),
                    "--hub-port", str(ports["hub"]),
                    "--gateway-port", str(ports["gateway"]),
                    "--nodes-port", str(ports["nodes"]),
                    "--node-port-base", "0",
                    "--population", str(args.population),
                ],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_ready(f"{urls['ngsp-hub']}/readyz", up)
        wait_ready(f"{urls['ngsp-nodes']}/healthz", up)
        wait_ready(f"{urls['ngsp-gateway']}/readyz", up)
        credentials = json.loads((data / "credentials.json").read_text())
        nodes_token = credentials["nodes_control"]["admin_token"]
        demo_key = credentials["gateway"]["demo_key"]

        prom_port = free_port()
        config = prometheus_config(
            {job: url.removeprefix("http://") for job, url in urls.items()},
            f"127.0.0.1:{prom_port}",
        )
        (work / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        with open(work / "prometheus.log", "wb") as log:
            prom = subprocess.Popen(
                [
                    prometheus_bin,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=warn",
                ],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_ready(f"http://127.0.0.1:{prom_port}/-/ready", prom)
        prometheus = Prometheus(f"http://127.0.0.1:{prom_port}")

        print(f"load: {args.rate:g}/s for {args.duration} ...", flush=True)
        started = time.monotonic()
        with open(work / "load.log", "wb") as log:
            load = subprocess.Popen(
                [
                    sys.executable, "-m", "loadtest",
                    "--data-dir", str(data),
                    "--rate", str(args.rate),
                    "--duration", args.duration,
                    "--seed", "20201231",
                    "--no-progress",
                    "--json", str(work / "load.json"),
                ],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        time.sleep(10)
        print("dossiers in every province ...", flush=True)
        dossier_statuses = dossiers(urls["ngsp-gateway"], demo_key, urls["ngsp-nodes"])
        print("DATDAI stopped for 20 s, then DANCU answering 5% errors ...", flush=True)
        fault(urls["ngsp-nodes"], nodes_token, "DATDAI", {"outage": True})
        time.sleep(20)
        fault(urls["ngsp-nodes"], nodes_token, "DATDAI", None)
        fault(urls["ngsp-nodes"], nodes_token, "DANCU", {"error_rate": 0.05})
        load.wait(timeout=24 * 3600)
        elapsed = time.monotonic() - started
        fault(urls["ngsp-nodes"], nodes_token, "DANCU", None)
        time.sleep(12)  # two scrapes after the last exchange
        result = count_series(prometheus, urls)
        if args.sweep:
            import asyncio

            print("sweep: every body calls every service once ...", flush=True)
            sweep_statuses = asyncio.run(sweep(data / "credentials.json", urls["ngsp-nodes"]))
            time.sleep(12)
            result["after_sweep"] = count_series(prometheus, urls)
            result["after_sweep"]["sweep_statuses"] = sweep_statuses

        load_report = json.loads((work / "load.json").read_text())
        return {
            "date": dt.date.today().isoformat(),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "rate": args.rate,
            "duration": args.duration,
            "load_seconds": round(elapsed, 1),
            "population": args.population,
            "load_exit": load.returncode,
            "load_summary": {k: load_report.get(k) for k in ("achieved", "counts", "outcomes")},
            "dossier_statuses": dossier_statuses,
            **result,
        }
    finally:
        for proc in (load, prom, up):
            stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0, help="load tool rate (req/s)")
    parser.add_argument("--duration", default="90s", help="load tool duration (30s, 2m ...)")
    parser.add_argument("--population", type=int, default=100_000)
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="then have every body call every service once, granted or not (worst case)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="ngsp-series-") as tmp:
            result = run(args, Path(tmp))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    for label, figures in (("under load", result), ("after the sweep", result.get("after_sweep"))):
        if figures:
            print(
                f"{label}: {figures['ngsp_series']:,} ngsp_* series "
                f"({figures['head_series']:,} in Prometheus's head block); goal: under 50,000."
            )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
