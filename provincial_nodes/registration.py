"""Registering the simulated network with the hub: nodes, services, grants, credentials.

The registry document lists every body of the roster (those not yet connected as of the
chosen date are registered but not routable), the services each offers with their
OpenAPI documents, and the grants the network starts with (``services.catalogue``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any

import httpx

from country.roster import Roster
from provincial_nodes.services.catalogue import PROVINCE, SERVICES

__all__ = ["RegistrationError", "register", "registry_document"]


class RegistrationError(RuntimeError):
    """The hub refused the registry, or could not be reached in time."""


def registry_document(
    roster: Roster,
    *,
    as_of: dt.date,
    urls: Mapping[str, str],
    openapi: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """The hub's registry document for the roster as of a date."""
    provinces = [p.code for p in roster.provinces]
    groups = {
        "provinces": provinces,
        "ministries": [m.code for m in roster.ministries],
        "databases": [d.code for d in roster.national_databases],
    }
    services: dict[str, list[dict[str, Any]]] = {code: [] for code in urls}
    grants: list[dict[str, str]] = []
    for spec in SERVICES:
        providers = provinces if spec.provider == PROVINCE else [spec.provider]
        for provider in providers:
            if provider not in services:
                continue
            services[provider].append(
                {
                    "code": spec.code,
                    "version": "v1",
                    "description": spec.description,
                    "base_path": "/" + spec.code,
                    "openapi": openapi[spec.code],
                }
            )
            consumers: set[str] = set()
            for group in spec.consumers:
                if group == "self":
                    consumers.add(provider)
                else:
                    consumers.update(c for c in groups[group] if c != provider)
            grants.extend(
                {"consumer": c, "provider": provider, "service": spec.code}
                for c in sorted(consumers)
                if c in urls
            )
    nodes = [
        {
            "code": node.code,
            "name": node.name,
            "kind": node.kind,
            "base_url": urls[node.code],
            "connected": node.lgsp_connected <= as_of,
            "services": services[node.code],
        }
        for node in roster
        if node.code in urls
    ]
    return {"nodes": nodes, "grants": grants}


async def register(
    hub_url: str, admin_token: str, document: dict[str, Any], *, wait_seconds: float = 60.0
) -> dict[str, Any]:
    """Apply the document at the hub, waiting for the hub to come up if it is starting."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    async with httpx.AsyncClient(timeout=120.0) as client:
        while True:
            try:
                resp = await client.post(
                    f"{hub_url}/admin/registry",
                    json=document,
                    headers={"Authorization": f"Bearer {admin_token}"},
                )
            except httpx.TransportError as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise RegistrationError(f"hub at {hub_url} unreachable: {exc}") from None
                await asyncio.sleep(0.5)
                continue
            if resp.status_code != 200:
                raise RegistrationError(f"hub refused the registry: {resp.status_code} {resp.text}")
            result: dict[str, Any] = resp.json()
            return result
