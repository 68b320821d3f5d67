"""The ledger's hash chain: every row is linked to the one before it.

Each ledger writer (one per hub process start) keeps its own chain: its rows carry the
chain's id, a sequence number from 1, and ``hash = SHA-256(previous hash, the row's
fields)``. The chain's head (last sequence number and hash) is stored in
``ledger_chains`` in the same transaction as the rows. So a row changed in the database
no longer matches its hash, a row deleted leaves a gap in the sequence (or a head that
points past the end), and a row inserted belongs to no chain or repeats a number; the
verifier (``ngsp ledger verify``) names the first such row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["CHAINED_FIELDS", "GENESIS", "row_hash"]

GENESIS = "0" * 64
#: The fields a row's hash covers, in order: everything the ledger records.
CHAINED_FIELDS = (
    "id",
    "chain",
    "seq",
    "consumer",
    "provider",
    "service",
    "procedure",
    "dossier",
    "method",
    "path",
    "status",
    "outcome",
    "requested_at",
    "forwarded_at",
    "provider_responded_at",
    "responded_at",
    "request_bytes",
    "response_bytes",
    "request_sha256",
)


def row_hash(previous: str, row: Mapping[str, Any]) -> str:
    """The hash of a row linked to the previous row's hash."""
    digest = hashlib.sha256(previous.encode())
    for name in CHAINED_FIELDS:
        value = row[name]
        # A separator between fields, and a marker no text can take for a missing value.
        digest.update(b"\x1f\x00" if value is None else b"\x1f" + str(value).encode())
    return digest.hexdigest()
