"""How fast does a scenario run in virtual time, ledger rows included?

    python benchmarks/simulate_speed.py [--scenario vn-2020 --scenario vn-2024] [--runs 2]

Runs each scenario through ``national_hub.simulation`` (the hub's routing and grants,
the bulk ledger writer, the rollups, the hash chain, the projections) into a fresh SQLite
database in a temporary directory, and prints the wall time of the whole run, the time
spent simulating and writing, simulated exchanges per second and ledger rows per second.
Medians over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from national_hub.simulation.run import run_scenario
from national_hub.simulation.scenario import load_scenario


async def once(name: str, folder: Path) -> tuple[float, float, int, int]:
    scenario = load_scenario(name)
    url = f"sqlite+aiosqlite:///{folder / f'sim-{name}.db'}"
    result = await run_scenario(scenario, database_url=url)
    return result.seconds, result.facts.seconds, result.facts.exchanges, result.facts.rows


def main() -> None:
    parser = argparse.ArgumentParser(description="Scenario runs in virtual time, timed.")
    parser.add_argument("--scenario", action="append", help="default: vn-2020 and vn-2024")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    names = args.scenario or ["vn-2020", "vn-2024"]
    print("| scenario | exchanges | ledger rows | wall s | engine s | exchanges/s | rows/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        walls, engines = [], []
        exchanges = rows = 0
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                wall, engine, exchanges, rows = asyncio.run(once(name, Path(tmp)))
            walls.append(wall)
            engines.append(engine)
        wall, engine = statistics.median(walls), statistics.median(engines)
        print(
            f"| {name} | {exchanges:,} | {rows:,} | {wall:.1f} | {engine:.1f} | "
            f"{exchanges / engine:,.0f} | {rows / engine:,.0f} |"
        )


if __name__ == "__main__":
    main()
