"""The hub's tables: registry, ledger, dossiers and the statistics rollups.

Timestamps on the hot path are integers (microseconds since the Unix epoch, UTC) so that
a ledger row costs no datetime conversion and sorts the same on SQLite and PostgreSQL.
Money is integer VND.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import NAMING_CONVENTION
from national_hub.ledger.row import FIELDS


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Node(Base):
    """A ministry, province or national database connected (or to be) to the hub."""

    __tablename__ = "nodes"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str] = mapped_column(String(512))
    connected: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Service(Base):
    """A service a provider node offers through the hub."""

    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("provider", "code", name="uq_services_provider_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(ForeignKey("nodes.code", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32), default="v1")
    description: Mapped[str] = mapped_column(Text, default="")
    #: Path on the provider's base URL that the service's paths hang from.
    base_path: Mapped[str] = mapped_column(String(255), default="")
    #: The service's OpenAPI document (JSON text), if the provider published one.
    openapi: Mapped[str | None] = mapped_column(Text, nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Grant(Base):
    """Permission for a consumer node to call one service."""

    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint("consumer", "service_id", name="uq_grants_consumer_service"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(ForeignKey("nodes.code", ondelete="CASCADE"))
    service_id: Mapped[int] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class Credential(Base):
    """A node's OAuth2 client credentials; the secret is kept only as a hash."""

    __tablename__ = "credentials"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    node: Mapped[str] = mapped_column(ForeignKey("nodes.code", ondelete="CASCADE"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    #: Random; a new one on every creation, rotation and disabling (see ``tokens``).
    generation: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=true())
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    rotated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RegistryVersion(Base):
    """One row, incremented with every registry change: replicas reload when it moves."""

    __tablename__ = "registry_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


#: The ledger: one row per exchange, refused ones included, written in groups by the
#: ledger writer. Its columns are the row's fields, defined once (``ledger/row.py``).
ledger_table = Table(
    "ledger",
    Base.metadata,
    *(
        Column(f.name, f.stored.sql, primary_key=f.stored.primary_key, nullable=f.nullable)
        for f in FIELDS
    ),
    Index("ix_ledger_consumer_id", "consumer", "id"),
    Index("ix_ledger_provider_service_id", "provider", "service", "id"),
    Index("ix_ledger_outcome_id", "outcome", "id"),
    Index("ix_ledger_chain_seq", "chain", "seq", unique=True),
    # A completion is checked against its dossier's exchanges; most rows have no dossier,
    # so only those that do are indexed (nothing added to the hot path's other inserts).
    Index(
        "ix_ledger_dossier",
        "dossier",
        sqlite_where=text("dossier IS NOT NULL"),
        postgresql_where=text("dossier IS NOT NULL"),
    ),
)


class LedgerEntry(Base):
    """One exchange (``ledger_table``, whose columns ``ledger/row.py`` defines)."""

    __table__ = ledger_table


class LedgerChain(Base):
    """The head of each writer's hash chain, committed with the chain's rows."""

    __tablename__ = "ledger_chains"

    chain: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[int] = mapped_column(BigInteger)
    head_seq: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[str] = mapped_column(String(64))
    #: The hash recipe the chain's rows were written with (``ledger/chain.py``): one per
    #: chain, as a writer keeps one recipe. Chains from before versions existed are 1.
    hash_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))


class Dossier(Base):
    """A completed (or failed) dossier reported by the node that ran it."""

    __tablename__ = "dossiers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    procedure: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    saving_vnd: Mapped[int] = mapped_column(BigInteger)
    reported_at: Mapped[int] = mapped_column(BigInteger)


class DailyStats(Base):
    """Totals per statistics day, updated in the same transaction as the ledger rows."""

    __tablename__ = "stats_daily"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    transactions: Mapped[int] = mapped_column(BigInteger, default=0)
    successes: Mapped[int] = mapped_column(BigInteger, default=0)
    failures: Mapped[int] = mapped_column(BigInteger, default=0)
    request_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    response_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    procedures_completed: Mapped[int] = mapped_column(BigInteger, default=0)
    dossiers_failed: Mapped[int] = mapped_column(BigInteger, default=0)
    vnd_saved: Mapped[int] = mapped_column(BigInteger, default=0)


class NodeDailyStats(Base):
    """Per node and role (consumer or provider), per statistics day."""

    __tablename__ = "stats_node_daily"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    transactions: Mapped[int] = mapped_column(BigInteger, default=0)
    successes: Mapped[int] = mapped_column(BigInteger, default=0)
    failures: Mapped[int] = mapped_column(BigInteger, default=0)


class ProcedureDailyStats(Base):
    """Completed procedures and VND saved per procedure and statistics day."""

    __tablename__ = "stats_procedure_daily"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    procedure: Mapped[str] = mapped_column(String(64), primary_key=True)
    completed: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    vnd_saved: Mapped[int] = mapped_column(BigInteger, default=0)


#: Refusals of requests from no known client, counted per minute, source and reason
#: (``national_hub/refusals.py``); written by upsert only.
refusals_table = Table(
    "refusals",
    Base.metadata,
    Column("minute", BigInteger, primary_key=True, comment="Minutes since 1970-01-01 UTC"),
    Column("source", String(64), primary_key=True),
    Column("reason", String(64), primary_key=True),
    Column("count", BigInteger, nullable=False),
)
