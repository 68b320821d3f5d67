"""Gateway replicas sharing one database: a dossier is run by one replica at a time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import update

from common.db import Database, upgrade_database
from country.procedures import load_catalogue
from gateway.models import ApiKey, Dossier
from gateway.runner import DossierRunner, ProvinceClients
from gateway.runtime import MIGRATIONS


async def test_a_live_claim_keeps_other_replicas_off(tmp_path: Path) -> None:
    db = Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
    await upgrade_database(db, location=MIGRATIONS)
    clients = ProvinceClients("http://127.0.0.1:9", tmp_path / "none.json", timeout=1)
    a = DossierRunner(db, load_catalogue(), clients, replica="a" * 32)
    b = DossierRunner(db, load_catalogue(), clients, replica="b" * 32)
    now = dt.datetime.now(dt.UTC)
    async with db.write_session() as session:
        session.add(
            ApiKey(id=1, name="k", key_hash="h", prefix="p", rate_limit_per_minute=1, daily_quota=1)
        )
        await session.flush()
        session.add(
            Dossier(
                id="D1",
                api_key_id=1,
                request_hash="x",
                procedure="1.001193",
                province="P01",
                applicant="{}",
                status="accepted",
                saving_vnd=0,
                hub_reported=False,
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()
    try:
        assert await a._claim("D1")
        assert not await b._claim("D1")  # A holds it
        assert await a._claim("D1")  # A renews its own claim
        async with db.write_session() as session:  # A stops renewing: its claim runs out
            await session.execute(
                update(Dossier).values(claimed_until=now - dt.timedelta(seconds=1))
            )
            await session.commit()
        assert await b._claim("D1")
        assert not await a._claim("D1")
    finally:
        await clients.aclose()
        await db.dispose()
