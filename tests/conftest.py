"""Real services for the tests, and factories for what a test starts itself.

Session-wide: a tansu broker and a Redis server on free loopback ports. Tests isolate
themselves by app id and topic names (see ``tests/support/worker.py``), so one broker
and one Redis serve the whole run, and both always stop.

A test that needs more (a worker, a second broker, a Redis it kills, a sender thread)
asks for a factory: ``start_worker``, ``start_service``, ``start_broker``,
``start_redis``, ``at_teardown``. What a factory started is stopped when the test ends,
passed or failed: first what ``at_teardown`` holds (threads), then the workers, then the
services, each group last started first. A test may stop or kill anything earlier;
stopping twice is harmless.

Markers: a test that uses a real service (one of ``SERVICE_FIXTURES``, directly or
through another fixture) is marked ``services``, and every ``services`` test is also
``slow``, so ``pytest -m "not slow"`` (``make test-fast``) runs without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from leadline.embedded import services

if TYPE_CHECKING:
    from tests.support.worker import (
        Pipeline,
        StartServer,
        StartService,
        StartWorker,
        WorkerProcess,
    )

pytest_plugins = ["pytester"]  # tests/test_conftest.py runs these fixtures in a session of its own

#: Fixtures that run a real broker, Redis, worker process or Prometheus.
SERVICE_FIXTURES = frozenset({
    "broker", "redis_server", "start_service", "start_broker", "start_redis", "start_worker",
    "prometheus",  # tests/observability/conftest.py
})


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = set(callspec.params) if callspec is not None else set()  # a parameter
        used = set(getattr(item, "fixturenames", ())) - params  # named like a fixture isn't one
        if used & SERVICE_FIXTURES:
            item.add_marker(pytest.mark.services)
        if item.get_closest_marker("services") is not None:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Service]:
    with services.broker(workdir=tmp_path_factory.mktemp("broker")) as svc:
        yield svc


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Service]:
    with services.redis(workdir=tmp_path_factory.mktemp("redis")) as svc:
        yield svc


@pytest.fixture
def _started_services() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def _started_workers(_started_services: ExitStack) -> Iterator[ExitStack]:
    with ExitStack() as stack:  # torn down before the services the workers use
        yield stack


@pytest.fixture
def at_teardown(_started_workers: ExitStack) -> Iterator[ExitStack]:
    """Callbacks (``at_teardown.callback(sender.finish)``) run when the test ends, before
    its workers and services stop."""
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def start_service(_started_services: ExitStack) -> StartService:
    """``start_service(service)``: started now (it listens), stopped when the test ends."""

    def start(service: services.Service) -> services.Service:
        return _started_services.enter_context(service)

    return start


def _new_dir(parent: Path, stem: str) -> Path:
    n = 1
    while (parent / f"{stem}{n}").exists():
        n += 1
    path = parent / f"{stem}{n}"
    path.mkdir()
    return path


@pytest.fixture
def start_broker(start_service: StartService, tmp_path: Path) -> StartServer:
    """``start_broker(port=None)``: a broker of the test's own (memory storage, its own
    work dir ``tmp_path/brokerN``), stopped when the test ends."""

    def start(port: int | None = None) -> services.Service:
        return start_service(services.broker(port, _new_dir(tmp_path, "broker")))

    return start


@pytest.fixture
def start_redis(start_service: StartService, tmp_path: Path) -> StartServer:
    """``start_redis(port=None)``: a Redis of the test's own (work dir
    ``tmp_path/redisN``), stopped when the test ends."""

    def start(port: int | None = None) -> services.Service:
        return start_service(services.redis(port, _new_dir(tmp_path, "redis")))

    return start


@pytest.fixture
def start_worker(_started_workers: ExitStack) -> StartWorker:
    """``start_worker(pipeline, name="w1")``: a ``leadline worker`` process of
    ``pipeline``, started now (``.wait_ready()`` is the test's), stopped when the test
    ends (SIGTERM, then SIGKILL)."""

    def start(pipeline: Pipeline, name: str = "w1") -> WorkerProcess:
        return _started_workers.enter_context(pipeline.worker(name))

    return start
