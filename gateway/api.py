"""The gateway's public API: procedures, dossiers and the level-4 statistics."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from uuid_utils import uuid7

from common.errors import NotFound, UnprocessableDossier
from country.procedures import Procedure
from gateway.applicant import validate_applicant
from gateway.auth import KeyDep, RuntimeDep
from gateway.level4 import Level4Row, rank
from gateway.models import Dossier, DossierStep
from gateway.runtime import GatewayRuntime
from gateway.schemas import (
    DossierCreate,
    DossierPublic,
    DossiersPublic,
    Level4Report,
    ProcedurePublic,
    ProceduresPublic,
    StepPublic,
)

__all__ = ["router"]

router = APIRouter()


def _procedure_public(p: Procedure) -> ProcedurePublic:
    return ProcedurePublic(
        code=p.code,
        name=p.name,
        name_en=p.name_en,
        authority=p.authority,
        saving_vnd=p.saving_vnd,
        exchanges=p.exchanges,
        applicant={k: v.model_dump(exclude_defaults=True) for k, v in p.applicant.items()},
        level4=p.level4 if isinstance(p.level4, str) else list(p.level4),
    )


@router.get("/procedures", response_model=ProceduresPublic, tags=["procedures"])
async def list_procedures(runtime: RuntimeDep) -> ProceduresPublic:
    """The procedure catalogue: what each procedure asks for, saves and runs."""
    items = [_procedure_public(p) for p in runtime.catalogue.procedures]
    return ProceduresPublic(items=items, count=len(items))


@router.get("/procedures/{code}", response_model=ProcedurePublic, tags=["procedures"])
async def get_procedure(code: str, runtime: RuntimeDep) -> ProcedurePublic:
    procedure = runtime.catalogue.get(code)
    if procedure is None:
        raise NotFound(f"no procedure {code!r}", code="unknown_procedure")
    return _procedure_public(procedure)


async def _dossier_public(runtime: GatewayRuntime, dossier: Dossier) -> DossierPublic:
    async with runtime.db.read_session() as session:
        steps = (
            await session.scalars(
                select(DossierStep)
                .where(DossierStep.dossier_id == dossier.id)
                .order_by(DossierStep.position)
            )
        ).all()
    procedure = runtime.catalogue.get(dossier.procedure)
    return DossierPublic(
        id=dossier.id,
        procedure=dossier.procedure,
        procedure_name=procedure.name if procedure else None,
        province=dossier.province,
        status=dossier.status,
        reason=dossier.reason,
        saving_vnd=dossier.saving_vnd,
        reported_to_hub=dossier.hub_reported,
        created_at=_utc(dossier.created_at) or dossier.created_at,
        finished_at=_utc(dossier.finished_at),
        steps=[
            StepPublic(
                id=s.step_id,
                provider=s.provider,
                service=s.service,
                method=s.method,
                status=s.status,
                http_status=s.http_status,
                outcome=s.outcome,
                transaction_id=s.transaction_id,
                error_code=s.error_code,
                error_detail=s.error_detail,
                started_at=_utc(s.started_at) or s.started_at,
                finished_at=_utc(s.finished_at),
            )
            for s in steps
        ],
    )


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    # SQLite returns the stored UTC times without their zone.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


def _answer(body: DossierPublic, code: int, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body.model_dump(mode="json"), status_code=code, headers=headers)


async def _load(runtime: GatewayRuntime, dossier_id: str, key_id: int) -> Dossier:
    async with runtime.db.read_session() as session:
        dossier = await session.get(Dossier, dossier_id)
    if dossier is None or dossier.api_key_id != key_id:
        raise NotFound(f"no dossier {dossier_id}", code="dossier_not_found")
    return dossier


@router.post(
    "/dossiers",
    response_model=DossierPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["dossiers"],
    responses={
        200: {"description": "A retry with the same Idempotency-Key: the same dossier"},
        202: {"description": "Accepted to run in the background (Prefer: respond-async)"},
        429: {"description": "rate_limited or quota_exceeded"},
    },
)
async def submit_dossier(
    data: DossierCreate,
    request: Request,
    key: KeyDep,
    runtime: RuntimeDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    prefer: Annotated[str | None, Header()] = None,
    run_async: Annotated[bool, Query(alias="async")] = False,
) -> Response:
    """Submit a dossier: the gateway runs the procedure's exchanges through the hub."""
    procedure = runtime.catalogue.get(data.procedure)
    if procedure is None:
        raise UnprocessableDossier(
            f"procedure: no procedure {data.procedure!r} in the catalogue",
            code="unknown_procedure",
            status=422,
            extra={"field": "procedure"},
        )
    province = data.province if data.province.startswith("P") else f"P{data.province}"
    if province not in runtime.roster or runtime.roster[province].kind != "province":
        raise UnprocessableDossier(
            f"province: no province {data.province!r}",
            code="unknown_province",
            extra={"field": "province"},
        )
    if not procedure.offered_in(province):
        raise UnprocessableDossier(
            f"procedure {procedure.code} is not offered at level 4 in {province}",
            code="procedure_not_offered",
            extra={"field": "province"},
        )
    if not runtime.clients.has(province):
        raise UnprocessableDossier(
            f"province {province} is not connected to the platform",
            code="province_not_connected",
            extra={"field": "province"},
        )
    applicant = validate_applicant(procedure, data.applicant, today=dt.date.today())
    digest = hashlib.sha256(
        orjson.dumps(
            {"procedure": procedure.code, "province": province, "applicant": applicant},
            option=orjson.OPT_SORT_KEYS,
        )
    ).hexdigest()
    background = run_async or (prefer is not None and "respond-async" in prefer.lower())

    if idempotency_key is not None:
        existing = await _by_idempotency(runtime, key.id, idempotency_key)
        if existing is not None:
            return await _repeat(runtime, existing, digest)

    now = dt.datetime.now(dt.UTC)
    dossier = Dossier(
        id=f"DVC-{uuid7()}",
        api_key_id=key.id,
        idempotency_key=idempotency_key,
        request_hash=digest,
        procedure=procedure.code,
        province=province,
        applicant=orjson.dumps(applicant).decode(),
        status="accepted",
        saving_vnd=0,
        hub_reported=False,
        created_at=now,
        updated_at=now,
        **runtime.runner.claim_values(),
    )
    try:
        async with runtime.db.write_session() as session:
            session.add(dossier)
            await session.commit()
    except IntegrityError:
        # The same Idempotency-Key arrived twice at once: answer with the first.
        assert idempotency_key is not None
        existing = await _by_idempotency(runtime, key.id, idempotency_key)
        if existing is None:
            raise
        return await _repeat(runtime, existing, digest)
    runtime.metrics.submitted.labels(procedure.code, province).inc()
    location = {"Location": f"/dossiers/{dossier.id}"}
    if background:
        runtime.runner.start(dossier.id)
        body = await _dossier_public(runtime, await _load(runtime, dossier.id, key.id))
        return _answer(body, status.HTTP_202_ACCEPTED, location)
    await runtime.runner.start(dossier.id)
    body = await _dossier_public(runtime, await _load(runtime, dossier.id, key.id))
    return _answer(body, status.HTTP_201_CREATED, location)


async def _by_idempotency(runtime: GatewayRuntime, key_id: int, idem: str) -> Dossier | None:
    async with runtime.db.read_session() as session:
        found: Dossier | None = await session.scalar(
            select(Dossier).where(Dossier.api_key_id == key_id, Dossier.idempotency_key == idem)
        )
    return found


async def _repeat(runtime: GatewayRuntime, existing: Dossier, digest: str) -> Response:
    if existing.request_hash != digest:
        raise UnprocessableDossier(
            "this Idempotency-Key was used for a different dossier",
            code="idempotency_key_reused",
        )
    body = await _dossier_public(runtime, existing)
    return _answer(body, status.HTTP_200_OK, {"Location": f"/dossiers/{existing.id}"})


@router.get("/dossiers/{dossier_id}", response_model=DossierPublic, tags=["dossiers"])
async def get_dossier(dossier_id: str, key: KeyDep, runtime: RuntimeDep) -> DossierPublic:
    """A dossier's status and each step's outcome and transaction id."""
    return await _dossier_public(runtime, await _load(runtime, dossier_id, key.id))


@router.get("/dossiers", response_model=DossiersPublic, tags=["dossiers"])
async def list_dossiers(
    key: KeyDep,
    runtime: RuntimeDep,
    dossier_status: Annotated[
        str | None, Query(alias="status", pattern="^(accepted|running|completed|failed)$")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DossiersPublic:
    """This key's dossiers, newest first."""
    query = select(Dossier).where(Dossier.api_key_id == key.id)
    if dossier_status:
        query = query.where(Dossier.status == dossier_status)
    async with runtime.db.read_session() as session:
        rows = (await session.scalars(query.order_by(Dossier.id.desc()).limit(limit))).all()
    items = [await _dossier_public(runtime, d) for d in rows]
    return DossiersPublic(items=items, count=len(items))


@router.get("/stats/level4", response_model=Level4Report, tags=["statistics"])
async def level4_stats(
    runtime: RuntimeDep,
    month: Annotated[
        str | None, Query(pattern=r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$")
    ] = None,
) -> Level4Report:
    """Each body's level-4 share and online completion, the national figure and a ranking."""
    today = dt.date.today()
    month = month or f"{today.year:04d}-{today.month:02d}"
    year, mon = (int(x) for x in month.split("-"))
    start = dt.datetime(year, mon, 1, tzinfo=dt.UTC)
    end = dt.datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=dt.UTC)
    counts: dict[tuple[str, str], int] = {}
    async with runtime.db.read_session() as session:
        for province, procedure, dossier_status, n in (
            await session.execute(
                select(Dossier.province, Dossier.procedure, Dossier.status, func.count())
                .where(Dossier.created_at >= start, Dossier.created_at < end)
                .group_by(Dossier.province, Dossier.procedure, Dossier.status)
            )
        ).all():
            authority = runtime.catalogue.get(procedure)
            for body in (province, authority.authority if authority else None):
                if body is None:
                    continue
                counts[(body, "all")] = counts.get((body, "all"), 0) + n
                if dossier_status == "completed":
                    counts[(body, "done")] = counts.get((body, "done"), 0) + n
    rows: list[Level4Row] = []
    for node in runtime.roster:
        offer = runtime.level4.bodies.get(node.code)
        if offer is None:
            continue
        submitted = counts.get((node.code, "all"), 0)
        completed = counts.get((node.code, "done"), 0)
        rows.append(
            Level4Row(
                code=node.code,
                name=node.name,
                kind=node.kind,
                procedures=offer.procedures,
                level4_procedures=offer.level4,
                level4_share=round(offer.level4 / offer.procedures, 4) if offer.procedures else 0,
                dossiers_submitted=submitted,
                dossiers_completed_online=completed,
                online_completion_share=round(completed / submitted, 4) if submitted else None,
            )
        )
    ranking = rank(rows)
    submitted_all = sum(r.dossiers_submitted for r in rows if r.kind == "province")
    completed_all = sum(r.dossiers_completed_online for r in rows if r.kind == "province")
    return Level4Report(
        month=month,
        offer_as_of=runtime.level4.as_of,
        national_level4_share=round(runtime.level4.national_share(), 4),
        national_online_completion_share=(
            round(completed_all / submitted_all, 4) if submitted_all else None
        ),
        bodies=[r.model_dump() for r in rows],
        province_ranking=[
            {
                "rank": r.rank,
                "code": r.code,
                "name": r.name,
                "level4_share": r.level4_share,
                "online_completion_share": r.online_completion_share,
            }
            for r in ranking
        ],
    )
