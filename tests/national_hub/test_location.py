"""A provider's ``Location`` never shows a consumer the provider's internal address."""

from __future__ import annotations

import httpx
import pytest

from national_hub.exchange import hub_location
from national_hub.paths import PathTemplates
from national_hub.registry import ServiceInfo
from tests.national_hub.conftest import Network


def _service(upstream: str) -> ServiceInfo:
    return ServiceInfo(
        id=1,
        provider="PROV",
        code="svc",
        version="v1",
        description="",
        upstream=upstream,
        enabled=True,
        has_openapi=False,
        templates=PathTemplates([]),
    )


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("https://10.1.2.3:8101/svc/citizens/42", "/exchange/PROV/svc/citizens/42"),
        ("https://10.1.2.3:8101/svc", "/exchange/PROV/svc"),
        ("/svc/citizens/42", "/exchange/PROV/svc/citizens/42"),
        ("https://10.1.2.3:8101/internal", None),
        ("https://10.1.2.3:8101/svcx/1", None),
        ("http://elsewhere.example/svc/1", None),
        ("//10.1.2.3:8101/svc/1", None),
        ("/internal", None),
        ("citizens/42", "citizens/42"),
    ],
)
def test_locations_are_rewritten_or_dropped(location: str, expected: str | None) -> None:
    assert hub_location(location, _service("https://10.1.2.3:8101/svc")) == expected


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("self", "/exchange/PROV/svc/citizens/42"),
        ("absolute-path", "/exchange/PROV/svc/citizens/42"),
        ("relative", "citizens/42"),
        ("root", None),
        ("elsewhere", None),
    ],
)
async def test_the_consumer_sees_the_hubs_location(
    network: Network, client: httpx.AsyncClient, to: str, expected: str | None
) -> None:
    token = await network.token(client, "CONS")
    resp = await client.get(
        f"{network.hub.url}/exchange/PROV/svc/located",
        params={"to": to},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 201
    assert resp.headers.get("location") == expected
    assert network.provider.url.split("//")[1] not in str(resp.headers)
