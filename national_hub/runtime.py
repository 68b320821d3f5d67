"""What a running hub holds: created by the app's lifespan, disposed when it ends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from common.credentials import CredentialsFile
from common.db import Database
from common.http1 import Http1Client
from country.procedures import Catalogue, load_catalogue
from national_hub.admission import LagMonitor, LoadShedder
from national_hub.ledger.writer import LedgerWriter
from national_hub.metrics import HubMetrics
from national_hub.migrations import upgrade as upgrade_hub_schema
from national_hub.monitor import probe_nodes, refresh_stats
from national_hub.refusals import RefusalCounter
from national_hub.registry import RegistryCache, SharedGeneration
from national_hub.resilience import (
    CircuitBreakers,
    InFlight,
    LoginThrottle,
)
from national_hub.settings import HubSettings
from national_hub.tokens import TokenService

__all__ = ["Runtime", "open_runtime"]


@dataclass
class Runtime:
    settings: HubSettings
    db: Database
    registry: RegistryCache
    tokens: TokenService
    ledger: LedgerWriter
    #: For forwarding exchanges (the hot path's client, with the provider timeout and the
    #: hub's TLS to providers) and for the node probes.
    upstream: Http1Client
    catalogue: Catalogue
    credentials: CredentialsFile | None
    metrics: HubMetrics
    circuits: CircuitBreakers
    in_flight: InFlight
    shedder: LoadShedder
    logins: LoginThrottle
    #: Refusals of unknown senders, written in aggregate (``refusals``).
    refusals: RefusalCounter


@contextlib.asynccontextmanager
async def open_runtime(settings: HubSettings) -> AsyncIterator[Runtime]:
    """Connect, migrate, load the registry and start the ledger writer; undo on exit."""
    settings = settings.resolved()
    catalogue = load_catalogue(settings.procedures_file)
    metrics = HubMetrics()
    db = Database.connect(settings.sqlalchemy_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        if settings.auto_migrate:
            await upgrade_hub_schema(db)
        registry = RegistryCache(
            db.read_session,
            SharedGeneration(settings.data_dir / "registry.gen"),
            poll_seconds=settings.registry_poll_seconds,
        )
        await registry.start()
        ledger = LedgerWriter.for_database(
            db.writer,
            db.url,
            max_group=settings.ledger_max_group,
            stats_offset_minutes=settings.stats_utc_offset_minutes,
            sqlite_synchronous=settings.sqlite_synchronous,
            on_group=metrics.ledger_group_committed,
            on_failure=metrics.ledger_failures.inc,
            on_depth=metrics.ledger_queue.set,
        )
        await ledger.start()
        credentials = (
            CredentialsFile(settings.credentials_path)
            if settings.environment == "development" and settings.write_credentials
            else None
        )
        if credentials is not None:
            credentials.set_hub(
                url=settings.public_url or f"http://{settings.host}:{settings.port}",
                admin_token=settings.admin_token_value(),
            )
        runtime = Runtime(
            settings=settings,
            db=db,
            registry=registry,
            tokens=TokenService(settings.signing_key_value(), settings.token_ttl_seconds),
            ledger=ledger,
            upstream=Http1Client(
                limit=settings.upstream_connections,
                timeout=settings.provider_timeout_seconds,
                ssl_context=settings.provider_tls(),
            ),
            catalogue=catalogue,
            credentials=credentials,
            metrics=metrics,
            circuits=CircuitBreakers(
                failure_threshold=settings.circuit_failures,
                open_seconds=settings.circuit_open_seconds,
                on_change=lambda provider, state: metrics.circuit.labels(provider).set(state),
            ),
            in_flight=InFlight(per_provider=settings.max_in_flight_per_provider),
            shedder=LoadShedder(
                max_in_flight=settings.max_in_flight,
                lag_threshold=settings.shed_lag_seconds,
                min_in_flight_to_shed=settings.shed_min_in_flight,
                added_threshold=settings.shed_added_seconds,
                sustain_seconds=settings.shed_sustain_seconds,
                flood_lag_threshold=settings.shed_flood_lag_seconds,
                flood_added_threshold=settings.shed_flood_added_seconds,
                lag=LagMonitor(on_sample=metrics.loop_lag.set),
                on_limit=metrics.admission_limit.set,
            ),
            logins=LoginThrottle(
                max_failures=settings.login_max_failures,
                window_seconds=settings.login_window_seconds,
            ),
            refusals=RefusalCounter(db.writer),
        )
        runtime.refusals.start()
        metrics.admission_limit.set(runtime.shedder.limit)
        runtime.shedder.lag.start()
        monitors = [
            asyncio.create_task(
                probe_nodes(
                    registry, runtime.upstream, metrics, interval=settings.probe_interval_seconds
                ),
                name="node-probes",
            ),
            asyncio.create_task(
                refresh_stats(
                    db.read_session,
                    metrics,
                    offset_minutes=settings.stats_utc_offset_minutes,
                    interval=settings.stats_refresh_seconds,
                ),
                name="stats-gauges",
            ),
        ]
        try:
            yield runtime
        finally:
            await runtime.shedder.lag.stop()
            for task in monitors:
                task.cancel()
            for task in monitors:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runtime.refusals.stop()
            await ledger.stop()
            await runtime.upstream.close()
            await registry.stop()
    finally:
        await db.dispose()
