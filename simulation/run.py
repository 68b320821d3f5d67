"""One scenario run, end to end: database, registry, engine, sink, projections."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from common.db import Database, is_sqlite, sqlite_path
from country.procedures import load_catalogue
from country.roster import RosterError, load_roster
from simulation.engine import (
    Batch,
    RunFacts,
    connection_dates,
    simulate,
    virtual_uuid7,
)
from simulation.profile import day_start_us, load_calendar
from simulation.scenario import Projection, Scenario, apply_overrides
from simulation.store import (
    BulkSink,
    CountingSink,
    WriterSink,
    prepare_database,
    remove_database,
)

__all__ = ["ProjectionResult", "RunResult", "run_scenario"]

Writer = Literal["bulk", "hub"]


@dataclass
class ProjectionResult:
    key: str
    projection: Projection
    completed: int
    vnd_saved: int
    start: dt.date
    end: dt.date


@dataclass
class RunResult:
    scenario: Scenario
    database_url: str
    sample: float
    writer: Writer
    facts: RunFacts
    seconds: float
    projections: list[ProjectionResult] = field(default_factory=list)
    #: The bulk writer: time the engine waited for it to take a batch, and the time it took
    #: at the end (indexes, WAL) after the last one.
    writer_wait_seconds: float = 0.0
    finish_seconds: float = 0.0


def default_database_url(data_dir: Path, scenario: Scenario) -> str:
    return f"sqlite+aiosqlite:///{(data_dir / f'sim-{scenario.name}.db').resolve()}"


async def run_scenario(
    scenario: Scenario,
    *,
    database_url: str,
    sample: float | None = None,
    writer: Writer = "bulk",
    projections: bool = True,
) -> RunResult:
    """Simulate the scenario into a fresh hub database at ``database_url``."""
    from simulation.scenario import ScenarioError

    started = time.perf_counter()
    try:
        roster = load_roster(scenario.connections.roster)
    except (RosterError, FileNotFoundError) as exc:
        raise ScenarioError(f"connections.roster: {exc}") from None
    catalogue = load_catalogue()
    calendar = load_calendar(scenario.holidays)
    calendar.check_covers(scenario.period.start, scenario.period.end)
    connections = connection_dates(scenario, roster)
    if writer == "bulk" and not is_sqlite(database_url):
        raise ScenarioError("the bulk writer needs a SQLite database; use --writer hub")
    snapshot = await prepare_database(
        database_url, roster=roster, connections=connections, as_of=scenario.period.end
    )
    kept = False
    if writer == "bulk":
        # The run's hash chain: named and started by the virtual clock, so it is the same
        # in every run of the scenario and seed.
        start_us = day_start_us(scenario.period.start)
        bulk = BulkSink(
            sqlite_path(database_url), chain=virtual_uuid7(start_us, 0), started_at=start_us
        )
        try:
            facts = await simulate(
                scenario,
                roster=roster,
                catalogue=catalogue,
                calendar=calendar,
                snapshot=snapshot,
                connections=connections,
                flush=bulk.write,
                sample=sample,
            )
            kept = True
        finally:
            await bulk.close(keep=kept)
            if not kept:
                remove_database(database_url)
    else:
        db = Database.connect(database_url, sqlite_synchronous="OFF")
        hub = WriterSink(db.writer, database_url)
        await hub.start()
        try:
            facts = await simulate(
                scenario,
                roster=roster,
                catalogue=catalogue,
                calendar=calendar,
                snapshot=snapshot,
                connections=connections,
                flush=hub.write,
                sample=sample,
            )
        finally:
            await hub.close()
            await db.dispose()
    result = RunResult(
        scenario=scenario,
        database_url=database_url,
        sample=scenario.ledger.sample if sample is None else sample,
        writer=writer,
        facts=facts,
        seconds=0.0,
    )
    if writer == "bulk":
        result.writer_wait_seconds = bulk.wait_seconds
        result.finish_seconds = bulk.index_seconds
    if projections:
        for key, projection in scenario.projections.items():
            result.projections.append(
                await _project(scenario, key, projection, roster, catalogue, snapshot)
            )
    result.seconds = time.perf_counter() - started
    return result


async def _project(
    scenario: Scenario,
    key: str,
    projection: Projection,
    roster: Any,
    catalogue: Any,
    snapshot: Any,
) -> ProjectionResult:
    """A counts-only what-if run of the scenario, as the projection describes."""
    end = scenario.period.end
    start = end - dt.timedelta(days=projection.days - 1)
    document = scenario.model_dump(mode="python")
    document["period"] = {"start": start, "end": end}
    document["projections"] = {}
    document = apply_overrides(document, projection.set)
    projected = Scenario.model_validate(document)
    calendar = load_calendar(projected.holidays)
    counting = CountingSink()

    async def flush(batch: Batch) -> None:
        await counting.write(batch)

    await simulate(
        projected,
        roster=roster,
        catalogue=catalogue,
        calendar=calendar,
        snapshot=snapshot,
        connections=connection_dates(projected, roster),
        flush=flush,
        sample=0.0,
    )
    counts = [c for (_, p), c in counting.per_procedure.items() if p == projection.procedure]
    completed = sum(c[0] for c in counts)
    saved = sum(c[2] for c in counts)
    return ProjectionResult(
        key=key,
        projection=projection,
        completed=completed,
        vnd_saved=saved,
        start=start,
        end=end,
    )
