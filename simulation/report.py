"""A run's report: its figures beside the published ones, as text, JSON and a comparison.

The figures are read back from the run's database — the rollup tables the hub's
``/stats/...`` endpoints serve — so the report says what the hub would say about the
traffic. Connected bodies come from the run's registry snapshots; projections from their
own counts-only runs.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from common.db import Database
from national_hub.models import DailyStats, LedgerEntry, ProcedureDailyStats
from simulation.run import RunResult

__all__ = ["build_report", "compare", "render_comparison", "render_report"]


@dataclass(frozen=True)
class _Figure:
    name: str
    simulated: float
    published: float | None
    unit: str = ""


def _relative(simulated: float, published: float | None) -> float | None:
    if published is None or published == 0:
        return None
    return (simulated - published) / published


async def build_report(result: RunResult) -> dict[str, Any]:
    """The report as plain data (what ``--json`` writes)."""
    scenario = result.scenario
    period = scenario.period
    db = Database.connect(result.database_url)
    try:
        async with db.read_session() as session:
            daily_rows = (
                await session.execute(select(DailyStats).order_by(DailyStats.day))
            ).scalars()
            daily: list[dict[str, Any]] = [
                {
                    "day": r.day.isoformat(),
                    "transactions": r.transactions,
                    "successes": r.successes,
                    "failures": r.failures,
                    "procedures_completed": r.procedures_completed,
                    "dossiers_failed": r.dossiers_failed,
                    "vnd_saved": r.vnd_saved,
                }
                for r in daily_rows
            ]
            per_procedure = (
                await session.execute(
                    select(
                        ProcedureDailyStats.procedure,
                        func.sum(ProcedureDailyStats.completed),
                        func.sum(ProcedureDailyStats.failed),
                        func.sum(ProcedureDailyStats.vnd_saved),
                    ).group_by(ProcedureDailyStats.procedure)
                )
            ).all()
            ledger_rows = int(
                (await session.execute(select(func.count()).select_from(LedgerEntry))).scalar_one()
            )
    finally:
        await db.dispose()

    total = sum(d["transactions"] for d in daily)
    completed = sum(d["procedures_completed"] for d in daily)
    saved = sum(d["vnd_saved"] for d in daily)
    failures = sum(d["failures"] for d in daily)
    connected = result.facts.connected_bodies
    months: dict[str, dict[str, Any]] = {}
    for d in daily:
        month = months.setdefault(
            d["day"][:7],
            {"exchanges": 0, "failures": 0, "procedures_completed": 0, "vnd_saved": 0},
        )
        month["exchanges"] += d["transactions"]
        month["failures"] += d["failures"]
        month["procedures_completed"] += d["procedures_completed"]
        month["vnd_saved"] += d["vnd_saved"]
    monthly = []
    for day in _month_ends(period.start, period.end):
        key = day.isoformat()[:7]
        m = months.get(key) or dict.fromkeys(
            ("exchanges", "failures", "procedures_completed", "vnd_saved"), 0
        )
        first = max(period.start, day.replace(day=1))
        days = (day - first).days + 1
        monthly.append(
            {
                "month": key,
                "days": days,
                "exchanges": m["exchanges"],
                "per_day": m["exchanges"] / days,
                "failures": m["failures"],
                "connected_bodies": connected.get(day, 0),
                "procedures_completed": m["procedures_completed"],
                "vnd_saved": m["vnd_saved"],
            }
        )

    published = scenario.published
    figures = [
        _Figure("total exchanges", total, published.total_exchanges),
        _Figure("exchanges per day (average)", total / period.days, published.average_per_day),
    ]
    for day, count in sorted(published.connected_bodies.items()):
        figures.append(
            _Figure(f"connected bodies on {day.isoformat()}", connected.get(day, 0), count)
        )
    if completed:
        figures.append(
            _Figure(
                "VND saved per procedure", saved / completed, published.saving_per_procedure_vnd
            )
        )
    for p in result.projections:
        figures.append(
            _Figure(
                f"{p.projection.procedure}: VND saved in {p.projection.days} days (projection)",
                p.vnd_saved,
                p.projection.published_vnd,
            )
        )
    comparisons = []
    for f in figures:
        rel = _relative(f.simulated, f.published)
        comparisons.append(
            {
                "figure": f.name,
                "simulated": f.simulated,
                "published": f.published,
                "relative_difference": rel,
                "within_tolerance": None if rel is None else abs(rel) <= published.tolerance,
            }
        )
    facts = result.facts
    sampled = result.sample < 1.0
    notes = [
        f"Counts drawn per day for each of {facts.flows:,} flows (consumer, provider, "
        "service, procedure) by outcome; rollups (stats_daily, stats_node_daily, "
        "stats_procedure_daily) are complete.",
    ]
    if sampled:
        notes.append(
            f"Sampled ledger: {result.sample:g} of exchanges (dossiers whole) stored as "
            f"ledger rows: {ledger_rows:,} of {total:,}; /transactions shows only those, "
            "/stats/... shows everything."
        )
    else:
        notes.append(f"Every exchange is a ledger row ({ledger_rows:,}).")
    notes.append(
        f"Routing through national_hub.routing: {facts.routing_decisions:,} decisions "
        f"(one per flow and connection state); {facts.refused:,} exchanges refused."
    )
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "period": {"start": period.start.isoformat(), "end": period.end.isoformat()},
        "days": period.days,
        "seed": scenario.seed,
        "database_url": result.database_url,
        "writer": result.writer,
        "ledger_sample": result.sample,
        "ledger_rows": ledger_rows,
        "seconds": round(result.seconds, 2),
        "engine_seconds": round(facts.seconds, 2),
        "exchanges_per_second": round(facts.exchanges / facts.seconds) if facts.seconds else 0,
        "totals": {
            "exchanges": total,
            "per_day": total / period.days,
            "failures": failures,
            "refused": facts.refused,
            "dossiers": facts.dossiers,
            "procedures_completed": completed,
            "vnd_saved": saved,
        },
        "tolerance": published.tolerance,
        "comparison": comparisons,
        "monthly": monthly,
        "procedures": [
            {"procedure": code, "completed": int(c), "failed": int(f), "vnd_saved": int(v)}
            for code, c, f, v in sorted(per_procedure)
        ],
        "projections": [
            {
                "key": p.key,
                "description": p.projection.description,
                "procedure": p.projection.procedure,
                "start": p.start.isoformat(),
                "end": p.end.isoformat(),
                "completed": p.completed,
                "vnd_saved": p.vnd_saved,
                "published_vnd": p.projection.published_vnd,
            }
            for p in result.projections
        ],
        "daily": [
            {
                "day": d["day"],
                "exchanges": d["transactions"],
                "connected_bodies": connected.get(dt.date.fromisoformat(d["day"]), 0),
                "vnd_saved": d["vnd_saved"],
            }
            for d in daily
        ],
        "notes": notes,
    }


def _month_ends(start: dt.date, end: dt.date) -> list[dt.date]:
    out = []
    year, month = start.year, start.month
    while True:
        nxt = dt.date(year + month // 12, month % 12 + 1, 1)
        last = min(nxt - dt.timedelta(days=1), end)
        out.append(last)
        if nxt > end:
            return out
        year, month = nxt.year, nxt.month


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if abs(value) >= 1e9:
        return f"{value / 1e9:,.2f} bn"
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.3f} M"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:+.2f} %"


def render_report(report: dict[str, Any]) -> str:
    """The report as text for a terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=110, record=True, file=io.StringIO())
    console.print(
        f"[bold]ngsp simulate {report['scenario']}[/bold]: {report['period']['start']} to "
        f"{report['period']['end']} ({report['days']} days), seed {report['seed']}"
    )
    console.print(report["description"])
    t = report["totals"]
    console.print(
        f"{t['exchanges']:,} exchanges ({t['per_day']:,.0f} a day), {t['failures']:,} failed "
        f"({t['refused']:,} refused by the hub); {t['procedures_completed']:,} procedures "
        f"completed, {t['vnd_saved']:,} VND saved."
    )
    console.print(
        f"Run: {report['seconds']:.1f} s ({report['engine_seconds']:.1f} s simulating and "
        f"writing, {report['exchanges_per_second']:,} exchanges/s); database "
        f"{report['database_url']}"
    )
    table = Table(title=f"Beside the published figures (tolerance {report['tolerance']:.0%})")
    for col in ("figure", "simulated", "published", "difference", ""):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for c in report["comparison"]:
        ok = c["within_tolerance"]
        table.add_row(
            c["figure"],
            _fmt(c["simulated"]),
            _fmt(c["published"]),
            _pct(c["relative_difference"]),
            "" if ok is None else ("ok" if ok else "OUTSIDE"),
        )
    console.print(table)
    months = Table(title="By month")
    for col in ("month", "exchanges", "per day", "failed", "connected", "completed", "VND saved"):
        months.add_column(col, justify="right")
    for m in report["monthly"]:
        months.add_row(
            m["month"],
            f"{m['exchanges']:,}",
            f"{m['per_day']:,.0f}",
            f"{m['failures']:,}",
            str(m["connected_bodies"]),
            f"{m['procedures_completed']:,}",
            _fmt(m["vnd_saved"]),
        )
    console.print(months)
    procedures = Table(title="Procedures")
    for col in ("procedure", "completed", "failed", "VND saved"):
        procedures.add_column(col, justify="right")
    for p in report["procedures"]:
        procedures.add_row(
            p["procedure"], f"{p['completed']:,}", f"{p['failed']:,}", _fmt(p["vnd_saved"])
        )
    console.print(procedures)
    for p in report["projections"]:
        console.print(
            f"Projection {p['key']}: {p['description']} ({p['start']} to {p['end']}): "
            f"{p['completed']:,} completed, {p['vnd_saved']:,} VND."
        )
    for note in report["notes"]:
        console.print(f"- {note}")
    return console.export_text()


_COMPARED = (
    ("total exchanges", ("totals", "exchanges")),
    ("exchanges per day", ("totals", "per_day")),
    ("failed exchanges", ("totals", "failures")),
    ("procedures completed", ("totals", "procedures_completed")),
    ("VND saved", ("totals", "vnd_saved")),
)


def compare(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two runs' reports side by side: ``a`` (this run) against ``b`` (the baseline)."""
    rows = []
    for name, (section, key) in _COMPARED:
        va, vb = float(a[section][key]), float(b[section][key])
        rows.append(
            {"figure": name, "run": va, "baseline": vb, "difference": va - vb,
             "relative_difference": _relative(va, vb)}
        )  # fmt: skip
    ends_a = a["monthly"][-1]["connected_bodies"] if a["monthly"] else 0
    ends_b = b["monthly"][-1]["connected_bodies"] if b["monthly"] else 0
    rows.append(
        {"figure": "connected bodies at the end", "run": ends_a, "baseline": ends_b,
         "difference": ends_a - ends_b, "relative_difference": _relative(ends_a, ends_b)}
    )  # fmt: skip
    for pa, pb in zip(a["projections"], b["projections"], strict=False):
        va, vb = float(pa["vnd_saved"]), float(pb["vnd_saved"])
        rows.append(
            {"figure": f"projection {pa['key']} (VND)", "run": va, "baseline": vb,
             "difference": va - vb, "relative_difference": _relative(va, vb)}
        )  # fmt: skip
    return {"run": a["scenario"], "baseline": b["scenario"], "figures": rows}


def render_comparison(comparison: dict[str, Any], label_a: str, label_b: str) -> str:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=110, record=True, file=io.StringIO())
    table = Table(title=f"{label_a} against {label_b}")
    for col in ("figure", label_a, label_b, "difference", "relative"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    for r in comparison["figures"]:
        table.add_row(
            r["figure"],
            _fmt(r["run"]),
            _fmt(r["baseline"]),
            _fmt(r["difference"]),
            _pct(r["relative_difference"]),
        )
    console.print(table)
    return console.export_text()
