"""Fixtures for the load tool: tiny servers with known behaviour, and a real network."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import Hub
from tests.support.nodes import Registered, registered_starter
from tests.support.servers import ThreadServer, serve

REPO = Path(__file__).resolve().parents[2]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def repo_env() -> dict[str, str]:
    """The environment for a child process that must import this checkout's packages."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO)}


@dataclass
class Recorder:
    """A tiny ASGI server that answers 200 and records when each request arrived.

    ``stall_at`` (seconds after the first request) blocks the server's event loop for
    ``stall_for`` seconds, once: a server that stops answering, as a GC pause or a lock
    would make it. ``service_seconds`` serves requests one at a time, each taking that
    long: a server with a known capacity of ``1 / service_seconds`` requests a second.
    """

    stall_at: float | None = None
    stall_for: float = 0.0
    service_seconds: float = 0.0
    arrivals: list[float] = field(default_factory=list)
    _stalled: bool = False
    _lock: asyncio.Lock | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        now = time.perf_counter()
        self.arrivals.append(now)
        if (
            self.stall_at is not None
            and not self._stalled
            and now - self.arrivals[0] >= self.stall_at
        ):
            self._stalled = True
            time.sleep(self.stall_for)  # noqa: ASYNC251 - blocks the whole server, on purpose
        if self.service_seconds:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                await asyncio.sleep(self.service_seconds)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"ok":true}'})


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, ThreadServer]]:
    app = Recorder()
    with serve(app) as server:
        yield app, server


@dataclass
class RunningNetwork:
    """A real hub (SQLite) and the real simulated nodes, as ``ngsp up`` would leave them."""

    hub: Hub
    nodes: ThreadServer
    data_dir: Path

    @property
    def credentials(self) -> Path:
        return self.data_dir / "credentials.json"


@pytest.fixture(scope="session")
def network(
    tmp_path_factory: pytest.TempPathFactory, registered: Registered
) -> Iterator[RunningNetwork]:
    """Started once for the load tool's tests: the hub and 97 nodes, registered."""
    start, stop = registered_starter(tmp_path_factory.mktemp("loadnet"), registered)
    try:
        hub, nodes = start(provider_timeout_seconds=10.0)
        yield RunningNetwork(hub=hub, nodes=nodes, data_dir=hub.settings.data_dir)
    finally:
        stop()
