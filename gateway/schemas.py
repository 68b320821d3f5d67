"""Request and response bodies of the gateway's API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from common.schemas import UtcDatetime

__all__ = [
    "DossierCreate",
    "DossierPublic",
    "DossiersPublic",
    "KeyCreate",
    "KeyCreated",
    "KeyPublic",
    "KeyUpdate",
    "KeysPublic",
    "Level4Report",
    "ProcedurePublic",
    "ProceduresPublic",
    "StepPublic",
]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    daily_quota: int | None = Field(default=None, ge=1, le=1_000_000_000)


class KeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=128)
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    daily_quota: int | None = Field(default=None, ge=1, le=1_000_000_000)


class KeyPublic(BaseModel):
    id: int
    name: str
    prefix: str
    rate_limit_per_minute: int
    daily_quota: int
    created_at: UtcDatetime | None
    revoked: bool


class KeyCreated(KeyPublic):
    """The only time the key itself is shown."""

    key: str


class KeysPublic(BaseModel):
    items: list[KeyPublic]
    count: int


class DossierCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    procedure: str = Field(description="Procedure code, e.g. 1.001022", max_length=16)
    province: str = Field(description="The receiving province: P01 or 01", max_length=8)
    applicant: dict[str, Any] = Field(description="The data the procedure asks for")


class StepPublic(BaseModel):
    id: str
    provider: str
    service: str
    method: str
    status: str
    http_status: int | None
    outcome: str | None
    transaction_id: str | None
    error_code: str | None
    error_detail: str | None
    started_at: UtcDatetime
    finished_at: UtcDatetime | None


class DossierPublic(BaseModel):
    id: str
    procedure: str
    procedure_name: str | None
    province: str
    status: str = Field(description="accepted, running, completed or failed")
    reason: str | None
    saving_vnd: int
    reported_to_hub: bool
    created_at: UtcDatetime
    finished_at: UtcDatetime | None
    steps: list[StepPublic]


class DossiersPublic(BaseModel):
    items: list[DossierPublic]
    count: int


class ProcedurePublic(BaseModel):
    code: str
    name: str
    name_en: str
    authority: str
    saving_vnd: int
    exchanges: int
    applicant: dict[str, dict[str, Any]]
    level4: str | list[str]


class ProceduresPublic(BaseModel):
    items: list[ProcedurePublic]
    count: int


class Level4Report(BaseModel):
    month: str
    offer_as_of: dt.date
    national_level4_share: float
    national_online_completion_share: float | None
    bodies: list[Any]
    province_ranking: list[Any]
