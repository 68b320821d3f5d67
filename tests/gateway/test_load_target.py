"""The load tool's gateway target: every dossier it draws is valid, and savings are the hub's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from loadtest.targets import GatewayTargetSpec, prepare_gateway_target
from tests.gateway.conftest import Platform
from tests.support.catalogue import SYNTHETIC, SYNTHETIC_CODE, catalogue_with


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


async def test_a_procedure_new_to_the_catalogue_runs_under_load_with_no_code(
    platform_factory: Any, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    # The catalogue alone changes: the gateway, the hub and the load tool read the copy.
    procedures = catalogue_with(tmp_path / "procedures.yaml", SYNTHETIC)
    platform: Platform = platform_factory(procedures_file=procedures)
    credentials = platform.network.settings.credentials_path
    spec = await prepare_gateway_target(credentials, catalogue_path=procedures)
    target = spec.open(worker=0, workers=1, seed=9)
    completed = 0
    for i in range(400):
        request = target.request(i)
        if request.label != SYNTHETIC_CODE:
            continue
        resp = await client.request(
            request.method, request.url, headers=dict(request.headers), content=request.body
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["status"] == "completed", resp.json()["reason"]
        completed += 1
        if completed == 6:
            break
    assert completed == 6
    savings = spec.savings({})
    assert savings is not None
    assert savings.dossiers == {SYNTHETIC_CODE: 6}
    assert savings.vnd == 6 * SYNTHETIC["saving_vnd"]
