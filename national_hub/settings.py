"""The hub's settings: environment variables with the prefix ``NGSP_HUB_``."""

from __future__ import annotations

import json
import os
import secrets
import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.files import private_dir
from common.pki import client_context
from common.secrets import is_placeholder_secret

__all__ = ["HubSettings", "is_placeholder_secret"]


class HubSettings(BaseSettings):
    """Everything the hub can be told; the defaults run the embedded development set-up."""

    model_config = SettingsConfigDict(env_prefix="NGSP_HUB_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: Where the SQLite files, the generated secrets and ``credentials.json`` live.
    data_dir: Path = Path("ngsp-data")
    #: Defaults to a SQLite file in ``data_dir``; ``postgresql+asyncpg://...`` for PostgreSQL.
    database_url: str | None = None
    #: Required outside development; generated and kept in ``data_dir`` otherwise.
    admin_token: SecretStr | None = None
    #: HMAC key for access tokens; same rule as ``admin_token``.
    signing_key: SecretStr | None = None
    public_url: str | None = None

    token_ttl_seconds: int = Field(default=900, ge=30, le=86_400)
    provider_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_request_bytes: int = Field(default=1 << 20, ge=1)
    max_response_bytes: int = Field(default=16 << 20, ge=1)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    #: Longest pause allowed between two chunks of a request body.
    read_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_json_depth: int = Field(default=32, ge=2, le=1000)
    upstream_connections: int = Field(default=512, ge=1)
    #: Mutual TLS to providers at ``https`` URLs: the network CA's certificate (providers
    #: must present a certificate of it naming their node), and the hub's own client
    #: certificate and key. ``ngsp up`` sets them from ``<data_dir>/pki``.
    provider_ca_file: Path | None = None
    provider_cert_file: Path | None = None
    provider_key_file: Path | None = None
    #: Exchanges waiting on one provider at most; more get 503 provider_busy.
    max_in_flight_per_provider: int = Field(default=256, ge=1)
    #: Exchanges in the hub at most (per worker); more are shed with 503 hub_overloaded.
    max_in_flight: int = Field(default=2048, ge=1)
    #: Shed new exchanges while the event loop lags this much behind ...
    shed_lag_seconds: float = Field(default=0.015, gt=0)
    #: ... or while the hub's own part of recent exchanges (provider time left out,
    #: smoothed) passes this ...
    shed_added_seconds: float = Field(default=0.02, gt=0)
    #: ... with at least this many exchanges in flight (lag alone may be a passing pause)
    shed_min_in_flight: int = Field(default=64, ge=1)
    #: ... for at least this long: a passing pause is waited out, not shed (a crowd four
    #: times ``shed_min_in_flight`` is shed at once). Chosen by benchmarks/hub_capacity.py:
    #: no refusal in a soak at 80% of capacity, the least admitted latency under a flood.
    shed_sustain_seconds: float = Field(default=0.25, ge=0, le=10)
    #: Once shedding, the in-flight limit is cut while the loop lags more than this
    #: (and raised while it does not), so admitted exchanges find a loop that turns.
    shed_flood_lag_seconds: float = Field(default=0.005, gt=0)
    #: ... or the hub's own part of recent exchanges passes this (at most
    #: ``shed_added_seconds``). Chosen by benchmarks/hub_capacity.py: under a 3x flood,
    #: moving both thresholds to 20 / 10 / 6 ms gave admitted p99 72-85 / 24-28 / 16 ms,
    #: the last serving 40% fewer; then, starting at 20 ms and held to 10 ms in the flood
    #: against 20 ms in both, 26-27 against 46-64 ms, as many served (RESULTS.md).
    shed_flood_added_seconds: float = Field(default=0.010, gt=0)
    #: Consecutive provider failures that open its circuit, and how long it stays open.
    circuit_failures: int = Field(default=5, ge=1)
    circuit_open_seconds: float = Field(default=10.0, gt=0)
    #: Failed /token attempts for one client id, within the window, before it is locked.
    login_max_failures: int = Field(default=10, ge=1)
    login_window_seconds: float = Field(default=300.0, gt=0)

    #: Largest number of ledger rows written in one transaction.
    ledger_max_group: int = Field(default=2000, ge=1)
    #: SQLite ``synchronous`` pragma; FULL makes every acknowledged row survive power loss.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    #: Minutes east of UTC that define a statistics day (Vietnam: UTC+7).
    stats_utc_offset_minutes: int = Field(default=420, ge=-720, le=840)

    #: How often a replica checks the database for registry changes made on other hosts.
    registry_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    #: How often the hub probes every connected node's /healthz.
    probe_interval_seconds: float = Field(default=10.0, gt=0, le=3600)
    #: How often the statistics gauges are read from the rollups.
    stats_refresh_seconds: float = Field(default=5.0, gt=0, le=3600)

    procedures_file: Path | None = None
    registry_file: Path | None = None
    auto_migrate: bool = True
    #: Write generated node credentials to ``credentials.json`` (development only).
    write_credentials: bool = True

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> HubSettings:
        if self.environment == "development":
            return self
        for name in ("admin_token", "signing_key"):
            value: SecretStr | None = getattr(self, name)
            if value is None:
                raise ValueError(f"NGSP_HUB_{name.upper()} must be set outside development")
            raw = value.get_secret_value()
            if is_placeholder_secret(raw) or len(raw) < 32:
                raise ValueError(
                    f"NGSP_HUB_{name.upper()} is a placeholder or shorter than 32 characters; "
                    "set a random value outside development"
                )
        return self

    @model_validator(mode="after")
    def _provider_tls_complete(self) -> HubSettings:
        files = (self.provider_ca_file, self.provider_cert_file, self.provider_key_file)
        if any(f is not None for f in files) and not all(f is not None for f in files):
            raise ValueError(
                "mutual TLS to providers needs all three of NGSP_HUB_PROVIDER_CA_FILE, "
                "NGSP_HUB_PROVIDER_CERT_FILE and NGSP_HUB_PROVIDER_KEY_FILE"
            )
        return self

    def provider_tls(self) -> ssl.SSLContext | None:
        """The hub's TLS to ``https`` providers (mutual, when the files are set)."""
        if self.provider_ca_file is None or self.provider_cert_file is None:
            return None
        assert self.provider_key_file is not None
        return client_context(
            self.provider_cert_file, self.provider_key_file, self.provider_ca_file
        )

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL, defaulting to ``<data_dir>/hub.db``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'hub.db').resolve()}"

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials.json"

    def resolved(self) -> HubSettings:
        """Fill the secrets left unset in development from ``data_dir``, creating them once.

        The values are kept in ``<data_dir>/hub-secrets.json`` (mode 0600) so that a
        restart keeps tokens valid and the admin token a developer already copied.
        """
        if self.admin_token is not None and self.signing_key is not None:
            return self
        if self.environment != "development":  # pragma: no cover - the validator refuses it
            raise ValueError("secrets must be set outside development")
        private_dir(self.data_dir)
        path = self.data_dir / "hub-secrets.json"
        stored: dict[str, str] = {}
        if path.exists():
            stored = json.loads(path.read_text())
        changed = False
        for name in ("admin_token", "signing_key"):
            if name not in stored:
                stored[name] = secrets.token_urlsafe(32)
                changed = True
        if changed:
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(stored, fh)
            os.replace(tmp, path)
        update: dict[str, SecretStr] = {}
        if self.admin_token is None:
            update["admin_token"] = SecretStr(stored["admin_token"])
        if self.signing_key is None:
            update["signing_key"] = SecretStr(stored["signing_key"])
        return self.model_copy(update=update)

    def admin_token_value(self) -> str:
        assert self.admin_token is not None, "call resolved() first"
        return self.admin_token.get_secret_value()

    def signing_key_value(self) -> str:
        assert self.signing_key is not None, "call resolved() first"
        return self.signing_key.get_secret_value()
