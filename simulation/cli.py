"""``ngsp simulate``: run a scenario in virtual time and set it beside the published figures."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from simulation.report import (
    build_report,
    compare,
    render_comparison,
    render_report,
)
from simulation.run import default_database_url, run_scenario
from simulation.scenario import (
    ALIASES,
    ScenarioError,
    load_scenario,
    packaged_scenarios,
    parse_override,
)

__all__ = ["simulate", "simulate_report"]


async def simulate_report(
    scenario: str,
    *,
    seed: int | None = None,
    set_: list[str] | None = None,
    sample: float | None = None,
    data_dir: Path = Path("ngsp-data"),
    database_url: str | None = None,
    writer: Literal["bulk", "hub"] = "bulk",
    suffix: str = "",
) -> dict[str, Any]:
    """Run a scenario (a packaged name or a YAML path) and return its report."""
    overrides: dict[str, Any] = dict(parse_override(item) for item in set_ or [])
    if seed is not None:
        overrides["seed"] = seed
    loaded = load_scenario(scenario, overrides)
    url = database_url or default_database_url(data_dir, loaded).replace(
        f"sim-{loaded.name}.db", f"sim-{loaded.name}{suffix}.db"
    )
    result = await run_scenario(loaded, database_url=url, sample=sample, writer=writer)
    report = await build_report(result)
    report["set"] = [f"{k}={v}" for k, v in overrides.items()]
    return report


def simulate(
    scenario: Annotated[
        str, typer.Argument(help="A packaged scenario (vn-2020, vn-2022, vn-2024) or a YAML file.")
    ],
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the scenario's).")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="KEY=VALUE what-if, repeatable: connect_all=true, level4_share=1, growth=0.3, "
            "or any key path of the scenario (procedures.1.001022.level4_share=0.5).",
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON to this file.")
    ] = None,
    plot_path: Annotated[
        Path | None,
        typer.Option("--plot", help="Draw daily exchanges, connected bodies and savings (PNG)."),
    ] = None,
    sample: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Share of exchanges stored as ledger rows (default: the scenario's).",
        ),
    ] = None,
    compare_with: Annotated[
        str | None,
        typer.Option(
            "--compare",
            help="A baseline: a JSON report from --json, or a scenario run now with the same seed "
            "and no --set (the scenario's own name compares a what-if with its base).",
        ),
    ] = None,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the run's database goes (sim-<scenario>.db).")
    ] = Path("ngsp-data"),
    database_url: Annotated[
        str | None, typer.Option(help="The run's database instead (it is replaced).")
    ] = None,
    writer: Annotated[
        str, typer.Option(help="bulk (SQLite, fast) or hub (the hub's LedgerWriter, any database).")
    ] = "bulk",
) -> None:
    """Run a scenario in virtual time and set the result beside the published figures."""
    if writer not in ("bulk", "hub"):
        typer.echo(f"ngsp simulate: --writer must be bulk or hub, not {writer!r}", err=True)
        raise typer.Exit(2)
    try:
        report = asyncio.run(
            simulate_report(
                scenario,
                seed=seed,
                set_=set_,
                sample=sample,
                data_dir=data_dir,
                database_url=database_url,
                writer=writer,  # type: ignore[arg-type]
            )
        )
        baseline = None
        if compare_with is not None:
            if compare_with.endswith(".json"):
                baseline = json.loads(Path(compare_with).read_text("utf-8"))
            else:
                baseline = asyncio.run(
                    simulate_report(
                        compare_with,
                        seed=seed,
                        sample=sample,
                        data_dir=data_dir,
                        writer=writer,  # type: ignore[arg-type]
                        suffix="-baseline",
                    )
                )
    except ScenarioError as exc:
        typer.echo(f"ngsp simulate: {exc}", err=True)
        raise typer.Exit(2) from None
    except (OSError, json.JSONDecodeError) as exc:
        typer.echo(f"ngsp simulate: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(render_report(report))
    if baseline is not None and compare_with is not None:
        comparison = compare(report, baseline)
        report["compared_with"] = comparison
        label_b = compare_with if compare_with.endswith(".json") else f"{compare_with} (base)"
        typer.echo(render_comparison(comparison, "this run", label_b))
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False), "utf-8")
        typer.echo(f"report: {json_path}")
    if plot_path is not None:
        from simulation.plot import plot_report

        plot_report(report, plot_path)
        typer.echo(f"plot: {plot_path}")


def _help_epilog() -> str:
    return (
        f"Packaged scenarios: {', '.join(packaged_scenarios())}. "
        f"Short --set keys: {', '.join(f'{k} ({v})' for k, v in ALIASES.items())}."
    )
