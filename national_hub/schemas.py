"""Request and response bodies of the hub's API, named by role."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator

from common.schemas import UtcDatetime
from national_hub.ledger.row import FIELDS, Part

CODE_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
DOSSIER_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

NodeKind = Literal["ministry", "province", "national_database", "portal"]
Code = Field(pattern=CODE_PATTERN, description="Letters, digits, '.', '_' or '-'; 1 to 64")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _url(value: Any) -> str:
    return str(AnyHttpUrl(str(value))).rstrip("/")


# -- registry ---------------------------------------------------------------------------


class NodeCreate(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=255)
    kind: NodeKind
    base_url: str = Field(description="Where the hub reaches the node's services")
    connected: bool = True
    enabled: bool = True

    _check_url = field_validator("base_url", mode="before")(_url)


class NodeUpdate(_Strict):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    kind: NodeKind | None = None
    base_url: str | None = None
    connected: bool | None = None
    enabled: bool | None = None

    @field_validator("base_url", mode="before")
    @classmethod
    def _check_url(cls, value: Any) -> Any:
        return None if value is None else _url(value)


class NodePublic(BaseModel):
    code: str
    name: str
    kind: str
    base_url: str | None = None
    connected: bool
    enabled: bool


class NodesPublic(BaseModel):
    items: list[NodePublic]
    count: int


class ServiceFields(_Strict):
    version: str = Field(default="v1", min_length=1, max_length=32)
    description: str = Field(default="", max_length=4000)
    base_path: str = Field(default="", max_length=255, pattern=r"^(/[A-Za-z0-9._~\-/]*)?$")
    openapi: dict[str, Any] | None = None
    enabled: bool = True


class ServiceCreate(ServiceFields):
    provider: str = Code
    code: str = Code


class ServiceUpdate(_Strict):
    version: str | None = Field(default=None, min_length=1, max_length=32)
    description: str | None = Field(default=None, max_length=4000)
    base_path: str | None = Field(default=None, max_length=255, pattern=r"^(/[A-Za-z0-9._~\-/]*)?$")
    openapi: dict[str, Any] | None = None
    enabled: bool | None = None


class ServicePublic(BaseModel):
    provider: str
    code: str
    version: str
    description: str
    base_path: str
    has_openapi: bool
    enabled: bool


class ServicesPublic(BaseModel):
    items: list[ServicePublic]
    count: int


class GrantCreate(_Strict):
    consumer: str = Code
    provider: str = Code
    service: str = Code


class GrantPublic(BaseModel):
    id: int
    consumer: str
    provider: str
    service: str


class GrantsPublic(BaseModel):
    items: list[GrantPublic]
    count: int


class CredentialPublic(BaseModel):
    client_id: str
    node: str
    created_at: UtcDatetime | None = None
    rotated_at: UtcDatetime | None = None


class CredentialsPublic(BaseModel):
    items: list[CredentialPublic]
    count: int


class CredentialCreated(BaseModel):
    """The only time a client secret is shown."""

    client_id: str
    client_secret: str
    node: str


class CredentialCreate(_Strict):
    client_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{3,128}$")
    client_secret: str | None = Field(default=None, min_length=16, max_length=256)


# -- registry documents (bootstrap file and POST /admin/registry) -----------------------


class RegistryService(ServiceFields):
    code: str = Code


class RegistryNode(NodeCreate):
    services: list[RegistryService] = Field(default_factory=list)
    credentials: list[CredentialCreate] = Field(default_factory=list)


class RegistryGrant(_Strict):
    consumer: str = Code
    provider: str = Code
    service: str = Code


class RegistryDocument(_Strict):
    """A whole registry: nodes with their services and credentials, and grants."""

    nodes: list[RegistryNode] = Field(default_factory=list)
    grants: list[RegistryGrant] = Field(default_factory=list)


class RegistryApplied(BaseModel):
    nodes: int
    services: int
    grants: int
    credentials: list[CredentialCreated]


# -- tokens -----------------------------------------------------------------------------


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str


# -- dossiers and savings ---------------------------------------------------------------


class DossierComplete(_Strict):
    procedure: str = Field(description="Procedure code from the catalogue, e.g. 1.001193")
    outcome: Literal["completed", "failed"] = "completed"


class DossierPublic(BaseModel):
    id: str
    node: str
    procedure: str
    outcome: str
    saving_vnd: int
    reported_at: dt.datetime
    counted_now: bool = Field(description="True if this call recorded it; false on a repeat")


# -- reports ----------------------------------------------------------------------------


def _transaction_fields() -> dict[str, Any]:
    """The annotations of ``TransactionPublic``: what a ledger row records (``ledger/row.py``),
    with its moments as UTC date-times."""
    fields: dict[str, Any] = {}
    for f in FIELDS:
        if f.part is Part.RECORD:
            shown = dt.datetime if f.stored.moment else f.type
            fields[f.name] = shown | None if f.nullable else shown
    return fields


class TransactionPublic(BaseModel):
    """One exchange as the ledger records it."""

    __annotations__ = _transaction_fields()


class TransactionsPage(BaseModel):
    items: list[TransactionPublic]
    next_cursor: str | None


class DailyStatsPublic(BaseModel):
    day: dt.date
    transactions: int
    successes: int
    failures: int
    procedures_completed: int
    dossiers_failed: int
    vnd_saved: int
    request_bytes: int
    response_bytes: int


class DailyStatsReport(BaseModel):
    items: list[DailyStatsPublic]
    totals: DailyStatsPublic | None


class RoleCounts(BaseModel):
    transactions: int = 0
    successes: int = 0
    failures: int = 0


class NodeStatsPublic(BaseModel):
    node: str
    as_consumer: RoleCounts
    as_provider: RoleCounts


class NodeStatsReport(BaseModel):
    since: dt.date | None
    until: dt.date | None
    items: list[NodeStatsPublic]


class ProcedureStatsPublic(BaseModel):
    procedure: str
    name: str | None
    completed: int
    failed: int
    vnd_saved: int


class ProcedureStatsReport(BaseModel):
    since: dt.date | None
    until: dt.date | None
    items: list[ProcedureStatsPublic]


class RefusalCount(BaseModel):
    """Refusals of requests from no known client, in one minute, from one source address."""

    minute: UtcDatetime
    source: str
    reason: str
    count: int


class RefusalCounts(BaseModel):
    items: list[RefusalCount]
    total: int
