"""How fast does a scenario run in virtual time, ledger rows included?

    python benchmarks/simulate_speed.py [--scenario vn-2020 --scenario vn-2024] [--runs 2]

Runs each scenario through ``simulation`` (the hub's routing and grants,
the bulk ledger writer, the rollups, the hash chain, the projections) into a fresh SQLite
database in a temporary directory, and prints the wall time of the whole run, the time
spent simulating and writing, simulated exchanges per second and ledger rows per second
(of the whole run), and where the rest went: the engine waiting for the writer process
to take a batch, and the writer finishing after the last one (WAL). Medians over the
runs, and each run's wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from simulation.run import RunResult, run_scenario
from simulation.scenario import load_scenario


async def once(name: str, folder: Path) -> RunResult:
    scenario = load_scenario(name)
    url = f"sqlite+aiosqlite:///{folder / f'sim-{name}.db'}"
    return await run_scenario(scenario, database_url=url)


def main() -> None:
    parser = argparse.ArgumentParser(description="Scenario runs in virtual time, timed.")
    parser.add_argument("--scenario", action="append", help="default: vn-2020 and vn-2024")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    names = args.scenario or ["vn-2020", "vn-2024"]
    print(
        "| scenario | exchanges | ledger rows | wall s | engine s | waiting for the writer s "
        "| writer finishing s | exchanges/s | rows/s | wall s, each run |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in names:
        results = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                results.append(asyncio.run(once(name, Path(tmp))))
        exchanges, rows = results[0].facts.exchanges, results[0].facts.rows
        wall = statistics.median(r.seconds for r in results)
        engine = statistics.median(r.facts.seconds for r in results)
        wait = statistics.median(r.writer_wait_seconds for r in results)
        finish = statistics.median(r.finish_seconds for r in results)
        print(
            f"| {name} | {exchanges:,} | {rows:,} | {wall:.1f} | {engine:.1f} | {wait:.1f} | "
            f"{finish:.1f} | {exchanges / wall:,.0f} | {rows / wall:,.0f} | "
            f"{', '.join(f'{r.seconds:.1f}' for r in results)} |"
        )


if __name__ == "__main__":
    main()
