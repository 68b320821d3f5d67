"""The gateway's settings: environment variables with the prefix ``NGSP_GATEWAY_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.secrets import is_placeholder_secret

__all__ = ["GatewaySettings"]


class GatewaySettings(BaseSettings):
    """Defaults run the embedded development set-up beside ``ngsp up``."""

    model_config = SettingsConfigDict(env_prefix="NGSP_GATEWAY_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    data_dir: Path = Path("ngsp-data")
    #: Defaults to ``<data_dir>/gateway.db``.
    database_url: str | None = None
    hub_url: str = "http://127.0.0.1:8000"
    #: Where the provinces' client credentials are (the gateway acts as each province).
    credentials_file: Path | None = None
    #: ``redis://host:port/db``: share rate-limit counters with every gateway replica.
    redis_url: str | None = None
    #: Prefix of the counters in Redis: one per deployment sharing a Redis server.
    redis_prefix: str = Field(default="ngsp-gw", pattern=r"^[A-Za-z0-9:_-]{1,64}$")
    #: The gateway's own identity at the hub: the public service portal, the one node kind
    #: allowed to report completed dossiers (the savings). In development the gateway
    #: registers it with the hub's admin token from ``credentials.json``; in production the
    #: operator registers the node and sets its client id and secret here.
    portal_code: str = Field(default="DVCQG", pattern=r"^[A-Z0-9_-]{1,64}$")
    portal_client_id: str | None = None
    portal_client_secret: SecretStr | None = None
    #: Guards the admin API (API keys); generated into ``credentials.json`` in development.
    admin_token: SecretStr | None = None
    default_rate_limit_per_minute: int = Field(default=600, ge=1)
    default_daily_quota: int = Field(default=100_000, ge=1)
    #: Dossier steps that take longer than this fail the step (the hub's own timeout is 10 s).
    step_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    procedures_file: Path | None = None
    level4_file: Path | None = None
    #: Create a demo key at start and write it to ``credentials.json`` (development only).
    demo_key: bool = True

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> GatewaySettings:
        if self.environment == "development":
            return self
        if self.admin_token is None:
            raise ValueError("NGSP_GATEWAY_ADMIN_TOKEN must be set outside development")
        raw = self.admin_token.get_secret_value()
        if is_placeholder_secret(raw) or len(raw) < 32:
            raise ValueError(
                "NGSP_GATEWAY_ADMIN_TOKEN is a placeholder or shorter than 32 characters"
            )
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'gateway.db').resolve()}"

    @property
    def credentials_path(self) -> Path:
        return self.credentials_file or self.data_dir / "credentials.json"
