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
from operator import itemgetter
from typing import Any

__all__ = ["CHAINED_FIELDS", "GENESIS", "MISSING", "SEPARATOR", "row_hash"]

GENESIS = "0" * 64
#: What the hash puts before each field, and what it takes for a missing value (None).
SEPARATOR = "\x1f"
MISSING = "\x00"
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
_chained = itemgetter(*CHAINED_FIELDS)
_sha256 = hashlib.sha256


def row_hash(previous: str, row: Mapping[str, Any]) -> str:
    """The hash of a row linked to the previous row's hash.

    SHA-256 of the previous hash, then, for each field in ``CHAINED_FIELDS`` order, a
    separator and the field's text (``str``), or a marker no text can take for a missing
    value. The text is joined first and hashed in one call: UTF-8 of a concatenation is the
    concatenation of the UTF-8, so the bytes hashed are those of feeding the fields one by
    one, at half the cost.
    """
    fields = [MISSING if value is None else str(value) for value in _chained(row)]
    return _sha256(SEPARATOR.join([previous, *fields]).encode()).hexdigest()
