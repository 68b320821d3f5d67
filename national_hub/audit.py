"""Refusals outside the data plane, written to the ledger like any refused exchange.

Those of known clients are rows; those of no known client are counted in aggregate
(``national_hub/refusals.py``).

A failed ``/token`` attempt or a node token on the admin API is a security event an
auditor will look for beside the refused exchanges: it gets a ledger row with its path
template, status and outcome (and the node, when the caller named a known client).
"""

from __future__ import annotations

import logging
import time

from uuid_utils import uuid7

from common.errors import ProblemError
from national_hub.ledger.row import LedgerRow
from national_hub.ledger.writer import LedgerUnavailable
from national_hub.runtime import Runtime

__all__ = ["record_refusal"]

log = logging.getLogger("ngsp.hub.audit")


async def record_refusal(
    runtime: Runtime,
    refusal: ProblemError,
    *,
    method: str,
    path: str,
    consumer: str | None = None,
    source: str | None = None,
) -> None:
    """Write a refusal to the ledger, with its status and outcome; a refusal of no known
    client (``consumer`` None) is counted for its ``source`` address instead
    (``national_hub.refusals``), so strangers cannot fill the ledger."""
    if consumer is None:
        runtime.refusals.count(source, refusal.code)
        return
    now = time.time_ns() // 1000
    txid = str(uuid7())
    row = LedgerRow(
        id=txid,
        consumer=consumer,
        provider=None,
        service=None,
        procedure=None,
        dossier=None,
        method=method,
        path=path,
        status=refusal.status,
        outcome=refusal.outcome,
        requested_at=now,
        forwarded_at=None,
        provider_responded_at=None,
        responded_at=now,
        request_bytes=0,
        response_bytes=0,
        request_sha256=None,
    )
    try:
        await runtime.ledger.record(row)
    except LedgerUnavailable:
        log.warning("refusal %s %s not recorded: ledger unavailable", method, path)
