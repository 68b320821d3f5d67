"""Fixtures for the simulated nodes: a small world, and a real network behind a real hub."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provincial_nodes.app import create_app as create_nodes_app
from provincial_nodes.citizens import Citizen
from provincial_nodes.roster import load_roster
from provincial_nodes.settings import NodesSettings
from provincial_nodes.state import NodeState
from provincial_nodes.world import World, build_population
from tests.support.servers import ThreadServer

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


def nodes_settings(data_dir: Path, hub: Any, **overrides: Any) -> NodesSettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "port": 0,
        "node_port_base": 0,
        "hub_url": hub.url,
        "hub_admin_token": hub.admin_token,
        "population_size": 5000,
        "seed": 7,
        "admin_token": "nodes-admin-token-0123456789",
    }
    values.update(overrides)
    return NodesSettings(**values)


@pytest.fixture
def nodes_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[ThreadServer] = []

    def start(hub: Any, **overrides: Any) -> ThreadServer:
        settings = nodes_settings(tmp_path / "data", hub, **overrides)
        server = ThreadServer(create_nodes_app(settings)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def network_of(server: ThreadServer) -> Any:
    return server.server.config.app.state.network


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=15.0) as c:
        yield c
