"""The command line as a new user meets it: ``ngsp up`` starts and stops the network."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port
from tests.support.timing import until_sync


@pytest.mark.slow
def test_up_starts_and_stops_cleanly(tmp_path: Path) -> None:
    hub_port, nodes_port = free_port(), free_port()
    log = tmp_path / "up.log"
    data = tmp_path / "data"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ngsp",
                "up",
                "--data-dir",
                str(data),
                "--hub-port",
                str(hub_port),
                "--nodes-port",
                str(nodes_port),
                "--node-port-base",
                "0",
                "--population",
                "2000",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        until_sync(
            lambda: "ngsp-sim is up" in log.read_text() or proc.poll() is not None,
            within=120,
            interval=0.05,
            what="ngsp up starting",
        )
        output = log.read_text()
        assert proc.poll() is None, output
        assert f"http://127.0.0.1:{hub_port}" in output
        assert str((data / "credentials.json").resolve()) in output
        creds = json.loads((data / "credentials.json").read_text())
        assert len(creds["nodes"]) == 97
        assert httpx.get(f"http://127.0.0.1:{hub_port}/readyz").status_code == 200
        health = httpx.get(f"http://127.0.0.1:{nodes_port}/healthz").json()
        assert health["listening"] == 97
        # A developer's first call, with nothing but credentials.json.
        p01 = creds["nodes"]["P01"]
        token = httpx.post(
            f"http://127.0.0.1:{hub_port}/token",
            data={"grant_type": "client_credentials"},
            auth=(p01["client_id"], p01["client_secret"]),
        ).json()["access_token"]
        mine = httpx.get(
            f"http://127.0.0.1:{hub_port}/me/services",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        assert mine["count"] >= 6
    finally:
        os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()
    assert "stopping" in log.read_text()
    for port in (hub_port, nodes_port):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_hub_refuses_placeholder_secrets_in_production(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NGSP_HUB_ENVIRONMENT": "production",
        "NGSP_HUB_ADMIN_TOKEN": "change-me",
        "NGSP_HUB_SIGNING_KEY": "x" * 40,
        "NGSP_HUB_DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "-m", "ngsp", "hub", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "NGSP_HUB_ADMIN_TOKEN" in result.stderr + result.stdout
