"""A real nodes process (the simulated network) in a thread, for tests of every package."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from provincial_nodes.app import create_app as create_nodes_app
from provincial_nodes.settings import NodesSettings
from tests.support.pki import network_pki
from tests.support.servers import ThreadServer, free_port


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
        for server in started:
            server.stop()

    return start, stop
