"""Savings: a dossier's procedure saving is counted once, when the dossier completes.

``POST /dossiers/{id}/complete`` is called by the public service portal (the gateway): a
node of kind ``portal`` holds the right to report completions, and no other node does
(403 ``reporting_not_granted``). A completion counts only for a dossier whose exchanges
are in the ledger: for every step of its procedure, an answered exchange (``ok``) that
carried the dossier's id, all made by one province or body, which the dossier is then
attributed to (409 ``dossier_not_in_ledger`` otherwise). Both refusals are recorded in the
ledger. The first accepted report records the dossier and (if it completed) adds the
procedure's saving to the statistics, in the same ledger transaction; a repeat of the
same report changes nothing and answers 200; a report that contradicts the recorded one
answers 409.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from sqlalchemy import select

from common.contract import Outcome
from common.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    LedgerUnavailableError,
    NotFound,
    ProblemError,
)
from country.procedures import Procedure
from national_hub.audit import record_refusal
from national_hub.auth import CallerDep, NodeDep, RuntimeDep
from national_hub.ledger.writer import DossierReport, LedgerUnavailable
from national_hub.models import Dossier, ledger_table
from national_hub.runtime import Runtime
from national_hub.schemas import DOSSIER_PATTERN, DossierComplete, DossierPublic

__all__ = ["router"]

router = APIRouter(tags=["dossiers"])

DossierId = Annotated[str, Path(pattern=DOSSIER_PATTERN)]

#: The kind of node that may report completions: the public service portal.
REPORTER_KIND = "portal"
_PATH = "/dossiers/{dossier_id}/complete"
_PROVINCE = "{province}"


async def _refuse(runtime: Runtime, node: str, err: ProblemError) -> None:
    await record_refusal(runtime, err, method="POST", path=_PATH, consumer=node)
    raise err


async def _ran_by(runtime: Runtime, dossier_id: str, procedure: Procedure) -> str | None:
    """The one node whose answered exchanges for the dossier cover every step (one exchange
    with the step's provider, service and method each), or None."""
    ledger = ledger_table.c
    async with runtime.db.read_session() as session:
        rows = (
            await session.execute(
                select(ledger.consumer, ledger.provider, ledger.service, ledger.method).where(
                    ledger.dossier == dossier_id, ledger.outcome == Outcome.OK
                )
            )
        ).all()
    consumers = {row[0] for row in rows}
    if len(consumers) != 1:
        return None
    consumer: str = next(iter(consumers))
    done = Counter((provider, service, method) for _, provider, service, method in rows)
    for step in procedure.steps:
        provider = consumer if step.provider == _PROVINCE else step.provider
        key = (provider, step.service, step.method)
        if not done[key]:
            return None
        done[key] -= 1
    return consumer


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
    """Report that a dossier ended; a completed one counts its procedure's saving once.

    Only the public service portal may report, and a completion only of a dossier whose
    exchanges the ledger holds."""
    if node.kind != REPORTER_KIND:
        await _refuse(
            runtime,
            node.code,
            Forbidden(
                f"{node.code} may not report completions: only the public service portal may",
                code="reporting_not_granted",
            ),
        )
    procedure = runtime.catalogue.get(data.procedure)
    if procedure is None:
        raise InvalidRequest(
            f"procedure: {data.procedure!r} is not in the catalogue",
            code="unknown_procedure",
            status=400,
        )
    ran_by = await _ran_by(runtime, dossier_id, procedure)
    if data.outcome == "completed" and ran_by is None:
        await _refuse(
            runtime,
            node.code,
            Conflict(
                f"dossier {dossier_id}: the ledger holds no answered exchange, by one node, "
                f"for every step of {procedure.code}",
                code="dossier_not_in_ledger",
            ),
        )
    report = DossierReport(
        dossier=dossier_id,
        node=ran_by or node.code,
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
            report.node,
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
    if (
        caller.node is not None
        and caller.node.kind != REPORTER_KIND
        and caller.node.code != row.node
    ):
        raise Forbidden("only the node that ran a dossier, or the portal, may read it")
    return DossierPublic(
        id=row.id,
        node=row.node,
        procedure=row.procedure,
        outcome=row.outcome,
        saving_vnd=row.saving_vnd,
        reported_at=_moment(row.reported_at),
        counted_now=False,
    )
