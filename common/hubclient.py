"""A node's client of the hub: it gets and refreshes its token and calls services.

    async with HubClient.from_credentials("ngsp-data/credentials.json", "P01") as hub:
        resp = await hub.call("DANCU", "population", "GET", "/citizens/001203004567")

The gateway and the load tool use it too. A token is fetched on first use and again
shortly before it expires, or at once if the hub answers ``invalid_token`` (a rotated
secret, a restarted hub with a new key): the call is then retried once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from common.contract import (
    HEADER_DOSSIER,
    HEADER_PROCEDURE,
    HEADER_REQUEST_ID,
    PROBLEM_CONTENT_TYPE,
)
from common.credentials import read_credentials
from common.errors import TokenInvalid

__all__ = ["HubClient", "TokenError"]

_REFRESH_MARGIN = 30.0


class TokenError(RuntimeError):
    """The hub would not issue a token; the message carries its answer."""


class HubClient:
    """Calls services through the hub as one node."""

    def __init__(
        self,
        hub_url: str,
        client_id: str,
        client_secret: str,
        *,
        http: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.hub_url = hub_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout)
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    @classmethod
    def from_credentials(
        cls, path: str | Path, node: str, *, http: httpx.AsyncClient | None = None
    ) -> HubClient:
        """A client for ``node`` from the ``credentials.json`` that ``ngsp up`` writes."""
        doc = read_credentials(Path(path))
        try:
            hub_url = doc["hub"]["url"]
            cred = doc["nodes"][node]
        except KeyError:
            raise KeyError(f"{path} has no hub URL or no credentials for node {node}") from None
        return cls(hub_url, cred["client_id"], cred["client_secret"], http=http)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def token(self, *, refresh: bool = False) -> str:
        """A valid access token, fetched or refreshed as needed."""
        async with self._lock:
            if refresh or self._token is None or time.time() > self._expires - _REFRESH_MARGIN:
                resp = await self.http.post(
                    f"{self.hub_url}/token",
                    data={"grant_type": "client_credentials"},
                    auth=(self.client_id, self._secret),
                )
                if resp.status_code != 200:
                    raise TokenError(f"token refused: {resp.status_code} {resp.text}")
                body = resp.json()
                self._token = str(body["access_token"])
                self._expires = time.time() + float(body["expires_in"])
            return self._token

    async def report_dossier(
        self, dossier: str, procedure: str, outcome: str = "completed"
    ) -> httpx.Response:
        """Tell the hub a dossier this node ran has ended, so it counts the saving once."""
        for attempt in range(2):
            token = await self.token(refresh=attempt > 0)
            resp = await self.http.post(
                f"{self.hub_url}/dossiers/{dossier}/complete",
                json={"procedure": procedure, "outcome": outcome},
                headers={"Authorization": f"Bearer {token}"},
            )
            if resp.status_code != 401:
                break
        return resp

    async def call(
        self,
        provider: str,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        procedure: str | None = None,
        dossier: str | None = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Call ``METHOD /exchange/{provider}/{service}{path}`` as this node."""
        extra = dict(headers or {})
        if procedure:
            extra[HEADER_PROCEDURE] = procedure
        if dossier:
            extra[HEADER_DOSSIER] = dossier
        if request_id:
            extra[HEADER_REQUEST_ID] = request_id
        url = f"{self.hub_url}/exchange/{provider}/{service}/{path.lstrip('/')}"
        for attempt in range(2):
            token = await self.token(refresh=attempt > 0)
            resp = await self.http.request(
                method,
                url,
                json=json,
                params=params,
                headers={**extra, "Authorization": f"Bearer {token}"},
            )
            if resp.status_code != 401 or attempt:
                return resp
            problem = resp.headers.get("content-type", "").startswith(PROBLEM_CONTENT_TYPE)
            if problem and resp.json().get("code") != TokenInvalid.code:
                return resp
        return resp  # pragma: no cover - the loop always returns
