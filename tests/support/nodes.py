"""A real nodes process (the simulated network) in a thread, for tests of every package."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from provincial_nodes.app import create_app as create_nodes_app
from provincial_nodes.settings import NodesSettings
from tests.support.hub import Hub, hub_settings, hub_starter
from tests.support.pki import network_pki
from tests.support.servers import ThreadServer, free_port, stop_all


def nodes_settings(data_dir: Path, hub: Any, **overrides: Any) -> NodesSettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "port": free_port(),
        "node_port_base": 0,
        "hub_url": hub.url,
        "hub_admin_token": hub.admin_token,
        "population_size": 5000,
        "seed": 7,
        "admin_token": "nodes-admin-token-0123456789",
        "tls_dir": network_pki().root,
    }
    values.update(overrides)
    return NodesSettings(**values)


def network_of(server: ThreadServer) -> Any:
    return server.server.config.app.state.network


def nodes_starter(data_dir: Path) -> tuple[Callable[..., ThreadServer], Callable[[], None]]:
    """A function that starts nodes processes behind a hub, and one that stops them."""
    started: list[ThreadServer] = []

    def start(hub: Any, **overrides: Any) -> ThreadServer:
        settings = nodes_settings(data_dir, hub, **overrides)
        server = ThreadServer(create_nodes_app(settings), port=settings.port).start()
        started.append(server)
        return server

    def stop() -> None:
        stop_all(started)

    return start, stop


@dataclass(frozen=True)
class Registered:
    """What a hub (on SQLite) and the nodes leave once the nodes have registered: the
    hub's database and the credentials file."""

    hub_db: Path
    credentials: Path


def register_once(root: Path) -> Registered:
    """Start a hub and the nodes, let the nodes register (97 nodes, their services and
    some 500 grants, each a row the hub writes), and stop both."""
    data, db = root / "data", root / "hub.db"
    start_hub, stop_hub = hub_starter(data, f"sqlite+aiosqlite:///{db}")
    start_nodes, stop_nodes = nodes_starter(data)
    try:
        start_nodes(start_hub())
    finally:
        stop_nodes()
        stop_hub()
    return Registered(hub_db=db, credentials=data / "credentials.json")


def registered_starter(
    root: Path, registered: Registered
) -> tuple[Callable[..., tuple[Hub, ThreadServer]], Callable[[], None]]:
    """A function that starts a hub and the nodes as ``registered`` left them, and one
    that stops them all.

    Registration is what the nodes' own tests check (tests/provincial_nodes); for tests of
    what runs on the network, a copy of the registered hub database with each node's new
    address written in is the same registry, without the hub writing it row by row again
    (about 3 s a start here). The nodes start first, unregistered, so their addresses are
    known before the hub starts and loads the registry.
    """
    starts = itertools.count(1)
    servers: list[ThreadServer] = []

    def start(**hub_overrides: Any) -> tuple[Hub, ThreadServer]:
        base = root / f"network-{next(starts)}"
        data, db = base / "data", base / "hub.db"
        data.mkdir(parents=True)
        shutil.copy(registered.credentials, data / "credentials.json")
        with (
            contextlib.closing(sqlite3.connect(registered.hub_db)) as source,
            contextlib.closing(sqlite3.connect(db)) as copy,
        ):
            source.backup(copy)
        database_url = f"sqlite+aiosqlite:///{db}"
        hub_overrides.setdefault("port", free_port())
        settings = hub_settings(data, database_url, **hub_overrides)
        caller = SimpleNamespace(
            url=f"http://127.0.0.1:{settings.port}", admin_token=settings.admin_token_value()
        )
        config = nodes_settings(data, caller, register_with_hub=False)
        network = ThreadServer(create_nodes_app(config), port=config.port).start()
        servers.append(network)
        addresses = [
            (listener.url, code) for code, listener in network_of(network).listeners.items()
        ]
        with contextlib.closing(sqlite3.connect(db)) as conn, conn:
            conn.executemany("UPDATE nodes SET base_url = ? WHERE code = ?", addresses)
            registered_codes = {row[0] for row in conn.execute("SELECT code FROM nodes")}
        assert registered_codes == {code for _, code in addresses}, "a node was not moved"
        start_hub, _ = hub_starter(data, database_url)  # stopped with the nodes, by stop()
        hub = start_hub(**hub_overrides)
        assert hub.server is not None
        servers.append(hub.server)
        return hub, network

    def stop() -> None:
        stop_all(servers)

    return start, stop
