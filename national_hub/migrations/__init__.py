"""The hub's schema, managed by Alembic: ``upgrade`` brings a database to a revision."""

from __future__ import annotations

from pathlib import Path

from common.db import Database, upgrade_database

__all__ = ["LOCATION", "upgrade"]

LOCATION = Path(__file__).parent


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring a hub database's schema to ``revision``."""
    await upgrade_database(db, location=LOCATION, revision=revision)
