"""A real hub in a thread, for tests of every package."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from common.server import GuardedHttpToolsProtocol
from national_hub.app import create_app
from national_hub.settings import HubSettings
from tests.support.pki import hub_tls_settings
from tests.support.servers import ThreadServer, free_port


@dataclass
class Hub:
    """A running hub and what a test needs to call it."""

    server: ThreadServer
    settings: HubSettings
    admin_token: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def runtime(self) -> Any:
        return self.server.server.config.app.state.runtime

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
        server = ThreadServer(create_app(settings), port=settings.port, http=http)
        server.start()
        started.append(server)
        return Hub(server=server, settings=settings, admin_token=settings.admin_token_value())

    def stop() -> None:
        for server in started:
            server.stop()

    return start, stop
