"""``ngsp load``: open-loop load against a running ``ngsp up``, and a capacity search.

``load`` is a Typer command function; ``ngsp.cli`` registers it as
``app.command("load")(load)`` and ``python -m loadtest`` runs it alone. Heavy imports
(aiohttp, the population model) happen when the command runs, not when the CLI loads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from loadtest.capacity import CapacityResult, Verdict
    from loadtest.profile import DailyProfile
    from loadtest.runner import Progress, RunResult
    from loadtest.targets import TargetSpec

__all__ = ["MAX_DURATION", "MAX_RATE", "MAX_REQUESTS", "load", "parse_seconds"]

#: Bounds no option can pass: every run ends, and ends in a known number of requests.
MAX_RATE = 100_000.0
MAX_DURATION = 24 * 3600.0
MAX_REQUESTS = 200_000_000

#: The profile shapes (``loadtest.profile.SHAPES``, kept here so that refusing a bad
#: option needs no heavy import).
_SHAPES = ("flat", "weekday", "saturday", "sunday", "week")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|min|m|h)?\s*$")


def parse_seconds(text: str) -> float:
    """``"30"``, ``"30s"``, ``"500ms"``, ``"5m"``, ``"1.5h"`` → seconds."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration (examples: 30s, 500ms, 5m, 1h)")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"ngsp load: {message}", err=True)
    return typer.Exit(2)


def load(
    rate: Annotated[
        float,
        typer.Option(min=0.1, max=MAX_RATE, help="Requests a second (the peak, with --profile)."),
    ] = 100.0,
    duration: Annotated[
        str, typer.Option(help="How long to send: 30s, 5m, 1h (≤ 24h; not with --find-capacity).")
    ] = "30s",
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", help="Where `ngsp up` wrote credentials.json."),
    ] = Path("ngsp-data"),
    target: Annotated[
        str, typer.Option(help="hub: node-to-node exchanges; gateway: dossiers.")
    ] = "hub",
    max_requests: Annotated[
        int | None,
        typer.Option(min=1, max=MAX_REQUESTS, help="Request cap (default: 1.2 × rate × duration)."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(min=0, max=64, help="Generator processes (0: one per 2,500/s, ≤ cores)."),
    ] = 0,
    connections: Annotated[
        int, typer.Option(min=1, max=20_000, help="Connections per generator process.")
    ] = 256,
    timeout: Annotated[str, typer.Option(help="Per-request timeout.")] = "10s",
    profile: Annotated[
        str, typer.Option(help="Daily profile: flat, weekday, saturday, sunday or week.")
    ] = "flat",
    day_minutes: Annotated[
        float | None,
        typer.Option(min=0.01, help="Real minutes per simulated day (default: fill the run)."),
    ] = None,
    start_hour: Annotated[
        float, typer.Option(min=0, max=168, help="Simulated hour the run starts at.")
    ] = 0.0,
    model: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Traffic model YAML (default: packaged)."),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the report as JSON here.")
    ] = None,
    find_capacity: Annotated[
        bool,
        typer.Option("--find-capacity", help="Step the rate up until p99 or errors break."),
    ] = False,
    slo_p99: Annotated[str, typer.Option(help="p99 objective for --find-capacity.")] = "50ms",
    max_error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Error budget for --find-capacity.")
    ] = 0.001,
    start_rate: Annotated[
        float, typer.Option(min=1, max=MAX_RATE, help="First --find-capacity rate.")
    ] = 100.0,
    max_rate: Annotated[
        float, typer.Option(min=1, max=MAX_RATE, help="Highest --find-capacity rate.")
    ] = 20_000.0,
    step_duration: Annotated[
        str, typer.Option(help="Length of each --find-capacity step.")
    ] = "10s",
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="A test address besides loopback (repeatable)."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the traffic draws (default: a new one each run).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show live progress.")] = True,
) -> None:
    """Open-loop load against a running `ngsp up`: rate, latency, errors, exchanges a day."""
    try:
        seconds = parse_seconds(duration)
        request_timeout = parse_seconds(timeout)
        slo_ms = parse_seconds(slo_p99) * 1000.0
        step_seconds = parse_seconds(step_duration)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if not 0 < seconds <= MAX_DURATION or not 0 < step_seconds <= MAX_DURATION:
        raise _fail("durations must be above 0 and at most 24h")
    if profile not in _SHAPES:
        raise _fail(f"--profile must be one of {', '.join(_SHAPES)}")
    if target not in ("hub", "gateway"):
        raise _fail("--target must be hub or gateway")
    if find_capacity and start_rate > max_rate:
        raise _fail("--start-rate is above --max-rate")
    if request_timeout <= 0:
        raise _fail("--timeout must be above 0")

    # The heavy imports, once the options are known to be good.
    import asyncio
    import datetime as dt
    import json
    import secrets

    from rich.console import Console

    from loadtest.capacity import find_capacity as search
    from loadtest.openloop import TargetRefused
    from loadtest.profile import Shape, load_profile
    from loadtest.report import build_report, render
    from loadtest.runner import GeneratorError, GeneratorPool, Step, auto_workers
    from loadtest.targets import SetupError, prepare_gateway_target, prepare_hub_target
    from loadtest.traffic import ModelError

    allowed = frozenset(allow_host or ())
    # A fresh seed by default: the same draws twice would register the same births twice.
    seed = seed if seed is not None else secrets.randbelow(2**31)
    cap = max_requests or min(MAX_REQUESTS, int(rate * seconds * 1.2) + 1000)

    console = Console(stderr=False)
    creds = data_dir / "credentials.json"
    try:
        spec: TargetSpec  # hub or gateway
        if target == "gateway":
            spec = asyncio.run(prepare_gateway_target(creds, allowed_hosts=allowed))
        else:
            spec = asyncio.run(prepare_hub_target(creds, model_path=model, allowed_hosts=allowed))
    except (SetupError, TargetRefused, ModelError) as exc:
        raise _fail(str(exc)) from None
    left_out = getattr(spec, "left_out", None)
    if left_out:
        console.print(
            f"{len(left_out)} bodies left out of the consumers "
            f"(e.g. {next(iter(left_out))}: {next(iter(left_out.values()))})",
            style="dim",
        )
    daily = load_profile()
    period = 7 if profile == "week" else 1
    day_seconds = day_minutes * 60.0 if day_minutes else seconds / period
    shape = Shape(profile, day_seconds=day_seconds, start_hour=start_hour)  # type: ignore[arg-type]
    peak = max_rate if find_capacity else rate
    count = workers or auto_workers(min(peak, 5000.0) if find_capacity else peak)
    show = _ProgressLine(console) if progress else None
    started = dt.datetime.now(dt.UTC)
    document: dict[str, Any]
    try:
        with GeneratorPool(spec, workers=count, seed=seed, allowed_hosts=allowed) as pool:
            if find_capacity:
                console.print(
                    f"finding capacity: p99 ≤ {slo_ms:g} ms, errors ≤ {max_error_rate:.2%}, "
                    f"steps of {step_seconds:g} s from {start_rate:g}/s, {count} generator(s)"
                )
                result = search(
                    pool,
                    slo_p99_ms=slo_ms,
                    max_error_rate=max_error_rate,
                    start_rate=start_rate,
                    max_rate=max_rate,
                    step_seconds=step_seconds,
                    connections=connections,
                    timeout=request_timeout,
                    on_step=_step_printer(console, show),
                    on_progress=show,
                )
                document = capacity_document(result, spec, daily, started_at=started)
                render_capacity(document, console)
            else:
                step = Step(
                    rate=rate,
                    duration=seconds,
                    max_requests=cap,
                    shape=shape,
                    connections=connections,
                    timeout=request_timeout,
                )
                run = pool.run(step, on_progress=show)
                if show is not None:
                    show.finish()
                document = build_report(run, spec, daily, started_at=started)
                render(document, console)
    except GeneratorError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail("interrupted") from None
    if json_file is not None:
        json_file.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
        console.print(f"report written to {json_file}", style="dim")


class _ProgressLine:
    """The live progress line: rewritten in place on a terminal, every 5 s otherwise."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.terminal = console.is_terminal
        self.last = 0.0
        self.shown = False

    def __call__(self, p: Progress) -> None:
        import time

        now = time.monotonic()
        if not self.terminal and now - self.last < 5.0:
            return
        self.last = now
        state = "draining" if p.draining else f"{p.rate:8,.0f}/s of {p.target_rate:,.0f}/s"
        line = (
            f"{p.elapsed:7.1f} s  {state}  done {p.completed:,}  errors {p.errors:,}  "
            f"p50 {p.p50_ms:,.1f} ms  p99 {p.p99_ms:,.1f} ms"
        )
        if self.terminal:
            self.console.print(line.ljust(self.console.width - 1), end="\r", highlight=False)
            self.shown = True
        else:
            self.console.print(line, highlight=False)

    def finish(self) -> None:
        """End the line being rewritten, so what follows starts on its own."""
        if self.shown:
            self.console.print()
            self.shown = False


def _step_printer(console: Console, line: _ProgressLine | None) -> Any:
    def show(run: RunResult, verdict: Verdict) -> None:
        if line is not None:
            line.finish()
        r = run.result
        cpu = max(run.worker_cpu, default=0.0)
        mark = "[green]pass[/green]" if verdict.passed else f"[red]fail[/red] ({verdict.reason})"
        console.print(
            f"  {run.step.rate:9,.0f}/s asked  {r.achieved_rate:9,.1f}/s done  "
            f"p50 {r.percentile_ms(50):7.2f} ms  p99 {r.percentile_ms(99):8.2f} ms  "
            f"errors {r.error_count:,}  generator CPU {cpu:.0%}  {mark}"
        )

    return show


def capacity_document(
    result: CapacityResult,
    spec: TargetSpec,
    profile: DailyProfile,
    *,
    started_at: Any = None,
) -> dict[str, Any]:
    """The capacity search as a JSON-ready document, with the best step's full report."""
    from loadtest.report import build_report, project

    best = result.best
    rate = result.sustainable_rate
    projection = project(rate, mean_factor=1.0, profile=profile, shape="flat")
    return {
        "slo": {"p99_ms": result.slo_p99_ms, "max_error_rate": result.max_error_rate},
        "sustainable_rate": round(rate, 1),
        "asked_rate": best.step.rate if best else None,
        "limited_by": result.limited_by,
        "per_day_around_the_clock": round(projection.per_day_flat),
        "per_day_shaped": round(projection.per_day_shaped),
        "shaped_day": projection.day_shape,
        "steps": [
            {
                "rate": run.step.rate,
                "achieved": round(run.result.achieved_rate, 1),
                "p50_ms": round(run.result.percentile_ms(50), 3),
                "p99_ms": round(run.result.percentile_ms(99), 3),
                "errors": run.result.error_count,
                "completed": run.result.completed,
                "generator_cpu": [round(c, 3) for c in run.worker_cpu],
                "passed": verdict.passed,
                "verdict": verdict.reason,
            }
            for run, verdict in result.steps
        ],
        "best": build_report(best, spec, profile, started_at=started_at) if best else None,
    }


_LIMITS = {
    "latency": "p99 passed the objective",
    "errors": "errors passed the budget",
    "throughput": "the target could not keep up with the rate",
    "generator": "the generator itself was the limit: the capacity is at least this",
    "max_rate": "--max-rate was reached: the capacity is at least this",
    "interrupted": "interrupted",
}


def render_capacity(document: dict[str, Any], console: Console) -> None:
    """Print the capacity search's conclusion."""
    from loadtest.report import render

    if document["best"] is not None:
        render(document["best"], console)
    slo = document["slo"]
    console.print(
        f"\n[bold]capacity[/bold] at p99 ≤ {slo['p99_ms']:g} ms and errors ≤ "
        f"{slo['max_error_rate']:.2%}: [bold]{document['sustainable_rate']:,.0f} exchanges/s[/bold]"
        f" = {document['per_day_around_the_clock']:,} a day around the clock, "
        f"{document['per_day_shaped']:,} on a {document['shaped_day']} shaped like the profile"
    )
    console.print(f"  next step up: {_LIMITS.get(document['limited_by'], document['limited_by'])}")
