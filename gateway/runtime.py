"""What a running gateway holds: created by the app's lifespan, disposed when it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from common.credentials import CredentialsFile, read_credentials
from common.db import Database, upgrade_database
from country.procedures import Catalogue, load_catalogue
from country.roster import Roster, load_roster
from gateway.keys import find_key, hash_key, new_key
from gateway.level4 import Level4Model, load_level4
from gateway.metrics import GatewayMetrics
from gateway.models import ApiKey
from gateway.ratelimits import KeyLimiter
from gateway.runner import DossierRunner, Portal, ProvinceClients
from gateway.settings import GatewaySettings

__all__ = ["GatewayRuntime", "open_runtime"]

log = logging.getLogger("ngsp.gateway")

MIGRATIONS = Path(__file__).parent / "migrations"
_REPORT_RETRY_SECONDS = 5.0


@dataclass
class GatewayRuntime:
    settings: GatewaySettings
    db: Database
    limiter: KeyLimiter
    catalogue: Catalogue
    level4: Level4Model
    roster: Roster
    clients: ProvinceClients
    runner: DossierRunner
    admin_token: str
    metrics: GatewayMetrics
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _admin_token(settings: GatewaySettings, credentials: CredentialsFile) -> str:
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    stored = read_credentials(credentials.path).get("gateway", {}).get("admin_token")
    return stored if isinstance(stored, str) and stored else secrets.token_urlsafe(32)


async def _demo_key(runtime: GatewayRuntime, credentials: CredentialsFile) -> str:
    """The demo key in ``credentials.json``, created once and reused while it is valid."""
    stored = read_credentials(credentials.path).get("gateway", {}).get("demo_key")
    async with runtime.db.write_session() as session:
        if isinstance(stored, str) and await find_key(session, stored) is not None:
            return stored
        key = new_key()
        session.add(
            ApiKey(
                name="demo",
                key_hash=hash_key(key),
                prefix=key[:12],
                rate_limit_per_minute=runtime.settings.default_rate_limit_per_minute,
                daily_quota=runtime.settings.default_daily_quota,
            )
        )
        await session.commit()
    return key


def _replica_id(data_dir: Path) -> str:
    """This gateway's replica id, kept in its data directory across restarts."""
    path = data_dir / "gateway-replica.id"
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if len(value) != 32:
        value = uuid.uuid4().hex
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    return value


async def _retry_reports(runner: DossierRunner) -> None:
    """Retry hub reports, and pick up dossiers a stopped replica left behind."""
    while True:
        await asyncio.sleep(_REPORT_RETRY_SECONDS)
        try:
            await runner.report_pending()
            await runner.resume_unfinished()
        except Exception as exc:  # the database may be briefly unavailable; try again later
            log.warning("retrying hub reports failed: %s", exc)


@contextlib.asynccontextmanager
async def open_runtime(settings: GatewaySettings) -> AsyncIterator[GatewayRuntime]:
    """Connect, migrate, resume unfinished dossiers; undo on exit."""
    credentials = CredentialsFile(settings.credentials_path)
    db = Database.connect(settings.sqlalchemy_url)
    secret = settings.portal_client_secret
    clients = ProvinceClients(
        settings.hub_url,
        settings.credentials_path,
        timeout=settings.step_timeout_seconds,
        portal=Portal(
            code=settings.portal_code,
            url=f"http://{settings.host}:{settings.port}",
            client_id=settings.portal_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            register=settings.environment == "development",
        ),
    )
    limiter = KeyLimiter(settings.redis_url, prefix=settings.redis_prefix)
    try:
        await upgrade_database(db, location=MIGRATIONS)
        catalogue = load_catalogue(settings.procedures_file)
        metrics = GatewayMetrics()
        runner = DossierRunner(
            db, catalogue, clients, metrics=metrics, replica=_replica_id(settings.data_dir)
        )
        roster = load_roster("roster-2020")
        level4 = load_level4(settings.level4_file)
        metrics.set_level4(level4, {node.code: node.kind for node in roster})
        runtime = GatewayRuntime(
            settings=settings,
            db=db,
            limiter=limiter,
            catalogue=catalogue,
            level4=level4,
            roster=roster,
            clients=clients,
            runner=runner,
            admin_token=_admin_token(settings, credentials),
            metrics=metrics,
        )
        if settings.environment == "development":
            section = {
                "url": f"http://{settings.host}:{settings.port}",
                "admin_token": runtime.admin_token,
            }
            if settings.demo_key:
                section["demo_key"] = await _demo_key(runtime, credentials)
            credentials.set_section("gateway", section)
        resumed = await runner.resume_unfinished()
        if resumed:
            log.info("resuming %d unfinished dossiers", resumed)
        runtime.tasks.append(asyncio.create_task(_retry_reports(runner), name="hub-reports"))
        try:
            yield runtime
        finally:
            for task in runtime.tasks:
                task.cancel()
            for task in runtime.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runner.close()
    finally:
        await clients.aclose()
        await limiter.close()
        await db.dispose()
