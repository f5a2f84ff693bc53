"""Fixtures of the observability tests: the Prometheus tools, a fake worker, a real Prometheus."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from tests.observability.fake_worker import FakeWorker
from tests.observability.promstack import Prometheus, start_prometheus
from tests.observability.promtool_runs import PromtoolRuns

REPO = Path(__file__).resolve().parents[2]
RULE_TESTS_MODULE = Path(__file__).with_name("test_rules.py")
PROMTOOL_RUNS = pytest.StashKey[PromtoolRuns]()

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


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start promtool on the files of the selected test_rule_unit_tests_pass cases, in
    the background: the run's other core is idle (tests/observability/promtool_runs.py)."""
    promtool = shutil.which("promtool")  # missing: the `promtool` fixture fails the test
    if session.config.option.collectonly or promtool is None:
        return
    paths = [cast(Path, item.callspec.params["path"]) for item in session.items
             if isinstance(item, pytest.Function) and item.path == RULE_TESTS_MODULE
             and item.originalname == "test_rule_unit_tests_pass"]
    if paths:
        session.stash[PROMTOOL_RUNS] = PromtoolRuns(promtool, paths).start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    runs = session.stash.get(PROMTOOL_RUNS, None)
    if runs is not None:
        runs.stop()


@pytest.fixture
def promtool_runs(request: pytest.FixtureRequest, promtool: str) -> PromtoolRuns:
    """The session's background promtool runs (none started: a test runs its own file)."""
    stash = request.session.stash
    if PROMTOOL_RUNS not in stash:
        stash[PROMTOOL_RUNS] = PromtoolRuns(promtool, [])
    return stash[PROMTOOL_RUNS]


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
