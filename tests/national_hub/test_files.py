"""Databases, keys and secrets are no one else's to read: 0600 files in 0700 folders.

The attack: another account on the machine reads the hub's SQLite ledger, its secrets or
the credentials file. Checked on a real hub's data directory after it served a request.
"""

from __future__ import annotations

import stat
from pathlib import Path

import httpx

from common.db import sqlite_path
from common.pki import Pki
from tests.support.hub import HubFactory


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_the_hubs_files_are_private(tmp_path: Path, sqlite_hub_factory: HubFactory) -> None:
    hub = sqlite_hub_factory()
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{hub.url}/readyz")).status_code == 200
    data = hub.settings.data_dir
    assert _mode(data) == 0o700
    db = sqlite_path(hub.settings.sqlalchemy_url)
    assert _mode(db.parent) == 0o700
    files = [db, data / "credentials.json"]  # (the test hub is given its secrets)
    files += list(db.parent.glob(db.name + "-*"))  # SQLite's -wal and -shm
    for path in files:
        assert path.exists(), path
        assert _mode(path) == 0o600, f"{path} is {oct(_mode(path))}"


def test_keys_are_private(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    pki.ensure_hub()
    pki.ensure_nodes(["DANCU"])
    assert _mode(pki.root) == 0o700
    assert _mode(pki.root / "nodes") == 0o700
    for key in (pki.root / "ca.key", pki.hub_key, pki.node_key("DANCU")):
        assert _mode(key) == 0o600, key
