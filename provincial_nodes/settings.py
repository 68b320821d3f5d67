"""The nodes process's settings: environment variables with the prefix ``NGSP_NODES_``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["NodesSettings"]


class NodesSettings(BaseSettings):
    """How the simulated network is served and registered; defaults run the embedded set-up."""

    model_config = SettingsConfigDict(env_prefix="NGSP_NODES_", extra="ignore")

    host: str = "127.0.0.1"
    #: The control API (node list, fault injection, health).
    port: int = Field(default=8100, ge=0, le=65535)
    #: The host name the hub should use to reach the nodes (default: ``host``); set it when
    #: the nodes listen on 0.0.0.0 in a container.
    advertised_host: str | None = None
    #: Each node listens on its own port, from this one up, in roster order. 0: any free port.
    node_port_base: int = Field(default=8101, ge=0, le=65535)
    data_dir: Path = Path("ngsp-data")
    #: Defaults to ``<data_dir>/nodes.db``.
    database_url: str | None = None
    roster: str = "roster-2020"
    #: Connection state as of this date (default: today, so every body is connected).
    as_of: dt.date | None = None
    population_size: int = Field(default=100_000, ge=10, le=100_000_000)
    seed: int = 20200731
    #: Reference date of the synthetic population (ages are computed from it).
    reference_date: dt.date = dt.date(2026, 1, 1)

    #: A PKI folder (``common.pki``): every node serves TLS with a certificate naming its
    #: code, issued there as it registers, and accepts only the hub's client certificate.
    #: Unset: plain HTTP, open to anyone who reaches the port (development only).
    tls_dir: Path | None = None

    #: The public service portal (the gateway's identity at the hub, the one node that may
    #: report completed dossiers), registered with the network when its secret is set: a
    #: deployment's operator chooses it and gives the gateway the same pair.
    portal_code: str = "DVCQG"
    portal_url: str | None = None
    portal_client_id: str = "dvcqg-portal"
    portal_client_secret: SecretStr | None = None

    hub_url: str = "http://127.0.0.1:8000"
    #: The hub's admin token; read from ``credentials.json`` when unset.
    hub_admin_token: SecretStr | None = None
    register_with_hub: bool = True
    #: Guards the control API's fault injection; generated into ``credentials.json`` if unset.
    admin_token: SecretStr | None = None

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'nodes.db').resolve()}"

    @property
    def credentials_path(self) -> Path:
        return self.data_dir / "credentials.json"

    def effective_as_of(self) -> dt.date:
        return self.as_of or dt.date.today()
