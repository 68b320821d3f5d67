"""Database engines and schema migrations.

SQLite needs care under concurrent writers: a deferred transaction that reads and then
writes fails at once with ``SQLITE_BUSY`` if another connection committed in between,
whatever the busy timeout. So writers use ``BEGIN IMMEDIATE`` (they queue for the write
lock up front) while readers keep plain deferred transactions and never block the ledger.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from common.files import private_file

__all__ = [
    "NAMING_CONVENTION",
    "Database",
    "alembic_env",
    "is_sqlite",
    "run_migrations",
    "sqlite_path",
    "upgrade_database",
]

#: Constraint names the same on SQLite and PostgreSQL, so migrations can name them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite+aiosqlite:///...`` URL."""
    return Path(url.split(":///", 1)[1].split("?", 1)[0])


def _sqlite_engine(url: str, *, synchronous: str, immediate: bool) -> AsyncEngine:
    # hide_parameters: an error's text must not carry the rows it failed on.
    engine = create_async_engine(
        url, pool_size=4 if immediate else 8, max_overflow=4, hide_parameters=True
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so that BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@dataclass
class Database:
    """The engines and session makers of one service."""

    url: str
    writer: AsyncEngine
    reader: AsyncEngine
    write_session: async_sessionmaker[AsyncSession]
    read_session: async_sessionmaker[AsyncSession]

    @classmethod
    def connect(cls, url: str, *, sqlite_synchronous: str = "FULL") -> Database:
        if is_sqlite(url):
            private_file(sqlite_path(url))  # 0600 in 0700: the ledger is no one else's to read
            writer = _sqlite_engine(url, synchronous=sqlite_synchronous, immediate=True)
            reader = _sqlite_engine(url, synchronous=sqlite_synchronous, immediate=False)
        else:
            writer = create_async_engine(
                url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True
            )
            reader = writer
        return cls(
            url=url,
            writer=writer,
            reader=reader,
            write_session=async_sessionmaker(writer, expire_on_commit=False),
            read_session=async_sessionmaker(reader, expire_on_commit=False),
        )

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _alembic_config(url: str, location: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def run_migrations(
    connection: Connection,
    url: str,
    revision: str,
    downgrade: bool,
    location: Path,
) -> None:
    """Move the schema to ``revision`` over an open connection (called through ``run_sync``)."""
    cfg = _alembic_config(url, location)
    cfg.attributes["connection"] = connection
    if downgrade:
        command.downgrade(cfg, revision)
    else:
        command.upgrade(cfg, revision)


async def upgrade_database(db: Database, *, location: Path, revision: str = "head") -> None:
    """Bring the database's schema to ``revision``, with the migrations in ``location``."""
    async with db.writer.connect() as conn:
        await conn.run_sync(run_migrations, db.url, revision, False, location)
        await conn.commit()


def alembic_env(
    metadata: MetaData, *, lock_id: int, version_table: str = "alembic_version"
) -> None:
    """The body of a service's Alembic ``env.py``: migrate over the given or a new connection.

    Services run migrations themselves at start, over a connection they already hold
    (``config.attributes["connection"]``); the ``alembic`` command line works too, with
    ``-x url=...``. On PostgreSQL, replicas upgrading at once queue on an advisory lock.
    """
    from alembic import context

    def do_run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
            version_table=version_table,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"SELECT pg_advisory_xact_lock({lock_id})"))
            context.run_migrations()

    async def run_async(url: str) -> None:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
            await conn.commit()
        await engine.dispose()

    if context.is_offline_mode():
        raise SystemExit("offline migrations are not supported; run against a database")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        do_run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("no database URL: pass -x url=...")
    asyncio.run(run_async(url))
