"""Savings: a dossier's procedure saving is counted once, when the dossier completes.

``POST /dossiers/{id}/complete`` is called by the node that ran the dossier. The first
report records the dossier and (if it completed) adds the procedure's saving to the
statistics, in the same ledger transaction; a repeat of the same report changes nothing
and answers 200; a report that contradicts the recorded one answers 409.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from sqlalchemy import select

from common.errors import Conflict, Forbidden, InvalidRequest, LedgerUnavailableError, NotFound
from national_hub.auth import CallerDep, NodeDep, RuntimeDep
from national_hub.ledger import DossierReport, LedgerUnavailable
from national_hub.models import Dossier
from national_hub.schemas import DOSSIER_PATTERN, DossierComplete, DossierPublic

__all__ = ["router"]

router = APIRouter(tags=["dossiers"])

DossierId = Annotated[str, Path(pattern=DOSSIER_PATTERN)]


def _moment(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)


@router.post(
    "/dossiers/{dossier_id}/complete",
    response_model=DossierPublic,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "Already recorded with the same content; nothing counted"}},
)
async def complete_dossier(
    dossier_id: DossierId,
    data: DossierComplete,
    node: NodeDep,
    runtime: RuntimeDep,
    response: Response,
) -> DossierPublic:
    """Report that a dossier ended; a completed one counts its procedure's saving once."""
    procedure = runtime.catalogue.get(data.procedure)
    if procedure is None:
        raise InvalidRequest(
            f"procedure: {data.procedure!r} is not in the catalogue",
            code="unknown_procedure",
            status=400,
        )
    report = DossierReport(
        dossier=dossier_id,
        node=node.code,
        procedure=procedure.code,
        outcome=data.outcome,
        saving_vnd=procedure.saving_vnd,
        reported_at=time.time_ns() // 1000,
    )
    try:
        result = await runtime.ledger.report_dossier(report)
    except LedgerUnavailable:
        raise LedgerUnavailableError("the report could not be recorded; retry it") from None
    if result.created:
        runtime.metrics.dossiers.labels(procedure.code, data.outcome).inc()
        if data.outcome == "completed":
            runtime.metrics.procedures.labels(procedure.code).inc()
            runtime.metrics.vnd_saved.labels(procedure.code).inc(result.saving_vnd)
    if not result.created:
        same = (result.node, result.procedure, result.outcome) == (
            node.code,
            procedure.code,
            data.outcome,
        )
        if not same:
            raise Conflict(
                f"dossier {dossier_id} was already reported as {result.outcome} "
                f"of {result.procedure} by {result.node}"
            )
        response.status_code = status.HTTP_200_OK
    return DossierPublic(
        id=dossier_id,
        node=result.node,
        procedure=result.procedure,
        outcome=result.outcome,
        saving_vnd=result.saving_vnd,
        reported_at=_moment(result.reported_at),
        counted_now=result.created,
    )


@router.get("/dossiers/{dossier_id}", response_model=DossierPublic)
async def get_dossier(
    dossier_id: DossierId, caller: CallerDep, runtime: RuntimeDep
) -> DossierPublic:
    """A recorded dossier report (the admin, or the node that reported it)."""
    async with runtime.db.read_session() as session:
        row = await session.scalar(select(Dossier).where(Dossier.id == dossier_id))
    if row is None:
        raise NotFound(f"no dossier {dossier_id} has been reported")
    if caller.node is not None and caller.node.code != row.node:
        raise Forbidden("only the node that reported a dossier may read it")
    return DossierPublic(
        id=row.id,
        node=row.node,
        procedure=row.procedure,
        outcome=row.outcome,
        saving_vnd=row.saving_vnd,
        reported_at=_moment(row.reported_at),
        counted_now=False,
    )
