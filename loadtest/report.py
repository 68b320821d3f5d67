"""The load report: what a run measured, what it means per day, and beside what.

``build_report`` turns a run into a plain, JSON-ready document (``--json`` writes it as
is); ``render`` prints the same for people. The projections are arithmetic on the
measured rate of *successful* exchanges:

- **around the clock**: the rate held for 86,400 seconds;
- **a shaped day**: a day following the daily profile (a weekday unless the run played
  another shape) whose busiest moment runs at the measured rate, so
  ``rate × mean(profile) × 86,400``. Real platforms carry shaped days, so this is the
  figure set beside the published daily volumes.

A run that played a profile measured a mean rate below its peak; its peak-equivalent rate
is the mean rate divided by the shape's mean multiplier over the run.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from loadtest.profile import DAY_SECONDS, DailyProfile, ShapeName
from loadtest.runner import RunResult
from loadtest.targets import TargetSpec

__all__ = [
    "PERCENTILES",
    "Projection",
    "Reference",
    "build_report",
    "load_references",
    "project",
    "render",
]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass(frozen=True)
class Reference:
    label: str
    per_day: int
    source: str


def load_references() -> tuple[Reference, ...]:
    """The published daily volumes (``data/references.yaml``, from FACTS.md)."""
    text = resources.files("loadtest").joinpath("data/references.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    return tuple(
        Reference(str(r["label"]), int(r["per_day"]), str(r.get("source", "")))
        for r in raw["references"]
    )


@dataclass(frozen=True)
class Projection:
    """Exchanges and VND a day at a peak rate of successful exchanges."""

    peak_rate: float
    day_shape: str
    day_mean: float
    #: VND saved per successful exchange, or None when the target saves nothing.
    vnd_per_exchange: float | None

    @property
    def per_day_flat(self) -> float:
        return self.peak_rate * DAY_SECONDS

    @property
    def per_day_shaped(self) -> float:
        return self.peak_rate * self.day_mean * DAY_SECONDS

    def vnd_per_day(self, per_day: float) -> float | None:
        return None if self.vnd_per_exchange is None else per_day * self.vnd_per_exchange


def project(
    ok_rate: float,
    *,
    mean_factor: float,
    profile: DailyProfile,
    shape: ShapeName,
    savings_vnd: int | None = None,
    ok: int = 0,
) -> Projection:
    """The projection for a run that achieved ``ok_rate`` successful exchanges a second.

    ``mean_factor`` is the run's mean rate multiplier (1 for a flat run); the shaped day
    is ``shape``'s, or a weekday for a flat run.
    """
    day: ShapeName = "weekday" if shape == "flat" else shape
    peak = ok_rate / mean_factor if mean_factor > 0 else 0.0
    per_exchange = None if savings_vnd is None or ok <= 0 else savings_vnd / ok
    return Projection(
        peak_rate=peak, day_shape=day, day_mean=profile.mean(day), vnd_per_exchange=per_exchange
    )


def _outcomes(run: RunResult) -> dict[str, int]:
    r = run.result
    out = {str(status): n for status, n in sorted(r.statuses.items())}
    out.update(sorted(r.errors.items()))
    return out


def _is_ok(outcome: str) -> bool:
    return outcome.isdigit() and 200 <= int(outcome) < 400


def _by_kind(run: RunResult) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for label, outcomes in sorted(run.result.by_label.items()):
        ok = sum(n for o, n in outcomes.items() if _is_ok(o))
        errors = {o: n for o, n in sorted(outcomes.items()) if not _is_ok(o)}
        entry: dict[str, Any] = {"ok": ok, "errors": errors}
        histogram = run.result.label_histograms.get(label)
        if histogram is not None:
            entry["p50_ms"] = round(histogram.get_value_at_percentile(50) / 1000.0, 3)
            entry["p99_ms"] = round(histogram.get_value_at_percentile(99) / 1000.0, 3)
        table[label or "-"] = entry
    return table


def ok_by_label(run: RunResult) -> dict[str, int]:
    return {label: info["ok"] for label, info in _by_kind(run).items()}


def build_report(
    run: RunResult,
    spec: TargetSpec,
    profile: DailyProfile,
    *,
    references: tuple[Reference, ...] | None = None,
    started_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The run as a JSON-ready document."""
    r = run.result
    refs = references if references is not None else load_references()
    elapsed = r.elapsed or 1e-9
    ok_rate = r.ok / elapsed
    savings = spec.savings(ok_by_label(run))
    projection = project(
        ok_rate,
        mean_factor=run.mean_factor,
        profile=profile,
        shape=run.step.shape.name,
        savings_vnd=savings.vnd if savings else None,
        ok=r.ok,
    )
    error_rate = r.error_count / r.completed if r.completed else 0.0
    late_share = r.late_starts / r.scheduled if r.scheduled else 0.0
    reasons = []
    if run.generator_limited:
        reasons.append(f"a generator process used {max(run.worker_cpu):.0%} of a core")
        if r.generator_limited:
            reasons.append(f"{late_share:.1%} of requests started over 10 ms late")
    shaped = projection.per_day_shaped
    return {
        "started_at": (started_at or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        "target": spec.describe(),
        "run": {
            "rate": run.step.rate,
            "duration_s": run.step.duration,
            "max_requests": run.step.max_requests,
            "profile": run.step.shape.name,
            "day_seconds": run.step.shape.day_seconds,
            "start_hour": run.step.shape.start_hour,
            "mean_factor": round(run.mean_factor, 4),
            "connections_per_worker": run.step.connections,
            "request_timeout_s": run.step.timeout,
            "interrupted": run.interrupted,
            "seed": run.seed,
        },
        "achieved": {
            "elapsed_s": round(r.elapsed, 3),
            "rate": round(r.achieved_rate, 1),
            "ok_rate": round(ok_rate, 1),
            "peak_equivalent_ok_rate": round(projection.peak_rate, 1),
        },
        "counts": {
            "scheduled": r.scheduled,
            "sent": r.sent,
            "completed": r.completed,
            "ok": r.ok,
            "errors": r.error_count,
            "error_rate": round(error_rate, 6),
        },
        "latency_ms": {f"p{p:g}": round(r.percentile_ms(p), 3) for p in PERCENTILES}
        | {"max": round(r.histogram.get_max_value() / 1000.0, 3)},
        "latency_measured_from": "each request's scheduled time (open loop)",
        "outcomes": _outcomes(run),
        "by_kind": _by_kind(run),
        "generator": {
            "workers": run.workers,
            "cpu_per_worker": [round(c, 3) for c in run.worker_cpu],
            "late_starts": r.late_starts,
            "late_share": round(late_share, 5),
            "limited": run.generator_limited,
            "short_of_cpu": r.generator_limited and not run.generator_limited,
            "why": "; ".join(reasons),
        },
        "projection": {
            "per_day_around_the_clock": round(projection.per_day_flat),
            "per_day_shaped": round(shaped),
            "shaped_day": projection.day_shape,
            "shaped_day_mean_factor": round(projection.day_mean, 4),
            "vnd_per_day_around_the_clock": _round(projection.vnd_per_day(projection.per_day_flat)),
            "vnd_per_day_shaped": _round(projection.vnd_per_day(shaped)),
        },
        "savings": None
        if savings is None
        else {
            "basis": savings.basis,
            "vnd_in_run": savings.vnd,
            "dossiers_in_run": dict(savings.dossiers),
        },
        "references": [
            {
                "label": ref.label,
                "per_day": ref.per_day,
                "source": ref.source,
                "ratio_shaped": round(shaped / ref.per_day, 3),
                "ratio_around_the_clock": round(projection.per_day_flat / ref.per_day, 3),
            }
            for ref in refs
        ],
    }


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _vnd(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f} VND"


def render(report: Mapping[str, Any], console: Console | None = None) -> None:
    """Print the report for people."""
    console = console or Console()
    run, ach, counts = report["run"], report["achieved"], report["counts"]
    target = report["target"]
    shape = run["profile"]
    title = f"{target['kind']} {target.get('url', '')}".strip()
    console.print(f"\n[bold]ngsp load[/bold]: {title}")
    shape_text = (
        "flat"
        if shape == "flat"
        else f"{shape} profile, a day in {run['day_seconds']:g} s, "
        f"{run['mean_factor']:.2f} of the rate on average"
    )
    console.print(
        f"  asked {run['rate']:,.0f}/s for {run['duration_s']:g} s ({shape_text}); "
        f"cap {run['max_requests']:,} requests, seed {run['seed']}"
        + ("  [yellow]interrupted[/yellow]" if run["interrupted"] else "")
    )
    console.print(
        f"  achieved {ach['rate']:,.1f}/s over {ach['elapsed_s']:.1f} s; "
        f"{counts['ok']:,} ok, {counts['errors']:,} errors ({counts['error_rate']:.3%})"
    )
    lat = report["latency_ms"]
    console.print(
        "  latency from schedule: " + ", ".join(f"{k} {v:,.2f} ms" for k, v in lat.items())
    )
    gen = report["generator"]
    cpu = ", ".join(f"{c:.0%}" for c in gen["cpu_per_worker"])
    line = (
        f"  generator: {gen['workers']} process(es), CPU {cpu}, late starts {gen['late_share']:.2%}"
    )
    console.print(line)
    if gen["limited"]:
        console.print(
            f"  [bold yellow]the generator was the limit[/bold yellow] ({gen['why']}): "
            "add --workers or lower --rate; the latencies include the generator's own delay"
        )
    elif gen["short_of_cpu"]:
        console.print(
            f"  [yellow]the machine was short of CPU[/yellow]: {gen['late_share']:.1%} of "
            "requests left over 10 ms late (not the generator's own work); their latency, "
            "counted from schedule, includes the delay"
        )
    errors = {k: v for k, v in report["outcomes"].items() if not _is_ok(k)}
    if errors:
        console.print(
            "  errors by outcome: " + ", ".join(f"{k} × {v:,}" for k, v in errors.items())
        )

    kinds = Table(title="by kind of exchange", title_justify="left", show_edge=False)
    kinds.add_column("kind")
    kinds.add_column("ok", justify="right")
    kinds.add_column("p50 ms", justify="right")
    kinds.add_column("p99 ms", justify="right")
    kinds.add_column("errors")
    for kind, info in report["by_kind"].items():
        errs = ", ".join(f"{k} × {v}" for k, v in info["errors"].items()) or "-"
        p50, p99 = info.get("p50_ms"), info.get("p99_ms")
        kinds.add_row(
            kind,
            _n(info["ok"]),
            "-" if p50 is None else f"{p50:,.2f}",
            "-" if p99 is None else f"{p99:,.2f}",
            errs,
        )
    console.print(kinds)

    proj = report["projection"]
    table = Table(title="per day", title_justify="left", show_edge=False)
    table.add_column("")
    table.add_column("exchanges a day", justify="right")
    table.add_column("VND saved a day", justify="right")
    table.add_row(
        f"a {proj['shaped_day']} shaped like the profile, busiest hour at "
        f"{ach['peak_equivalent_ok_rate']:,.0f}/s",
        _n(proj["per_day_shaped"]),
        _vnd(proj["vnd_per_day_shaped"]),
    )
    table.add_row(
        f"{ach['peak_equivalent_ok_rate']:,.0f}/s around the clock",
        _n(proj["per_day_around_the_clock"]),
        _vnd(proj["vnd_per_day_around_the_clock"]),
    )
    console.print(table)
    refs = Table(title="beside the published volumes", title_justify="left", show_edge=False)
    refs.add_column("")
    refs.add_column("per day", justify="right")
    refs.add_column("shaped day here ×", justify="right")
    for ref in report["references"]:
        refs.add_row(ref["label"], _n(ref["per_day"]), f"{ref['ratio_shaped']:,.1f}")
    console.print(refs)
    if report.get("savings"):
        console.print(f"  savings: {report['savings']['basis']}.", style="dim")
