"""The gateway's tables: API keys, dossiers and their steps."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from common.db import NAMING_CONVENTION

__all__ = ["ApiKey", "Base", "Dossier", "DossierStep"]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ApiKey(Base):
    """A developer's API key; the key itself is kept only as a hash."""

    __tablename__ = "gw_api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    #: The first characters of the key, to tell keys apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    rate_limit_per_minute: Mapped[int] = mapped_column(Integer)
    daily_quota: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Dossier(Base):
    """An administrative procedure submitted through the gateway."""

    __tablename__ = "gw_dossiers"
    __table_args__ = (
        UniqueConstraint("api_key_id", "idempotency_key", name="uq_gw_dossiers_key_idempotency"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("gw_api_keys.id"), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: SHA-256 of the submitted body: a retry with other content is refused.
    request_hash: Mapped[str] = mapped_column(String(64))
    procedure: Mapped[str] = mapped_column(String(16), index=True)
    province: Mapped[str] = mapped_column(String(8), index=True)
    applicant: Mapped[str] = mapped_column(Text)
    #: accepted, running, completed or failed.
    status: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    saving_vnd: Mapped[int] = mapped_column(BigInteger, default=0)
    hub_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The gateway replica running the dossier, and until when its claim holds: a replica
    #: resumes only dossiers no live replica holds.
    claimed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )


class DossierStep(Base):
    """One exchange of a dossier, recorded before it starts and when it ends."""

    __tablename__ = "gw_dossier_steps"

    dossier_id: Mapped[str] = mapped_column(
        ForeignKey("gw_dossiers.id", ondelete="CASCADE"), primary_key=True
    )
    step_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    #: started, ok or failed.
    status: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The step's JSON answer, which later steps may refer to.
    output: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
