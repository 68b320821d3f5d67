"""Files only their owner can read: databases, keys, secrets, the credentials file.

Whoever else shares the machine must not read the ledger, a key or a secret: folders the
services make are 0700 and the files in them 0600 from their first byte (SQLite gives a
database's ``-wal`` and ``-shm`` files the database's own mode).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["private_dir", "private_file", "write_private"]


def private_dir(path: Path) -> Path:
    """A folder only its owner can enter (0700), made (with its parents) if missing."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """A file only its owner can read or write (0600), made empty if missing, in a
    private folder."""
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    path.chmod(0o600)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600) from its first byte."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    path.chmod(0o600)
