"""Refusals that cost no fsync each: strangers cannot fill the ledger.

The attack: requests with no credentials, or forged ones, or an unknown client id, each
used to leave a durable, unremovable ledger row. Now they are counted per minute, source
and reason, in a few rows; refusals of known clients stay rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.national_hub.conftest import Network, build_network, query

STRANGERS = 600


@pytest.fixture
async def served(
    served_hub_factory: Any, provider: Any
) -> AsyncIterator[tuple[Network, httpx.AsyncClient]]:
    """A real hub server (SQLite, then PostgreSQL) and a client over real sockets."""
    hub = served_hub_factory()
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield await build_network(hub, provider, client), client


async def _ledger_rows(network: Network) -> int:
    return int((await query(network.hub, "SELECT count(*) FROM ledger"))[0][0])


async def test_refusals_of_strangers_are_counted_not_written(
    served: tuple[Network, httpx.AsyncClient],
) -> None:
    network, client = served
    hub = network.hub
    before = await _ledger_rows(network)
    url = f"{hub.url}/exchange/PROV/svc/echo"
    forged = {"Authorization": "Bearer eyJhbGciOiJub25lIn0.e30."}

    async def burst(n: int) -> None:
        for i in range(n):
            headers = forged if i % 3 == 0 else {}
            assert (await client.get(url, headers=headers)).status_code == 401

    await asyncio.gather(*(burst(STRANGERS // 6) for _ in range(6)))
    unknown = await client.post(
        f"{hub.url}/token", data={"grant_type": "client_credentials"}, auth=("nobody", "wrong")
    )
    assert unknown.status_code == 401
    no_admin = await client.get(f"{hub.url}/admin/nodes")
    assert no_admin.status_code == 401

    assert await _ledger_rows(network) == before  # not one durable row for a stranger
    counts = (await client.get(f"{hub.url}/stats/refusals", params={"minutes": 5})).json()
    assert counts["total"] == STRANGERS + 2
    by_reason: dict[str, int] = {}
    for item in counts["items"]:
        assert item["source"] == "127.0.0.1"
        by_reason[item["reason"]] = by_reason.get(item["reason"], 0) + item["count"]
    forged_count = 6 * len(range(0, STRANGERS // 6, 3))
    assert by_reason == {
        "missing_token": STRANGERS - forged_count,
        "invalid_token": forged_count,
        "invalid_client": 1,
        "invalid_admin_token": 1,
    }
    assert len(counts["items"]) <= 8  # a few rows: per minute and reason, not per request


async def test_refusals_of_known_clients_stay_rows(
    served: tuple[Network, httpx.AsyncClient],
) -> None:
    network, client = served
    hub = network.hub
    token = await network.token(client, "OTHER")  # a known node, with no grant
    before = await _ledger_rows(network)
    refused = await client.get(
        f"{hub.url}/exchange/PROV/svc/echo", headers={"Authorization": f"Bearer {token}"}
    )
    assert refused.status_code == 403
    cred = network.credentials["CONS"]
    wrong = await client.post(
        f"{hub.url}/token",
        data={"grant_type": "client_credentials"},
        auth=(cred["client_id"], "not-the-secret"),
    )
    assert wrong.status_code == 401
    assert await _ledger_rows(network) == before + 2
