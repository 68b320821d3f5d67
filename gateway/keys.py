"""Developer API keys: created by the admin, stored as hashes, checked on every request."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.models import ApiKey

__all__ = ["KEY_PREFIX", "find_key", "hash_key", "new_key"]

KEY_PREFIX = "ngsp_"


def new_key() -> str:
    """A fresh API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of a key. Keys are 256-bit random, so one SHA-256 is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


async def find_key(session: AsyncSession, key: str) -> ApiKey | None:
    """The active key with this value, if any."""
    row = await session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
