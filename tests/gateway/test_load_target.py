"""The load tool's gateway target: every dossier it draws is valid, and savings are the hub's."""

from __future__ import annotations

import httpx

from loadtest.targets import GatewayTargetSpec, prepare_gateway_target
from tests.gateway.conftest import Platform


async def test_gateway_target_draws_dossiers_that_complete(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    credentials = platform.network.settings.credentials_path
    spec = await prepare_gateway_target(credentials)
    assert isinstance(spec, GatewayTargetSpec)
    target = spec.open(worker=0, workers=1, seed=5)
    completed = 0
    procedures = set()
    for i in range(24):
        request = target.request(i)
        resp = await client.request(
            request.method, request.url, headers=dict(request.headers), content=request.body
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["status"] == "completed", resp.json()["reason"]
        completed += 1
        procedures.add(request.label)
    assert len(procedures) >= 4  # the mix reaches most procedures
    savings = spec.savings({})
    assert savings is not None
    assert savings.vnd == completed * 30_500
    assert sum(savings.dossiers.values()) == completed
