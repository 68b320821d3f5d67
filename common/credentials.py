"""``credentials.json``: the demo credentials a developer needs to call the sandbox at once.

Only development deployments write it. Several processes update it (every hub worker,
the nodes process, the gateway), so each update takes an exclusive lock, re-reads the
file, changes its own part and replaces the file atomically. The file is mode 0600.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from common.files import private_dir

__all__ = ["CredentialsFile", "read_credentials"]


def read_credentials(path: Path) -> dict[str, Any]:
    """The file's content, or an empty document if it does not exist yet."""
    try:
        loaded = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


class CredentialsFile:
    """Locked read-modify-write access to ``credentials.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        private_dir(self.path.parent)
        lock_path = self.path.with_suffix(".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                doc = read_credentials(self.path)
                yield doc
                tmp = self.path.with_suffix(".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(doc, fh, ensure_ascii=False, indent=2, sort_keys=True)
                    fh.write("\n")
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def set_hub(self, *, url: str, admin_token: str) -> None:
        with self._update() as doc:
            doc["hub"] = {"url": url, "admin_token": admin_token, "token_url": url + "/token"}

    def set_node(self, code: str, *, client_id: str, client_secret: str) -> None:
        with self._update() as doc:
            doc.setdefault("nodes", {})[code] = {
                "client_id": client_id,
                "client_secret": client_secret,
            }

    def remove_client(self, client_id: str) -> None:
        with self._update() as doc:
            nodes = doc.get("nodes", {})
            for code in [c for c, v in nodes.items() if v.get("client_id") == client_id]:
                del nodes[code]

    def set_section(self, name: str, value: Any) -> None:
        """Replace a top-level section (the gateway keeps its demo key here)."""
        with self._update() as doc:
            doc[name] = value
