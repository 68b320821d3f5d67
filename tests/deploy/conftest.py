"""Fixtures for the deploy stack: the Prometheus tools (Debian's ``prometheus`` package)."""

from __future__ import annotations

import pytest

from tests.deploy.support import require_tool


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_tool("prometheus")
