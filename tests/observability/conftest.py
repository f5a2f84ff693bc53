"""Fixtures of the observability tests: the Prometheus tools, a fake worker, a real Prometheus."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.observability.fake_worker import FakeWorker
from tests.observability.promstack import Prometheus, start_prometheus

REPO = Path(__file__).resolve().parents[2]

INSTALL = {
    "promtool": "apt-get update && apt-get install -y prometheus",
    "prometheus": "apt-get update && apt-get install -y prometheus",
    "amtool": "apt-get update && apt-get install -y prometheus-alertmanager",
}


def require_tool(name: str) -> str:
    """Path of a required tool; a missing one fails the test (never a silent skip)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; it is required by these tests: {INSTALL[name]}")
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_tool("amtool")


@pytest.fixture(scope="module")
def fake_worker() -> Iterator[FakeWorker]:
    worker = FakeWorker()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture(scope="module")
def prometheus(fake_worker: FakeWorker) -> Iterator[Prometheus]:
    require_tool("prometheus")
    with start_prometheus([fake_worker.target]) as prom:
        prom.wait_for_targets_up()
        yield prom
