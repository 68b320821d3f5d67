"""The hub target against a real hub and the real simulated nodes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
import typer
from click.testing import Result
from typer.testing import CliRunner

from common.credentials import CredentialsFile
from loadtest.cli import load
from loadtest.openloop import TargetRefused
from loadtest.targets import HubTarget, SetupError, prepare_hub_target
from loadtest.traffic import load_model
from tests.loadtest.conftest import RunningNetwork, repo_env
from tests.support.hub import query


async def test_every_kind_of_exchange_the_model_draws_succeeds(network: RunningNetwork) -> None:
    spec = await prepare_hub_target(network.credentials)
    assert len(spec.tokens) == 92  # 63 provinces and 29 ministry-level bodies
    target = spec.open(worker=0, workers=1, seed=5)
    assert isinstance(target, HubTarget)
    requests = [target.request(i) for i in range(400)]
    assert {r.label for r in requests} == {k.name for k in load_model().exchanges}
    assert all(r.url.startswith(f"{network.hub.url}/exchange/") for r in requests)
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(timeout=20) as client:

        async def send(r: object) -> tuple[str, int, str]:
            async with limit:
                resp = await client.request(
                    r.method,  # type: ignore[attr-defined]
                    r.url,  # type: ignore[attr-defined]
                    headers=dict(r.headers),  # type: ignore[attr-defined]
                    content=r.body,  # type: ignore[attr-defined]
                )
                return r.label, resp.status_code, resp.text[:200]  # type: ignore[attr-defined]

        answers = await asyncio.gather(*(send(r) for r in requests))
    failures = [a for a in answers if a[1] >= 300]
    assert not failures, failures[:5]
    rows = await query(
        network.hub,
        "SELECT procedure, count(*) FROM ledger WHERE procedure IS NOT NULL GROUP BY procedure",
    )
    assert {code for code, _ in rows} >= {"1.004222", "1.003011", "2.001610"}


async def test_setup_refuses_a_hub_that_is_not_loopback(tmp_path: Path) -> None:
    creds = CredentialsFile(tmp_path / "credentials.json")
    creds.set_hub(url="http://203.0.113.5:8000", admin_token="x")
    creds.set_section("nodes_control", {"url": "http://127.0.0.1:9", "admin_token": "y"})
    creds.set_node("P01", client_id="a", client_secret="b")
    with pytest.raises(TargetRefused, match="loopback"):
        await prepare_hub_target(creds.path)
    # A configured test address is accepted (and then found not to answer).
    with pytest.raises(SetupError, match="do not answer"):
        await prepare_hub_target(creds.path, allowed_hosts=frozenset({"203.0.113.5"}))


def _load(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtest", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=repo_env(),
    )


@pytest.mark.slow
def test_ngsp_load_against_a_running_network(network: RunningNetwork, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = _load(
        "--data-dir",
        str(network.data_dir),
        "--rate",
        "60",
        "--duration",
        "3s",
        "--json",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = json.loads(out.read_text())
    counts = report["counts"]
    assert counts["scheduled"] == pytest.approx(180, abs=3)
    assert counts["ok"] == counts["completed"] == counts["scheduled"]
    assert report["achieved"]["rate"] == pytest.approx(60, rel=0.15)
    assert report["target"]["kind"] == "hub"
    assert report["generator"]["workers"] == 1
    assert report["savings"]["basis"].startswith("implied by the exchanges' procedures")
    assert report["projection"]["per_day_around_the_clock"] > 0
    assert [r["per_day"] for r in report["references"]] == [7_600, 1_600_000, 2_500_000, 5_000_000]
    assert "exchanges a day" in proc.stdout
    kinds = Counter({k: v["ok"] for k, v in report["by_kind"].items()})
    assert kinds.most_common(1)[0][0] == "citizen-check"


@pytest.mark.slow
def test_ngsp_load_finds_capacity(network: RunningNetwork, tmp_path: Path) -> None:
    out = tmp_path / "capacity.json"
    result = _cli(
        "--data-dir",
        str(network.data_dir),
        "--find-capacity",
        "--slo-p99",
        "2s",
        "--start-rate",
        "20",
        "--max-rate",
        "30",
        "--step-duration",
        "1s",
        "--json",
        str(out),
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert [s["rate"] for s in document["steps"]] == [20, 30]
    assert all(s["passed"] for s in document["steps"])
    assert document["limited_by"] == "max_rate"
    assert document["sustainable_rate"] == pytest.approx(30, rel=0.2)
    assert document["per_day_around_the_clock"] == pytest.approx(
        document["sustainable_rate"] * 86_400, rel=0.01
    )
    assert document["best"]["run"]["rate"] == 30
    assert "capacity at p99 ≤ 2000 ms" in result.stdout


def _cli(*args: str) -> Result:
    app = typer.Typer()
    app.command()(load)
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "gateway"], "no credentials in"),
        (["--target", "elsewhere"], "--target must be hub or gateway"),
        (["--duration", "forever"], "not a duration"),
        (["--duration", "25h"], "at most 24h"),
        (["--profile", "holiday"], "--profile must be one of"),
    ],
)
def test_ngsp_load_refuses_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = _cli("--data-dir", str(tmp_path), *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_ngsp_load_refuses_a_remote_hub(tmp_path: Path) -> None:
    creds = CredentialsFile(tmp_path / "credentials.json")
    creds.set_hub(url="http://198.51.100.20:8000", admin_token="x")
    creds.set_section("nodes_control", {"url": "http://127.0.0.1:9", "admin_token": "y"})
    result = _cli("--data-dir", str(tmp_path), "--rate", "10", "--duration", "1s")
    assert result.exit_code == 2
    assert "not a loopback address" in result.stderr


def test_ngsp_load_without_a_network_says_what_to_do(tmp_path: Path) -> None:
    result = _cli("--data-dir", str(tmp_path / "nothing"))
    assert result.exit_code == 2
    assert "start the network with `ngsp up`" in result.stderr


def test_the_cli_knows_every_profile() -> None:
    from loadtest import cli, profile

    assert cli._SHAPES == profile.SHAPES
