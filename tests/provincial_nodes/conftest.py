"""Fixtures for the simulated nodes: a small world."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from country.citizens import Citizen
from country.roster import load_roster
from provincial_nodes.state import NodeState
from provincial_nodes.world import World, build_population
from tests.support.nodes import network_of

__all__ = ["adult_man", "adult_woman", "network_of"]

REFERENCE = dt.date(2026, 1, 1)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    roster = load_roster("roster-2020")
    population = build_population(roster, size=5000, seed=7, reference=REFERENCE)
    state = NodeState(tmp_path / "nodes.db")
    await state.open()
    yield World(roster=roster, population=population, state=state)
    await state.close()


def adult_woman(world: World) -> Citizen:
    today = dt.date.today()
    return next(
        c
        for c in world.population.iter_citizens()
        if c.gender == "female" and 20 <= c.age(today) <= 40
    )


def adult_man(world: World) -> Citizen:
    today = dt.date.today()
    return next(
        c for c in world.population.iter_citizens() if c.gender == "male" and c.age(today) >= 25
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15.0) as c:
        yield c
