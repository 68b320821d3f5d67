"""Reports: the ledger (``/transactions``) and the statistics (``/stats/...``).

Statistics are read from the rollup tables that the ledger writer keeps in the same
transactions as the rows, so they cost the same whether the ledger holds a thousand rows
or a hundred million. ``/transactions`` pages by keyset on the time-ordered transaction
id; a time range becomes an id range, so it uses the primary key's index.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from common.contract import Outcome
from common.errors import InvalidRequest
from national_hub.auth import CallerDep, RuntimeDep
from national_hub.ledger.row import MOMENTS
from national_hub.models import DailyStats, NodeDailyStats, ProcedureDailyStats, ledger_table
from national_hub.schemas import (
    CODE_PATTERN,
    DailyStatsPublic,
    DailyStatsReport,
    NodeStatsPublic,
    NodeStatsReport,
    ProcedureStatsPublic,
    ProcedureStatsReport,
    RefusalCount,
    RefusalCounts,
    RoleCounts,
    TransactionPublic,
    TransactionsPage,
)

__all__ = ["router", "uuid7_floor"]

router = APIRouter(tags=["reports"])

_CSV_PAGE = 5000
_EARLIEST = dt.datetime(1970, 1, 2)
_LATEST = dt.datetime(9000, 1, 1)
_COLUMNS = [c.name for c in ledger_table.columns]
_LEDGER = ledger_table.c


def uuid7_floor(moment: dt.datetime) -> str:
    """The smallest UUIDv7 text of the millisecond ``moment`` falls in."""
    millis = int(moment.timestamp() * 1000)
    hexed = f"{millis:012x}"
    return f"{hexed[:8]}-{hexed[8:12]}-0000-0000-000000000000"


def _to_us(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1_000_000)


def _from_us(value: int | None) -> dt.datetime | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value / 1_000_000, tz=dt.UTC)


async def _read_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.db.read_session() as session:
        yield session


ReadSessionDep = Annotated[AsyncSession, Depends(_read_session)]
CodeQuery = Annotated[str | None, Query(pattern=CODE_PATTERN)]


def _filtered(
    caller_node: str | None,
    *,
    since: dt.datetime | None,
    until: dt.datetime | None,
    consumer: str | None,
    provider: str | None,
    service: str | None,
    outcome: Outcome | None,
    procedure: str | None,
) -> Select[Any]:
    query = select(ledger_table)
    if caller_node is not None:
        # A node sees the exchanges it took part in, as consumer or provider.
        query = query.where(or_(_LEDGER.consumer == caller_node, _LEDGER.provider == caller_node))
    if since is not None:
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
        query = query.where(_LEDGER.id >= uuid7_floor(since), _LEDGER.requested_at >= _to_us(since))
    if until is not None:
        if until.tzinfo is None:
            until = until.replace(tzinfo=dt.UTC)
        upper = uuid7_floor(until + dt.timedelta(milliseconds=1))
        query = query.where(_LEDGER.id < upper, _LEDGER.requested_at < _to_us(until))
    if consumer is not None:
        query = query.where(_LEDGER.consumer == consumer)
    if provider is not None:
        query = query.where(_LEDGER.provider == provider)
    if service is not None:
        query = query.where(_LEDGER.service == service)
    if outcome is not None:
        query = query.where(_LEDGER.outcome == outcome.value)
    if procedure is not None:
        query = query.where(_LEDGER.procedure == procedure)
    return query


def _public(row: Any) -> TransactionPublic:
    data = dict(row._mapping)
    for key in MOMENTS:
        data[key] = _from_us(data[key])
    return TransactionPublic(**data)


@router.get(
    "/transactions",
    response_model=TransactionsPage,
    responses={200: {"content": {"text/csv": {}}, "description": "JSON page, or CSV"}},
)
async def list_transactions(
    request: Request,
    caller: CallerDep,
    session: ReadSessionDep,
    since: Annotated[dt.datetime | None, Query(description="Inclusive, ISO 8601")] = None,
    until: Annotated[dt.datetime | None, Query(description="Exclusive, ISO 8601")] = None,
    consumer: CodeQuery = None,
    provider: CodeQuery = None,
    service: CodeQuery = None,
    procedure: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9._:-]{1,64}$")] = None,
    outcome: Outcome | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9a-f-]{36}$")] = None,
) -> Any:
    """The ledger, newest first; ``Accept: text/csv`` streams every matching row as CSV."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and not _EARLIEST <= moment.replace(tzinfo=None) <= _LATEST:
            raise InvalidRequest(f"{name}: must lie between 1970 and 9000")
    if since is not None and until is not None and since >= until:
        raise InvalidRequest("since must be before until")
    query = _filtered(
        None if caller.is_admin else caller.node.code if caller.node else None,
        since=since,
        until=until,
        consumer=consumer,
        provider=provider,
        service=service,
        outcome=outcome,
        procedure=procedure,
    )
    if "text/csv" in request.headers.get("accept", ""):
        return StreamingResponse(
            _csv_rows(request, query, cursor),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="transactions.csv"'},
        )
    page_query = query
    if cursor is not None:
        page_query = page_query.where(_LEDGER.id < cursor)
    rows = (await session.execute(page_query.order_by(_LEDGER.id.desc()).limit(limit + 1))).all()
    items = [_public(r) for r in rows[:limit]]
    next_cursor = rows[limit - 1]._mapping["id"] if len(rows) > limit else None
    return TransactionsPage(items=items, next_cursor=next_cursor)


def _csv_value(column: str, value: Any) -> Any:
    if value is None:
        return ""
    if column in MOMENTS:
        moment = _from_us(value)
        return moment.isoformat() if moment else ""
    return value


async def _csv_rows(request: Request, query: Select[Any], cursor: str | None) -> AsyncIterator[str]:
    """Stream the CSV in keyset pages, so memory stays bounded whatever the range."""
    runtime = request.app.state.runtime
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(_COLUMNS)
    yield buffer.getvalue()
    async with runtime.db.read_session() as session:
        while True:
            page = query if cursor is None else query.where(_LEDGER.id < cursor)
            rows: Sequence[Any] = (
                await session.execute(page.order_by(_LEDGER.id.desc()).limit(_CSV_PAGE))
            ).all()
            if not rows:
                return
            buffer.seek(0)
            buffer.truncate()
            for row in rows:
                mapping = row._mapping
                writer.writerow([_csv_value(c, mapping[c]) for c in _COLUMNS])
            yield buffer.getvalue()
            cursor = rows[-1]._mapping["id"]
            if len(rows) < _CSV_PAGE:
                return


# -- statistics -------------------------------------------------------------------------

DayQuery = Annotated[dt.date | None, Query(description="Inclusive statistics day (UTC+7)")]


def _check_range(since: dt.date | None, until: dt.date | None) -> None:
    if since is not None and until is not None and since > until:
        raise InvalidRequest("since must not be after until")


@router.get("/stats/daily", response_model=DailyStatsReport)
async def daily_stats(
    session: ReadSessionDep, since: DayQuery = None, until: DayQuery = None
) -> DailyStatsReport:
    """Transactions, successes, failures, procedures completed and VND saved per day."""
    _check_range(since, until)
    query = select(DailyStats).order_by(DailyStats.day)
    if since is not None:
        query = query.where(DailyStats.day >= since)
    if until is not None:
        query = query.where(DailyStats.day <= until)
    rows = (await session.scalars(query)).all()
    items = [
        DailyStatsPublic(
            day=r.day,
            transactions=r.transactions,
            successes=r.successes,
            failures=r.failures,
            procedures_completed=r.procedures_completed,
            dossiers_failed=r.dossiers_failed,
            vnd_saved=r.vnd_saved,
            request_bytes=r.request_bytes,
            response_bytes=r.response_bytes,
        )
        for r in rows
    ]
    totals = None
    if items:
        fields = [f for f in DailyStatsPublic.model_fields if f != "day"]
        totals = DailyStatsPublic(
            day=items[-1].day, **{f: sum(getattr(i, f) for i in items) for f in fields}
        )
    return DailyStatsReport(items=items, totals=totals)


@router.get("/stats/nodes", response_model=NodeStatsReport)
async def node_stats(
    session: ReadSessionDep, since: DayQuery = None, until: DayQuery = None
) -> NodeStatsReport:
    """Per node: exchanges as consumer and as provider over the range."""
    _check_range(since, until)
    query = select(
        NodeDailyStats.node,
        NodeDailyStats.role,
        func.sum(NodeDailyStats.transactions),
        func.sum(NodeDailyStats.successes),
        func.sum(NodeDailyStats.failures),
    ).group_by(NodeDailyStats.node, NodeDailyStats.role)
    if since is not None:
        query = query.where(NodeDailyStats.day >= since)
    if until is not None:
        query = query.where(NodeDailyStats.day <= until)
    by_node: dict[str, NodeStatsPublic] = {}
    for node, role, transactions, successes, failures in (await session.execute(query)).all():
        entry = by_node.setdefault(
            node, NodeStatsPublic(node=node, as_consumer=RoleCounts(), as_provider=RoleCounts())
        )
        counts = RoleCounts(
            transactions=int(transactions), successes=int(successes), failures=int(failures)
        )
        if role == "consumer":
            entry.as_consumer = counts
        else:
            entry.as_provider = counts
    items = sorted(by_node.values(), key=lambda e: e.node)
    return NodeStatsReport(since=since, until=until, items=items)


@router.get("/stats/procedures", response_model=ProcedureStatsReport)
async def procedure_stats(
    session: ReadSessionDep, runtime: RuntimeDep, since: DayQuery = None, until: DayQuery = None
) -> ProcedureStatsReport:
    """Per procedure: dossiers completed and failed, and VND saved."""
    _check_range(since, until)
    query = select(
        ProcedureDailyStats.procedure,
        func.sum(ProcedureDailyStats.completed),
        func.sum(ProcedureDailyStats.failed),
        func.sum(ProcedureDailyStats.vnd_saved),
    ).group_by(ProcedureDailyStats.procedure)
    if since is not None:
        query = query.where(ProcedureDailyStats.day >= since)
    if until is not None:
        query = query.where(ProcedureDailyStats.day <= until)
    items = []
    for code, completed, failed, saved in (await session.execute(query)).all():
        procedure = runtime.catalogue.get(code)
        items.append(
            ProcedureStatsPublic(
                procedure=code,
                name=procedure.name if procedure else None,
                completed=int(completed),
                failed=int(failed),
                vnd_saved=int(saved),
            )
        )
    items.sort(key=lambda i: i.procedure)
    return ProcedureStatsReport(since=since, until=until, items=items)


@router.get("/stats/refusals", response_model=RefusalCounts)
async def refusal_counts(
    runtime: RuntimeDep,
    minutes: Annotated[int, Query(ge=1, le=7 * 24 * 60, description="How far back")] = 60,
) -> RefusalCounts:
    """Refusals of requests from no known client (no token, a forged one, an unknown client
    id), counted per minute, source address and reason instead of a ledger row each."""
    await runtime.refusals.flush()
    now_minute = int(time.time() // 60)
    rows = await runtime.refusals.since(now_minute - minutes + 1)
    items = [
        RefusalCount(
            minute=dt.datetime.fromtimestamp(int(r["minute"]) * 60, tz=dt.UTC),
            source=str(r["source"]),
            reason=str(r["reason"]),
            count=int(r["count"]),
        )
        for r in rows
    ]
    return RefusalCounts(items=items, total=sum(i.count for i in items))
