"""Hubs for tests of every package: in the test's event loop, or a real server in a thread.

A test of the hub's own behaviour runs it in process (``InProcessHubs``): its lifespan
as a server runs it, its requests over ``httpx.ASGITransport``. Where the hub meets
other services over HTTP, or where the server itself is under test (the door, the
header deadline, limits at the socket), it is a real uvicorn server (``hub_starter``).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from common.server import GuardedHttpToolsProtocol
from national_hub.app import create_app
from national_hub.settings import HubSettings
from tests.support.asgi import InProcessApps, lifespan
from tests.support.pki import hub_tls_settings
from tests.support.servers import ThreadServer, free_port, stop_all


@dataclass
class Hub:
    """A running hub and what a test needs to call it."""

    settings: HubSettings
    admin_token: str
    app: Any
    url: str
    #: The real server it runs in; None for a hub in the test's event loop.
    server: ThreadServer | None = None

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}


def hub_settings(data_dir: Path, database_url: str, **overrides: Any) -> HubSettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "provider_timeout_seconds": 1.0,
        "admin_token": "test-admin-token-0123456789abcdef0123",
        "signing_key": "test-signing-key-0123456789abcdef0123",
        **hub_tls_settings(),
    }
    values.update(overrides)
    return HubSettings(**values)


async def query(target: Hub | str, sql: str, **params: Any) -> list[Any]:
    """Run SQL against a hub's database (or a database URL) from the test's event loop."""
    url = target if isinstance(target, str) else target.settings.sqlalchemy_url
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


HubFactory = Callable[..., Hub]


def hub_starter(data_dir: Path, database_url: str) -> tuple[HubFactory, Callable[[], None]]:
    """A function that starts hubs on one database, and one that stops them all."""
    started: list[ThreadServer] = []

    def start(**overrides: Any) -> Hub:
        overrides.setdefault("port", free_port())
        settings = hub_settings(data_dir, database_url, **overrides)
        # Served as ``ngsp hub`` serves it: with the header deadline and the door (the app
        # sets both in its lifespan state).
        http = GuardedHttpToolsProtocol
        app = create_app(settings)
        server = ThreadServer(app, port=settings.port, http=http)
        server.start()
        started.append(server)
        return Hub(
            settings=settings,
            admin_token=settings.admin_token_value(),
            app=app,
            url=server.url,
            server=server,
        )

    def stop() -> None:
        stop_all(started)

    return start, stop


_HUB_NUMBERS = itertools.count(1)


@dataclass
class InProcessHubs:
    """Starts hubs in the test's event loop on one database, reachable through ``apps``
    at ``http://hub-N.test``; ``close()`` stops those still running."""

    data_dir: Path
    database_url: str
    apps: InProcessApps
    _running: dict[str, contextlib.AsyncExitStack] = field(default_factory=dict)

    async def __call__(self, **overrides: Any) -> Hub:
        settings = hub_settings(self.data_dir, self.database_url, **overrides)
        app = create_app(settings)
        host = f"hub-{next(_HUB_NUMBERS)}.test"
        stack = contextlib.AsyncExitStack()
        state = await stack.enter_async_context(lifespan(app))
        url = self.apps.mount(host, app, state)
        stack.callback(self.apps.unmount, host)
        self._running[url] = stack
        return Hub(settings=settings, admin_token=settings.admin_token_value(), app=app, url=url)

    async def stop(self, hub: Hub) -> None:
        """Shut ``hub`` down, as a server would on SIGTERM."""
        await self._running.pop(hub.url).aclose()

    async def close(self) -> None:
        while self._running:
            await self._running.popitem()[1].aclose()
