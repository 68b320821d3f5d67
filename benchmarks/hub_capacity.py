"""The hub's own capacity at the SLO, its behaviour under a flood, and a soak.

    python benchmarks/hub_capacity.py [--database sqlite|postgresql] [--workers N]
                                      [--soak-minutes 10] [--provider-tls] [--skip-flood]
                                      [--json FILE]

The provider is nginx serving a small static JSON document, so what is measured is the
hub (token check, grant check, forwarding, the durable ledger) and the load generator,
not the simulated nodes' Python (``benchmarks/capacity.py`` measures the whole network).
Everything runs on this machine's cores, generator included, on 127.0.0.1.

1. **Capacity**: the open-loop generator (``loadtest``) steps the rate up until p99,
   measured from each request's scheduled time, passes ``--slo-p99`` or errors pass 0.1%;
   the same search through a plain nginx reverse proxy in front of the same provider.
2. **Hub-added latency** at 50% of the hub's capacity: through the hub against straight
   to the provider, same rate, same generator; the difference of the medians and p99s.
3. **Soak** (with ``--soak-minutes``): 80% of capacity for that long, over a fixed pool
   of client connections; errors, and the hub's resident memory and open file
   descriptors sampled every 10 s.
4. **Flood**: ``--flood-times`` (default 3) times the capacity for ``--flood-seconds``,
   offered by ``wrk`` (C) over ``--flood-connections`` connections, each thread holding
   its share of the rate by handing out time slots (``FLOOD_LUA``), so the offered rate
   stays put however fast or slowly the hub answers: how much the hub
   sheds (503 ``hub_overloaded`` with ``Retry-After``), and, from a light open-loop probe
   beside it (5% of capacity, latency from each request's scheduled time), the p99 of
   the requests the hub admits. Then **recovery**: 50% of capacity at once after the
   flood, its p99 and errors. ``--skip-flood`` leaves the flood and recovery out.

With ``--provider-tls`` a second hub reaches the same provider over mutual TLS (served by
the same nginx on a second port, as in ``hub_vs_nginx.py --provider-tls``: the provider's
certificate names ``dancu.node.ngsp`` and it accepts only a client certificate of the
run's CA; the hub has ``NGSP_HUB_PROVIDER_*_FILE`` set). Its capacity is searched right
after the plain hub's, and the run reports capacity with TLS / without (the project's
goal: at least 0.80); the hub-added latency is measured for it too, at the same rate
(against the plain provider direct). Soak and flood stay on the plain hub. For a
capacity-only comparison: ``--provider-tls --skip-flood``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hub_vs_nginx import (
    ProviderTls,
    drop_database,
    free_port,
    hub_token,
    machine,
    nginx_conf,
    start_hub,
    stop_cleanly_on_sigterm,
    wait_ready,
)

from loadtest.capacity import CapacityResult, find_capacity
from loadtest.openloop import Request
from loadtest.profile import Shape
from loadtest.runner import GeneratorPool, RunResult, Step
from loadtest.targets import FixedTargetSpec

PATH = "/citizens/001203004567"
#: The capacity the hub keeps with mutual TLS to its provider, as a share of the plain one.
TLS_GOAL = 0.80


def process_tree(pid: int) -> list[int]:
    """The hub's processes: the command and its workers."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) in pids:
                pids.append(int(entry.name))
    return pids


def rss_and_fds(pid: int) -> tuple[float, int]:
    rss, fds = 0.0, 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) / 1024
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            continue
    return rss, fds


def summary(run: RunResult) -> dict[str, Any]:
    result = run.result
    statuses = {str(k): v for k, v in sorted(result.statuses.items())}
    return {
        "rate_asked": run.step.rate,
        "rate_ok": round(result.ok / result.elapsed, 1) if result.elapsed else 0.0,
        "completed": result.completed,
        "ok": result.ok,
        "statuses": statuses,
        "transport_errors": dict(result.errors),
        "p50_ms": round(result.percentile_ms(50), 2),
        "p99_ms": round(result.percentile_ms(99), 2),
        "generator_limited": run.generator_limited,
    }


def errors_of(run: RunResult) -> dict[str, int]:
    """What the errors of a step were: statuses other than 2xx/3xx, and transport errors."""
    result = run.result
    found = {str(k): v for k, v in sorted(result.statuses.items()) if not 200 <= k < 400}
    return found | dict(result.errors)


def admitted_p99(run: RunResult) -> float | None:
    """p99 of the requests the hub admitted (answered 2xx), shed ones left out."""
    ok = run.result.ok_histogram
    return None if not ok.get_total_count() else float(ok.get_value_at_percentile(99)) / 1000


class Watch:
    """Samples the hub's shedding state from ``/metrics`` every quarter of a second (in a
    thread): its admission limit, its loop lag and its refusals so far."""

    WANTED: ClassVar[dict[str, str]] = {
        "ngsp_admission_limit": "limit",
        "ngsp_event_loop_lag_seconds": "lag_ms",
        'ngsp_shed_total{reason="hub_overloaded"}': "shed",
    }
    #: Running totals, summed over their labels: the time to commit ledger groups, their
    #: rows, and the hub's own part of the exchanges, to tell where admitted time goes.
    TOTALS: ClassVar[dict[str, str]] = {
        "ngsp_ledger_commit_duration_seconds_sum": "commit_s",
        "ngsp_ledger_commit_duration_seconds_count": "commits",
        "ngsp_ledger_group_size_sum": "group_rows",
        "ngsp_hub_added_duration_seconds_sum": "hub_s",
        "ngsp_hub_added_duration_seconds_count": "hub_n",
        "ngsp_exchange_duration_seconds_count": "ex_n",
    }
    #: The hub's own count of exchanges answered within 50 ms (provider included).
    WITHIN_SLO = "ngsp_exchange_duration_seconds_bucket{"

    def __init__(self, hub_url: str, every: float = 0.25) -> None:
        self.url, self.every = f"{hub_url}/metrics", every
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = 0.0

    def over_slo_share(self) -> float | None:
        """The share of exchanges the hub itself timed over 50 ms (arrival to answer,
        provider included) from the first sample to the "flood over" mark: what of the
        probe's tail the hub saw, against waits outside it (for a core, in the client)."""
        end = next((i for i, r in enumerate(self.samples) if r.get("mark") == "flood over"), None)
        during = [r for r in self.samples[:end] if "ex_n" in r]
        if end is None or len(during) < 2:
            return None
        first, last = during[0], during[-1]
        answered = last["ex_n"] - first["ex_n"]
        within = last.get("ex_within", 0.0) - first.get("ex_within", 0.0)
        return None if answered <= 0 else 1.0 - within / answered

    def __enter__(self) -> Watch:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def per_second(self) -> list[str]:
        """Each second: the limit, the loop lag, and over that second the mean ledger
        commit (ms) and rows a group, and the mean hub part (ms); marks where they fell."""
        out = []
        previous: dict[str, Any] | None = None
        due: float | None = None
        for row in self.samples:
            if "mark" in row:
                out.append(str(row["mark"]))
                continue
            if "limit" not in row or (due is not None and row["t"] < due):
                continue
            due = row["t"] + 1.0 if due is None else max(due + 1.0, row["t"])
            text = f"{row['limit']}/{row['lag_ms']}"
            if previous is not None and "commits" in row and "commits" in previous:
                commits = row["commits"] - previous["commits"]
                hub_n = row.get("hub_n", 0) - previous.get("hub_n", 0)
                if commits:
                    ms = 1000 * (row["commit_s"] - previous["commit_s"]) / commits
                    size = (row["group_rows"] - previous["group_rows"]) / commits
                    text += f" c{ms:.1f}x{size:.0f}"
                if hub_n:
                    text += f" h{1000 * (row['hub_s'] - previous['hub_s']) / hub_n:.1f}"
            previous = row
            out.append(text)
        return out

    def mark(self, what: str) -> None:
        self.samples.append({"t": round(time.monotonic() - self._started, 2), "mark": what})

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.wait(self.every):
                row: dict[str, Any] = {"t": round(time.monotonic() - self._started, 2)}
                try:
                    text = client.get(self.url).text
                except httpx.HTTPError:
                    continue
                for line in text.splitlines():
                    name, _, value = line.rpartition(" ")
                    if name.startswith(self.WITHIN_SLO) and (
                        '{le="0.05"' in name or ',le="0.05"' in name
                    ):
                        row["ex_within"] = row.get("ex_within", 0.0) + float(value)
                        continue
                    total = self.TOTALS.get(name.partition("{")[0])
                    if total is not None:
                        row[total] = row.get(total, 0.0) + float(value)
                        continue
                    key = self.WANTED.get(name)
                    if key == "lag_ms":
                        row[key] = round(float(value) * 1000, 1)
                    elif key is not None:
                        row[key] = int(float(value))
                self.samples.append(row)


FLOOD_LUA = """
-- Holds each wrk thread to its share of the rate, whatever the answers take: every
-- request takes the thread's next free slot (slots FLOOD_INTERVAL_MS apart), and its
-- connection waits for it. A connection whose answer came late takes the next slot, not
-- a missed one; with enough connections the offered rate stays put.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } flood_timespec;
int clock_gettime(int clock_id, flood_timespec *tp);
]]
local ts = ffi.new("flood_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval = tonumber(os.getenv("FLOOD_INTERVAL_MS"))
local next_slot = 0
function delay()
  local t = now_ms()
  if next_slot < t then next_slot = t end
  local wait = next_slot - t
  next_slot = next_slot + interval
  return wait
end
"""


def wrk_flood_summary(out: str) -> dict[str, Any]:
    """What wrk offered and got, from its summary."""
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    if m is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    requests = int(m.group(1))
    seconds = float(m.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(3)]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    refused = int(non2xx.group(1)) if non2xx else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    transport = sum(int(g) for g in errors.groups()) if errors else 0
    return {
        "seconds": round(seconds, 1),
        "requests": requests,
        "offered_per_second": round(requests / seconds, 1),
        "ok": requests - refused,
        "not_2xx": refused,
        "transport_errors": transport,
        "served_per_second": round((requests - refused) / seconds, 1),
    }


def capacity_row(result: CapacityResult) -> dict[str, Any]:
    best = result.best
    return {
        "sustainable_rate": round(result.sustainable_rate, 1),
        "per_day": int(result.sustainable_rate * 86_400),
        "limited_by": result.limited_by,
        "best_step": summary(best) if best else None,
        "steps": [
            {**summary(run), "passed": verdict.passed, "limit": verdict.limit}
            for run, verdict in result.steps
        ],
    }


def main() -> None:
    stop_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="hub worker processes")
    parser.add_argument("--slo-p99", type=float, default=50.0, help="milliseconds")
    parser.add_argument("--step-seconds", type=float, default=8.0)
    parser.add_argument("--flood-seconds", type=float, default=15.0)
    parser.add_argument("--flood-times", type=float, default=3.0, help="x the capacity")
    parser.add_argument("--flood-connections", type=int, default=1000)
    parser.add_argument("--soak-minutes", type=float, default=0.0)
    parser.add_argument(
        "--soak-connections", type=int, default=64, help="client connections per generator"
    )
    parser.add_argument(
        "--capacity", type=float, help="skip the searches and take this as the hub's capacity"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=15.0, help="hub-added latency step, seconds"
    )
    parser.add_argument(
        "--provider-tls",
        action="store_true",
        help="also a hub with mutual TLS to the provider: its capacity and the ratio",
    )
    parser.add_argument("--skip-flood", action="store_true", help="no flood, no recovery")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is required: apt-get install nginx-light wrk")
    work = Path(tempfile.mkdtemp(prefix="ngsp-hubcap-"))
    (work / "body").mkdir()
    (work / "proxy").mkdir()
    provider_port, proxy_port, hub_port = free_port(), free_port(), free_port()
    provider_url = f"http://127.0.0.1:{provider_port}"
    tls = ProviderTls.make(work) if args.provider_tls else None
    procs: list[subprocess.Popen[bytes]] = []
    pg_dbs: list[str | None] = []
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "database": args.database,
        "hub_workers": args.workers,
        "slo_p99_ms": args.slo_p99,
    }
    try:
        procs.append(
            subprocess.Popen(
                [
                    "nginx",
                    "-c",
                    str(nginx_conf(work, provider_port, proxy_port, tls)),
                    "-p",
                    str(work),
                ],
                start_new_session=True,
            )
        )
        wait_ready(f"{provider_url}{PATH}")
        hub, pg_db = start_hub(
            work,
            provider_url,
            hub_port,
            workers=args.workers,
            database=args.database,
            db_prefix="ngsp_hubcap",
        )
        procs.append(hub)
        pg_dbs.append(pg_db)
        hub_urls = {"hub": f"http://127.0.0.1:{hub_port}"}
        if tls is not None:
            tls.check_provider(PATH)
            (work / "hub-tls").mkdir()
            hub_tls_port = free_port()
            hub_tls, pg_db = start_hub(
                work / "hub-tls",
                tls.provider_url,
                hub_tls_port,
                workers=args.workers,
                database=args.database,
                db_prefix="ngsp_hubcap_tls",
                env_extra=tls.hub_env(),
            )
            procs.append(hub_tls)
            pg_dbs.append(pg_db)
            hub_urls["hub-tls"] = f"http://127.0.0.1:{hub_tls_port}"
        hub_url = hub_urls["hub"]
        wait_ready(f"{hub_url}/readyz")
        token = hub_token(hub_url)
        targets = {
            "hub": FixedTargetSpec(
                Request(
                    "GET",
                    f"{hub_url}/exchange/DANCU/citizens/001203004567",
                    {"Authorization": f"Bearer {token}"},
                )
            ),
            "nginx": FixedTargetSpec(Request("GET", f"http://127.0.0.1:{proxy_port}{PATH}")),
            "direct": FixedTargetSpec(Request("GET", f"{provider_url}{PATH}")),
        }
        if tls is not None:
            wait_ready(f"{hub_urls['hub-tls']}/readyz")
            tls_headers = {"Authorization": f"Bearer {hub_token(hub_urls['hub-tls'])}"}
            tls_url = f"{hub_urls['hub-tls']}/exchange/DANCU/citizens/001203004567"
            answer = httpx.get(tls_url, headers=tls_headers, timeout=10)
            if answer.status_code != 200:
                raise RuntimeError(f"hub-tls answered {answer.status_code}: {answer.text}")
            targets["hub-tls"] = FixedTargetSpec(Request("GET", tls_url, tls_headers))

        def pool(name: str, workers: int = 2) -> GeneratorPool:
            return GeneratorPool(targets[name], workers=workers, seed=1)

        def step(rate: float, seconds: float, connections: int = 512) -> Step:
            return Step(
                rate=rate,
                duration=seconds,
                max_requests=int(rate * seconds * 1.2) + 100,
                shape=Shape(),
                connections=connections,
                timeout=10.0,
            )

        capacity: dict[str, CapacityResult] = {}
        #: Exchanges each hub acknowledged with a 200, to hold against its ledger.
        acknowledged = dict.fromkeys(hub_urls, 0)
        if "hub-tls" in acknowledged:
            acknowledged["hub-tls"] += 1  # the check above
        searched = ("hub", "hub-tls", "nginx") if tls is not None else ("hub", "nginx")
        for name in () if args.capacity else searched:
            with pool(name) as p:
                print(f"capacity: {name} ...", flush=True)
                capacity[name] = find_capacity(
                    p,
                    slo_p99_ms=args.slo_p99,
                    start_rate=200,
                    max_rate=40_000,
                    step_seconds=args.step_seconds,
                    connections=512,
                    on_step=lambda run, verdict: print(
                        f"    {run.step.rate:,.0f}/s: p50 {run.result.percentile_ms(50):.1f} ms, "
                        f"p99 {run.result.percentile_ms(99):.1f} ms, "
                        f"errors {run.result.error_count} {errors_of(run)} ({verdict.limit})",
                        flush=True,
                    ),
                )
            results[f"capacity_{name.replace('-', '_')}"] = capacity_row(capacity[name])
            if name in acknowledged:
                acknowledged[name] += sum(run.result.ok for run, _ in capacity[name].steps)
            print(
                f"  {name}: {capacity[name].sustainable_rate:,.0f}/s "
                f"(limited by {capacity[name].limited_by})",
                flush=True,
            )
        if "hub-tls" in capacity and capacity["hub"].sustainable_rate > 0:
            ratio = capacity["hub-tls"].sustainable_rate / capacity["hub"].sustainable_rate
            results["capacity_ratio_tls_to_plain"] = round(ratio, 3)
            print(
                f"capacity with TLS to the provider / without: {ratio:.3f} "
                f"(goal at least {TLS_GOAL:.2f}: {'met' if ratio >= TLS_GOAL else 'NOT MET'})",
                flush=True,
            )
        cap = args.capacity or capacity["hub"].sustainable_rate
        if cap <= 0:
            raise SystemExit("the hub sustained no rate at the SLO")
        half = cap / 2
        latency, at_half = {}, {}
        for name in ("direct", *hub_urls):
            with pool(name) as p:
                run = at_half[name] = p.run(step(half, args.latency_seconds))
                latency[name] = summary(run)
                if name in acknowledged:
                    acknowledged[name] += run.result.ok
        results["at_half_capacity"] = {
            "rate": round(half, 1),
            "direct": latency["direct"],
            "hub": latency["hub"],
            "hub_adds_p50_ms": round(latency["hub"]["p50_ms"] - latency["direct"]["p50_ms"], 2),
            "hub_adds_p99_ms": round(latency["hub"]["p99_ms"] - latency["direct"]["p99_ms"], 2),
        }
        print(
            f"at {half:,.0f}/s the hub adds p50 {results['at_half_capacity']['hub_adds_p50_ms']} "
            f"ms, p99 {results['at_half_capacity']['hub_adds_p99_ms']} ms",
            flush=True,
        )
        if "hub-tls" in latency:
            # The same rate as the plain hub's, against the plain provider direct: what a
            # consumer sees added, the TLS hop included.
            got = results["at_half_capacity"]
            got["hub_tls"] = latency["hub-tls"]
            for pct in ("p50", "p99"):
                got[f"hub_tls_adds_{pct}_ms"] = round(
                    latency["hub-tls"][f"{pct}_ms"] - latency["direct"][f"{pct}_ms"], 2
                )
            print(
                f"at {half:,.0f}/s hub-tls adds p50 {got['hub_tls_adds_p50_ms']} ms, "
                f"p99 {got['hub_tls_adds_p99_ms']} ms (errors "
                f"{at_half['hub-tls'].result.error_count})",
                flush=True,
            )
        # The soak comes before the flood, so that what it samples is its own steady state
        # and not the flood's connections closing.
        if args.soak_minutes > 0:
            rate = 0.8 * cap
            seconds = args.soak_minutes * 60
            print(f"soak: {rate:,.0f}/s for {args.soak_minutes:g} min ...", flush=True)
            samples: list[tuple[float, float, int]] = []
            stop = threading.Event()

            def sample() -> None:
                start = time.monotonic()
                while not stop.wait(10.0):
                    rss, fds = rss_and_fds(hub.pid)
                    samples.append((round(time.monotonic() - start), round(rss, 1), fds))

            sampler = threading.Thread(target=sample, daemon=True)
            with pool("hub") as p:
                sampler.start()
                # A fixed pool of client connections, as a deployment's consumers keep:
                # then the hub's descriptors tell its own story, not the generator's.
                soak = p.run(step(rate, seconds, connections=args.soak_connections))
                acknowledged["hub"] += soak.result.ok
                stop.set()
                sampler.join()
            rss = [s[1] for s in samples]
            fds = [s[2] for s in samples]
            later = len(samples) // 3  # after warm-up
            results["soak"] = {
                **summary(soak),
                "minutes": args.soak_minutes,
                "samples": samples,
                "rss_mb_first_third_median": statistics.median(rss[:later] or rss),
                "rss_mb_last_third_median": statistics.median(rss[-later:] or rss),
                "fds_min_max": [min(fds), max(fds)] if fds else None,
                "fds_first_third_median": statistics.median(fds[:later] or fds),
                "fds_last_third_median": statistics.median(fds[-later:] or fds),
            }
            got = results["soak"]
            print(
                f"  soak: errors {soak.result.error_count}, p99 {got['p99_ms']} ms, "
                f"RSS {got['rss_mb_first_third_median']} → {got['rss_mb_last_third_median']} MB, "
                f"fds {got['fds_first_third_median']} → {got['fds_last_third_median']} "
                f"(min, max {got['fds_min_max']})",
                flush=True,
            )
        if not args.skip_flood:
            # The flood comes from wrk (C): a Python generator asked for 3x the capacity would
            # need more CPU than the hub. wrk is a closed loop; its threads hand out time slots
            # (FLOOD_LUA) so that the offered rate stays put. A light open-loop probe beside
            # it measures what the hub does for the requests it admits, from their scheduled
            # times.
            flood_rate = args.flood_times * cap
            threads = 2
            interval_ms = 1000.0 * threads / flood_rate
            script = work / "flood.lua"
            script.write_text(FLOOD_LUA)
            print(
                f"flood: {flood_rate:,.0f}/s ({args.flood_times:g}x) from wrk for "
                f"{args.flood_seconds:g} s, probe at {0.05 * cap:,.0f}/s ...",
                flush=True,
            )
            flooder = subprocess.Popen(
                [
                    "wrk",
                    f"-t{threads}",
                    f"-c{args.flood_connections}",
                    f"-d{int(args.flood_seconds)}s",
                    "--timeout",
                    "10s",
                    "-s",
                    str(script),
                    "-H",
                    f"Authorization: Bearer {token}",
                    f"{hub_url}/exchange/DANCU/citizens/001203004567",
                ],
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, "FLOOD_INTERVAL_MS": f"{interval_ms:.6f}"},
            )
            with Watch(hub_url) as watch:
                time.sleep(1.0)
                with pool("hub", workers=1) as p:
                    probe = p.run(step(0.05 * cap, max(2.0, args.flood_seconds - 3)))
                    out = flooder.communicate(timeout=args.flood_seconds + 60)[0]
                    watch.mark("flood over")
                    recovery = p.run(step(half, 10))
            flood = wrk_flood_summary(out)
            admitted_ms = admitted_p99(probe)
            results["flood"] = {
                "generator": "wrk",
                "connections": args.flood_connections,
                "asked_per_second": round(flood_rate, 1),
                **flood,
                "times_capacity": round(flood["offered_per_second"] / cap, 2),
                "probe": summary(probe),
                "probe_shed_503": probe.result.statuses.get(503, 0),
                "probe_admitted_p99_ms": round(admitted_ms, 2) if admitted_ms is not None else None,
            }
            results["recovery"] = summary(recovery)
            results["shedding_timeline"] = watch.samples
            over = watch.over_slo_share()
            results["flood"]["hub_timed_over_50ms_share"] = over
            print(
                "  each second from the flood's start: the hub's admission limit/loop lag (ms), "
                "c: mean ledger commit (ms) x rows a group, h: mean hub part (ms): "
                + ", ".join(watch.per_second()),
                flush=True,
            )
            acknowledged["hub"] += probe.result.ok + recovery.result.ok + flood["ok"]
            shed, total = flood["not_2xx"], flood["requests"]
            print(
                f"  offered {flood['offered_per_second']:,.0f}/s "
                f"({results['flood']['times_capacity']:.1f}x), {shed} of {total} shed, "
                f"{flood['served_per_second']:,.0f}/s served; "
                f"probe: admitted p99 {results['flood']['probe_admitted_p99_ms']} ms "
                f"(the hub timed {'?' if over is None else f'{100 * over:.2f}%'} of its answers "
                f"over 50 ms); after: p99 "
                f"{results['recovery']['p99_ms']} ms, errors {recovery.result.error_count}",
                flush=True,
            )
        # Every exchange a hub acknowledged with a 200 must be in its ledger (the
        # statistics are written in the same transaction as the rows).
        for name, url in hub_urls.items():
            daily = httpx.get(f"{url}/stats/daily", timeout=30).json()
            rows = sum(day["transactions"] for day in daily["items"])
            acked = acknowledged[name]
            results["ledger" if name == "hub" else "ledger_tls"] = {
                "rows": rows,
                "acknowledged_200": acked,
            }
            print(
                f"ledger{'' if name == 'hub' else f' ({name})'}: {rows:,} rows for {acked:,} "
                f"exchanges acknowledged with 200"
                f" ({'all recorded' if rows >= acked else 'ROWS MISSING'})",
                flush=True,
            )
        print(json.dumps(results, indent=2, default=str))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, 15)
            except (ProcessLookupError, PermissionError):
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
