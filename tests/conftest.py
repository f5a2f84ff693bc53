"""Session-wide real services: a tansu broker and a Redis server on free loopback ports.

Tests isolate themselves by app id and topic names (see ``tests/support/worker.py``),
so one broker and one Redis serve the whole run, and both always stop.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leadline.embedded import services


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Service]:
    with services.broker(workdir=tmp_path_factory.mktemp("broker")) as svc:
        yield svc


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.Service]:
    with services.redis(workdir=tmp_path_factory.mktemp("redis")) as svc:
        yield svc
