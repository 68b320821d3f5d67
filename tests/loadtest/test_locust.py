"""The Locust file, run for real: headless, a few users, a few seconds, against the network."""

from __future__ import annotations

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loadtest.conftest import REPO, RunningNetwork, repo_env


@pytest.mark.slow
def test_a_short_headless_locust_run_succeeds(network: RunningNetwork, tmp_path: Path) -> None:
    if importlib.util.find_spec("locust") is None:  # pragma: no cover - in the dev extras
        pytest.fail("locust is not installed: pip install -e '.[dev]'")
    prefix = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(REPO / "loadtest" / "locustfile.py"),
            "--headless",
            "-u",
            "5",
            "-r",
            "5",
            "-t",
            "5s",
            "--csv",
            str(prefix),
            "--ngsp-data-dir",
            str(network.data_dir),
            "--ngsp-user-rate",
            "4",
            "--only-summary",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env=repo_env(),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(f"{prefix}_stats.csv", newline="") as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    total = rows["Aggregated"]
    assert int(total["Request Count"]) >= 10
    assert int(total["Failure Count"]) == 0
    assert "citizen-check" in rows  # statistics are grouped by kind of exchange
