"""Running dossiers: each step an exchange through the hub, as the receiving province.

Progress is written before and after every step, so a gateway that stops (or crashes)
can pick each unfinished dossier up again: steps done are kept, steps not started run,
and a step that was under way when the gateway stopped is run again only if it is a
read (GET); a write whose outcome is unknown fails the dossier explicitly instead of
risking a second birth registration or a second card.

A dossier that ends is reported to the hub (``POST /dossiers/{id}/complete``), which
counts a completed procedure's saving once; a report the hub did not take is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import select, update

from common.contract import Outcome, outcome_for_status
from common.credentials import CredentialsFile, read_credentials
from common.db import Database
from common.errors import CATALOGUE
from common.hubclient import HubClient, TokenError
from country.procedures import Catalogue
from gateway.metrics import GatewayMetrics
from gateway.models import Dossier, DossierStep
from gateway.steps import MissingValue, render_step

__all__ = ["DossierRunner", "ProvinceClients"]

log = logging.getLogger("ngsp.gateway.runner")

#: How long a replica's claim on a dossier lasts; every step renews it. Longer than any
#: step can take (the hub answers within its provider timeout).
CLAIM_SECONDS = 120.0


def _hub_outcome(code: object, status: int) -> Outcome:
    """The outcome the hub's ledger gave a failed exchange, read from its answer.

    A code the hub refuses with has its outcome in the catalogue. A ``bad_request`` code
    (``invalid_request``, ``method_not_allowed``, ``request_timeout``) is the hub's only
    for a malformed request, and the gateway's are well formed: such an answer is the
    provider's, which the ledger records by its status, like any other.
    """
    problem = CATALOGUE.get(code) if isinstance(code, str) else None
    outcome = problem.outcome if problem is not None else None
    if outcome is None or outcome is Outcome.BAD_REQUEST:
        return outcome_for_status(status)
    return outcome


def _trace_id(dossier_id: str) -> str:
    digits = dossier_id.removeprefix("DVC-").replace("-", "")
    return digits if len(digits) == 32 else secrets.token_hex(16)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class _StepResult:
    """How one step's exchange ended, before it is written down."""

    step_id: str
    status: str
    http_status: int | None = None
    outcome: str | None = None
    txid: str | None = None
    error_code: str | None = None
    detail: str | None = None
    output: bytes | None = None
    body: Any = None


def _step_update(dossier_id: str, result: _StepResult, now: dt.datetime) -> Any:
    return (
        update(DossierStep)
        .where(DossierStep.dossier_id == dossier_id, DossierStep.step_id == result.step_id)
        .values(
            status=result.status,
            http_status=result.http_status,
            outcome=result.outcome,
            transaction_id=result.txid,
            error_code=result.error_code,
            error_detail=result.detail,
            output=result.output.decode("utf-8", "replace") if result.output else None,
            finished_at=now,
        )
    )


@dataclass(frozen=True, slots=True)
class Portal:
    """The gateway's own identity at the hub (see ``GatewaySettings.portal_code``)."""

    code: str
    url: str
    client_id: str | None = None
    client_secret: str | None = None
    #: Register the portal with the hub's admin token if it has no credential (development).
    register: bool = False


class ProvinceClients:
    """One hub client per province, with the credentials ``ngsp up`` wrote, and the
    portal's own client, which alone reports completed dossiers."""

    def __init__(
        self, hub_url: str, credentials: Path, *, timeout: float, portal: Portal | None = None
    ) -> None:
        self.hub_url = hub_url
        self.credentials = credentials
        self.http = httpx.AsyncClient(
            timeout=timeout, limits=httpx.Limits(max_connections=200, max_keepalive_connections=50)
        )
        self._clients: dict[str, HubClient] = {}
        self._portal = portal
        self._portal_client: HubClient | None = None
        self._portal_lock = asyncio.Lock()

    async def portal(self) -> HubClient | None:
        """The portal's client; registered with the hub first if need be (development)."""
        if self._portal_client is not None or self._portal is None:
            return self._portal_client
        async with self._portal_lock:
            if self._portal_client is None:
                found = await self._portal_credential(self._portal)
                if found is not None:
                    self._portal_client = HubClient(self.hub_url, *found, http=self.http)
        return self._portal_client

    async def _portal_credential(self, portal: Portal) -> tuple[str, str] | None:
        if portal.client_id and portal.client_secret:
            return portal.client_id, portal.client_secret
        doc = read_credentials(self.credentials)
        known = doc.get("gateway", {}).get("portal")
        if isinstance(known, dict) and known.get("client_id") and known.get("client_secret"):
            return str(known["client_id"]), str(known["client_secret"])
        admin = doc.get("hub", {}).get("admin_token")
        if not portal.register or not admin:
            return None
        headers = {"Authorization": f"Bearer {admin}"}
        node = {
            "code": portal.code,
            "name": "Cổng Dịch vụ công quốc gia",
            "kind": "portal",
            "base_url": portal.url,
            "connected": True,
        }
        try:
            made = await self.http.post(f"{self.hub_url}/admin/nodes", json=node, headers=headers)
            if made.status_code not in (201, 409):
                log.warning("the hub refused the portal node: %s", made.status_code)
                return None
            cred = await self.http.post(
                f"{self.hub_url}/admin/nodes/{portal.code}/credentials", json={}, headers=headers
            )
        except httpx.TransportError as exc:
            log.warning("portal not registered with the hub yet: %s", exc)
            return None
        if cred.status_code != 201:
            log.warning("the hub refused the portal's credential: %s", cred.status_code)
            return None
        created = cred.json()
        CredentialsFile(self.credentials).set_section(
            "gateway",
            {
                **doc.get("gateway", {}),
                "portal": {
                    "client_id": created["client_id"],
                    "client_secret": created["client_secret"],
                },
            },
        )
        return str(created["client_id"]), str(created["client_secret"])

    def has(self, province: str) -> bool:
        return self.get(province) is not None

    def get(self, province: str) -> HubClient | None:
        client = self._clients.get(province)
        if client is None:
            # Only the province's own entry is read: the hub is the one the gateway is
            # configured with, whoever wrote the file.
            cred = read_credentials(self.credentials).get("nodes", {}).get(province)
            if not isinstance(cred, dict) or "client_id" not in cred:
                return None
            client = HubClient(
                self.hub_url, cred["client_id"], cred["client_secret"], http=self.http
            )
            self._clients[province] = client
        return client

    async def aclose(self) -> None:
        await self.http.aclose()


class DossierRunner:
    """Runs dossiers to their end and reports them to the hub."""

    def __init__(
        self,
        db: Database,
        catalogue: Catalogue,
        clients: ProvinceClients,
        *,
        on_finished: Callable[[Dossier], Awaitable[None]] | None = None,
        metrics: GatewayMetrics | None = None,
        replica: str | None = None,
    ) -> None:
        self.metrics = metrics
        #: This replica, in the dossiers it claims; the same after a restart, so that a
        #: restarted gateway takes its own unfinished dossiers back at once.
        self.replica = replica or uuid.uuid4().hex
        self.db = db
        self.catalogue = catalogue
        self.clients = clients
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_finished = on_finished
        self._closing = False

    # -- scheduling ------------------------------------------------------------------

    def start(self, dossier_id: str) -> asyncio.Task[None]:
        """Run a dossier in the background (once: a second start returns the same task)."""
        task = self._tasks.get(dossier_id)
        if task is None or task.done():
            task = asyncio.create_task(self.run(dossier_id), name=f"dossier-{dossier_id}")
            self._tasks[dossier_id] = task
            task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[None]) -> None:
        for dossier_id, running in list(self._tasks.items()):
            if running is task:
                del self._tasks[dossier_id]

    async def resume_unfinished(self) -> int:
        """Start every unfinished dossier that no live replica holds (a stopped one's)."""
        now = _now()
        async with self.db.read_session() as session:
            ids = (
                await session.scalars(
                    select(Dossier.id).where(
                        Dossier.status.in_(("accepted", "running")),
                        (Dossier.claimed_until.is_(None))
                        | (Dossier.claimed_until < now)
                        | (Dossier.claimed_by == self.replica),
                    )
                )
            ).all()
        started = 0
        for dossier_id in ids:
            if dossier_id not in self._tasks:
                self.start(dossier_id)
                started += 1
        return started

    def claim_values(self) -> dict[str, Any]:
        """Columns that claim a dossier for this replica for the next ``CLAIM_SECONDS``."""
        return {
            "claimed_by": self.replica,
            "claimed_until": _now() + dt.timedelta(seconds=CLAIM_SECONDS),
        }

    async def _claim(self, dossier_id: str) -> bool:
        """Take the dossier unless another live replica holds it."""
        now = _now()
        async with self.db.write_session() as session:
            result = await session.execute(
                update(Dossier)
                .where(
                    Dossier.id == dossier_id,
                    Dossier.status.in_(("accepted", "running")),
                    (Dossier.claimed_by.is_(None))
                    | (Dossier.claimed_by == self.replica)
                    | (Dossier.claimed_until < now),
                )
                .values(**self.claim_values())
            )
            await session.commit()
        return bool(getattr(result, "rowcount", 0))

    async def close(self, grace: float = 5.0) -> None:
        """Let running dossiers finish for a moment, then stop them (they resume later)."""
        self._closing = True
        tasks = list(self._tasks.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- running ---------------------------------------------------------------------

    async def run(self, dossier_id: str) -> None:
        """Run (or resume) a dossier until it completes or fails.

        Each step costs one commit before its exchange (the step marked started, the step
        before it recorded) and the dossier's end one more: the least that keeps a restart
        able to tell a step that ran from one that may have.
        """
        async with self.db.read_session() as session:
            dossier = await session.get(Dossier, dossier_id)
            if dossier is None or dossier.status in ("completed", "failed"):
                return
            done = {
                s.step_id: s
                for s in (
                    await session.scalars(
                        select(DossierStep).where(DossierStep.dossier_id == dossier_id)
                    )
                ).all()
            }
        if not await self._claim(dossier_id):
            return  # another replica is running it
        procedure = self.catalogue.get(dossier.procedure)
        if procedure is None:
            await self._finish(dossier_id, "failed", f"procedure {dossier.procedure} is gone")
            return
        client = self.clients.get(dossier.province)
        if client is None:
            await self._finish(dossier_id, "failed", f"no credentials for {dossier.province}")
            return
        values: dict[str, str] = orjson.loads(dossier.applicant)
        outputs: dict[str, Any] = {}
        finished: _StepResult | None = None
        for position, step in enumerate(procedure.steps):
            previous = done.get(step.id)
            if previous is not None and previous.status == "ok":
                outputs[step.id] = orjson.loads(previous.output) if previous.output else None
                continue
            if previous is not None and previous.status == "failed":
                await self._finish(dossier_id, "failed", previous.error_detail or "step failed")
                return
            if previous is not None and previous.status == "started" and step.method != "GET":
                await self._finish(
                    dossier_id,
                    "failed",
                    f"step {step.id} was interrupted when the gateway stopped; "
                    "its outcome is unknown, so the dossier was not continued",
                    step=_StepResult(
                        step.id,
                        "failed",
                        error_code="interrupted",
                        detail="the gateway stopped during this step; its outcome is unknown",
                    ),
                )
                return
            try:
                rendered = render_step(
                    step, values=values, outputs=outputs, province=dossier.province
                )
            except MissingValue as exc:
                await self._finish(
                    dossier_id,
                    "failed",
                    f"step {step.id}: no value for {{{exc.args[0]}}}",
                    step=finished,
                )
                return
            await self._begin(dossier_id, position, rendered, finished)
            finished = await self._call(dossier_id, procedure.code, client, rendered)
            if finished.status != "ok":
                await self._finish(
                    dossier_id,
                    "failed",
                    f"step {step.id} ({rendered.provider}/{rendered.service}) failed: "
                    f"{finished.detail}",
                    step=finished,
                )
                return
            outputs[step.id] = finished.body
        await self._finish(
            dossier_id, "completed", None, saving=procedure.saving_vnd, step=finished
        )

    async def _call(
        self, dossier_id: str, procedure: str, client: HubClient, step: Any
    ) -> _StepResult:
        try:
            resp = await client.call(
                step.provider,
                step.service,
                step.method,
                step.path,
                json=step.body,
                procedure=procedure,
                dossier=dossier_id,
                # One W3C trace per dossier: its id is the dossier's UUID, a span per step.
                headers={"traceparent": f"00-{_trace_id(dossier_id)}-{secrets.token_hex(8)}-01"},
            )
        except TokenError as exc:
            return _StepResult(step.id, "failed", error_code="token_refused", detail=str(exc)[:500])
        except httpx.TransportError as exc:
            return _StepResult(
                step.id,
                "failed",
                error_code="hub_unreachable",
                detail=f"the hub did not answer: {type(exc).__name__}",
            )
        txid = resp.headers.get("x-transaction-id")
        body: Any = None
        if resp.headers.get("content-type", "").split(";")[0].endswith("json"):
            with contextlib.suppress(orjson.JSONDecodeError):
                body = orjson.loads(resp.content)
        if 200 <= resp.status_code < 300:
            return _StepResult(
                step.id,
                "ok",
                http_status=resp.status_code,
                outcome="ok",
                txid=txid,
                output=resp.content,
                body=body,
            )
        code = body.get("code") if isinstance(body, dict) else None
        detail = body.get("detail") if isinstance(body, dict) else None
        outcome = _hub_outcome(code, resp.status_code)
        return _StepResult(
            step.id,
            "failed",
            http_status=resp.status_code,
            outcome=outcome,
            txid=txid,
            error_code=code,
            detail=f"{resp.status_code} {code}: {detail}"[:1000],
        )

    # -- persistence -----------------------------------------------------------------

    async def _begin(
        self, dossier_id: str, position: int, step: Any, finished: _StepResult | None
    ) -> None:
        """One commit: the step before recorded, this one started, the dossier running."""
        now = _now()
        async with self.db.write_session() as session:
            if finished is not None:
                await session.execute(_step_update(dossier_id, finished, now))
            existing = await session.get(DossierStep, (dossier_id, step.id))
            if existing is None:
                session.add(
                    DossierStep(
                        dossier_id=dossier_id,
                        step_id=step.id,
                        position=position,
                        provider=step.provider,
                        service=step.service,
                        method=step.method,
                        status="started",
                        started_at=now,
                    )
                )
            else:
                existing.status = "started"
                existing.started_at = now
            await session.execute(
                update(Dossier)
                .where(Dossier.id == dossier_id)
                .values(status="running", updated_at=now, **self.claim_values())
            )
            await session.commit()

    async def _finish(
        self,
        dossier_id: str,
        status: str,
        reason: str | None,
        *,
        saving: int = 0,
        step: _StepResult | None = None,
    ) -> None:
        """One commit: the last step recorded and the dossier ended; then tell the hub."""
        now = _now()
        async with self.db.write_session() as session:
            if step is not None:
                await session.execute(_step_update(dossier_id, step, now))
            await session.execute(
                update(Dossier)
                .where(Dossier.id == dossier_id)
                .values(
                    status=status,
                    reason=reason,
                    saving_vnd=saving,
                    updated_at=now,
                    finished_at=now,
                )
            )
            await session.commit()
            dossier = await session.get(Dossier, dossier_id)
        if dossier is not None:
            log.info(
                "dossier finished",
                extra={
                    "fields": {
                        "dossier": dossier_id,
                        "trace_id": _trace_id(dossier_id),
                        "procedure": dossier.procedure,
                        "province": dossier.province,
                        "status": status,
                        "saving_vnd": saving,
                    }
                },
            )
        if self.metrics is not None and dossier is not None:
            self.metrics.finished.labels(dossier.procedure, dossier.province, status).inc()
            created = dossier.created_at
            if created.tzinfo is None:
                created = created.replace(tzinfo=dt.UTC)
            elapsed = (now - created).total_seconds()
            self.metrics.duration.labels(dossier.procedure).observe(max(0.0, elapsed))
        await self.report(dossier_id)

    async def report(self, dossier_id: str) -> bool:
        """Report a finished dossier to the hub; True once the hub has it."""
        async with self.db.read_session() as session:
            dossier = await session.get(Dossier, dossier_id)
        if dossier is None or dossier.hub_reported or dossier.status not in ("completed", "failed"):
            return dossier is not None and dossier.hub_reported
        client = await self.clients.portal()
        if client is None:
            log.warning("dossier %s not reported: the gateway has no portal credential", dossier.id)
            return False
        try:
            resp = await client.report_dossier(dossier.id, dossier.procedure, dossier.status)
        except (httpx.TransportError, TokenError) as exc:
            log.warning("dossier %s not reported to the hub yet: %s", dossier.id, exc)
            return False
        if resp.status_code not in (200, 201):
            log.warning("hub refused the report of %s: %s", dossier.id, resp.status_code)
            return False
        async with self.db.write_session() as session:
            await session.execute(
                update(Dossier).where(Dossier.id == dossier.id).values(hub_reported=True)
            )
            await session.commit()
        if self._on_finished is not None:
            await self._on_finished(dossier)
        return True

    async def report_pending(self) -> int:
        """Retry every finished dossier the hub has not taken yet."""
        async with self.db.read_session() as session:
            ids = (
                await session.scalars(
                    select(Dossier.id).where(
                        Dossier.status.in_(("completed", "failed")), Dossier.hub_reported.is_(False)
                    )
                )
            ).all()
        reported = 0
        for dossier_id in ids:
            reported += await self.report(dossier_id)
        return reported
