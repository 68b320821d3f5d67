"""Several worker processes: a registry change through one is seen at once by all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.national_hub.conftest import build_network
from tests.national_hub.test_crash import SECRET, registry_file
from tests.support.asgi import InProcessApps
from tests.support.hub import InProcessHubs
from tests.support.provider import create_provider
from tests.support.servers import NgspProcess, free_port, serve, wait_http
from tests.support.timing import until

ADMIN = "workers-admin-token-0123456789abcdef"


@pytest.mark.slow
def test_registry_change_reaches_every_worker(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serve(create_provider()) as provider:
        registry = registry_file(tmp_path / "registry.yaml", provider.url)
        hub = NgspProcess(
            "hub",
            "--port",
            str(port),
            "--workers",
            "2",
            "--registry",
            str(registry),
            "--log-level",
            "warning",
            env={
                "NGSP_HUB_DATABASE_URL": database_url,
                "NGSP_HUB_DATA_DIR": str(tmp_path / "data"),
                "NGSP_HUB_ADMIN_TOKEN": ADMIN,
                "NGSP_HUB_SIGNING_KEY": "workers-signing-key-0123456789abcdef",
            },
            log=tmp_path / "hub.log",
        ).start()
        try:
            wait_http(f"{url}/readyz", proc=hub.proc)
            admin = {"Authorization": f"Bearer {ADMIN}"}

            def fresh_get(path: str, token: str) -> int:
                # A new connection each time, so requests spread over both workers.
                with httpx.Client(timeout=10) as client:
                    return client.get(
                        f"{url}{path}",
                        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
                    ).status_code

            with httpx.Client(timeout=10) as client:
                token = client.post(
                    f"{url}/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": "cons-crash",
                        "client_secret": SECRET,
                    },
                ).json()["access_token"]
                statuses = {fresh_get("/exchange/PROV/svc/echo", token) for _ in range(30)}
                assert statuses == {200}
                grants = client.get(f"{url}/admin/grants", headers=admin).json()["items"]
                deleted = client.delete(f"{url}/admin/grants/{grants[0]['id']}", headers=admin)
                assert deleted.status_code == 204
            statuses = {fresh_get("/exchange/PROV/svc/echo", token) for _ in range(30)}
            assert statuses == {403}
        finally:
            assert hub.stop() == 0, hub.output()


async def test_replicas_on_other_hosts_follow_the_database(
    tmp_path: Path, database_url: str, provider: Any, apps: InProcessApps, client: httpx.AsyncClient
) -> None:
    """Two hubs sharing only the database (as on two machines) see each other's changes."""
    replicas_a = InProcessHubs(tmp_path / "a", database_url, apps)
    replicas_b = InProcessHubs(tmp_path / "b", database_url, apps)
    try:
        hub_a = await replicas_a(registry_poll_seconds=0.2)
        hub_b = await replicas_b(registry_poll_seconds=0.2)
        net = await build_network(hub_a, provider, client)
        token = await net.token(client, "CONS")
        auth = {"Authorization": f"Bearer {token}"}
        url_b = f"{hub_b.url}/exchange/PROV/svc/echo"

        async def b_answers(status: int) -> bool:
            return (await client.get(url_b, headers=auth)).status_code == status

        # B picks the new registry up from the database.
        await until(lambda: b_answers(200), interval=0.05, what="B seeing the new grant")
        grants = (await client.get(f"{hub_a.url}/admin/grants", headers=hub_a.admin)).json()
        await client.delete(
            f"{hub_a.url}/admin/grants/{grants['items'][0]['id']}", headers=hub_a.admin
        )
        await until(lambda: b_answers(403), interval=0.05, what="B seeing the grant deleted")
    finally:
        await replicas_a.close()
        await replicas_b.close()
