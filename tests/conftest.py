"""Shared fixtures: databases (SQLite and PostgreSQL), real hub and nodes servers."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.hub import HubFactory, hub_starter
from tests.support.nodes import Registered, nodes_starter, register_once, registered_starter
from tests.support.servers import ThreadServer

POSTGRES_ADMIN_DSN = os.environ.get(
    "NGSP_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True, scope="session")
def _clean_environment() -> Iterator[None]:
    """Settings come from the tests, never from the developer's shell."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("NGSP_")}
    for key in saved:
        if key != "NGSP_TEST_POSTGRES_DSN":
            del os.environ[key]
    yield
    os.environ.update(saved)


async def _pg_admin(statement: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def _postgres_available() -> str | None:
    try:
        asyncio.run(_pg_admin("SELECT 1"))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


_PG_PROBLEM: list[str | None] = []


def _require_postgres() -> None:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_postgres_available())
    problem = _PG_PROBLEM[0]
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI and is not reachable: {problem}")
    pytest.skip(f"PostgreSQL not reachable: {problem}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    _require_postgres()
    name = f"ngsp_t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def served_hub_factory(tmp_path: Path, database_url: str) -> Iterator[HubFactory]:
    """Start hubs as real servers on the parametrized database (SQLite, then PostgreSQL),
    for tests of the server itself (the door, the header deadline, limits at the socket)."""
    start, stop = hub_starter(tmp_path / "data", database_url)
    yield start
    stop()


@pytest.fixture
def sqlite_hub_factory(tmp_path: Path) -> Iterator[HubFactory]:
    """Start real hubs on SQLite only, for tests about other packages."""
    start, stop = hub_starter(tmp_path / "data", f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}")
    yield start
    stop()


@pytest.fixture
def nodes_factory(tmp_path: Path) -> Iterator[Callable[..., ThreadServer]]:
    """Start real nodes processes (all 97 nodes, 5,000 citizens) behind a given hub."""
    start, stop = nodes_starter(tmp_path / "data")
    yield start
    stop()


@pytest.fixture(scope="session")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Registered:
    """The hub's database and the credentials once the nodes have registered, made once."""
    return register_once(tmp_path_factory.mktemp("registered"))


@pytest.fixture
def network_factory(tmp_path: Path, registered: Registered) -> Iterator[Any]:
    """Start a real hub (SQLite) and the real nodes behind it, already registered, for
    tests of what runs on the network (registration itself: ``nodes_factory``)."""
    start, stop = registered_starter(tmp_path, registered)
    yield start
    stop()
