"""What does hashing a ledger row cost, by recipe version?

    python benchmarks/hash_recipes.py [--rows 100000] [--repeat 5]

Chains ``--rows`` rows with each recipe the way each caller does: the hub's writer
(``Recipe.hash_row`` on ``LedgerRow`` objects), the verifier (``Recipe.hash_mapping`` on
database rows) and, for comparison, version 1 the way the writer called it before
recipes had versions (a dict per row, then the hash). Prints the best of ``--repeat``
runs of each, in milliseconds for all the rows and microseconds a row; versions are
timed one after the other in each round, so a busy machine slows them alike.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable, Sequence
from typing import Any

from national_hub.ledger.chain import GENESIS, RECIPES, Recipe
from national_hub.ledger.row import LedgerRow


def rows(n: int) -> list[LedgerRow]:
    made = []
    for i in range(n):
        t = 1_732_500_000_000_000 + i * 137
        made.append(
            LedgerRow(
                id=f"01936a1e-{i >> 16:04x}-7000-8000-{i:012x}",
                consumer=f"C{i % 97:02d}",
                provider="DANCU",
                service="citizens",
                procedure="1.001193" if i % 5 == 0 else None,
                dossier=f"1.001193:C{i % 97:02d}:{i:x}" if i % 5 == 0 else None,
                method="GET",
                path="/citizens/{id}",
                status=200,
                outcome="ok",
                requested_at=t,
                forwarded_at=t + 180,
                provider_responded_at=t + 40_000,
                responded_at=t + 40_180,
                request_bytes=0,
                response_bytes=512 + i % 300,
                request_sha256=None,
                chain="01936a1e-0000-7000-8000-00000000c4a1",
                seq=i + 1,
            )
        )
    return made


def chained(hash_one: Callable[[str, Any], str], items: Sequence[Any]) -> Callable[[], str]:
    def run() -> str:
        previous = GENESIS
        for item in items:
            previous = hash_one(previous, item)
        return previous

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description="A ledger row's hash, by recipe version.")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    objects = rows(args.rows)
    mappings = [r.as_params() for r in objects]

    def before(recipe: Recipe) -> Callable[[str, LedgerRow], str]:
        return lambda previous, row: recipe.hash_mapping(previous, row.as_params())

    cases: dict[str, Callable[[], str]] = {}
    for version, recipe in RECIPES.items():
        cases[f"v{version} writer (LedgerRow)"] = chained(recipe.hash_row, objects)
        cases[f"v{version} verifier (mapping)"] = chained(recipe.hash_mapping, mappings)
    cases["v1 writer as before (dict a row, then hash)"] = chained(before(RECIPES[1]), objects)
    best = {name: float("inf") for name in cases}
    for _ in range(args.repeat):
        for name, run in cases.items():
            best[name] = min(best[name], timeit.timeit(run, number=1))
    print(f"| case | ms for {args.rows:,} rows | µs a row |")
    print("|---|---:|---:|")
    for name, seconds in best.items():
        print(f"| {name} | {seconds * 1000:.0f} | {seconds / args.rows * 1e6:.2f} |")


if __name__ == "__main__":
    main()
