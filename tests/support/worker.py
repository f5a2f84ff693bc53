"""Run real ``leadline worker`` processes against the session's broker and Redis."""

from __future__ import annotations

import asyncio
import base64
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from leadline.embedded.processes import ProcessError, Samples, ServingProcess, worker_env
from leadline.embedded.services import Service, free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Pipeline:
    """One isolated pipeline: its own app id, topics and Redis keys on the shared services."""

    broker: Service
    redis: Service
    workdir: Path
    app_id: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def topic(self) -> str:
        return f"{self.app_id}-events"

    @property
    def dlq_topic(self) -> str:
        return f"{self.app_id}-dlq"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.broker.port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis.port}/0"

    def env(self, web_port: int, name: str) -> dict[str, str]:
        return worker_env(bootstrap=self.bootstrap, redis_url=self.redis_url,
                          app_id=self.app_id, topic=self.topic, dlq_topic=self.dlq_topic,
                          partitions=self.partitions, web_port=web_port,
                          data_dir=self.workdir / name,
                          settings={"LEADLINE_SESSION_TIMEOUT": "6",
                                    "LEADLINE_PUBLISH_INTERVAL": "1",
                                    "LEADLINE_SCRAPE_CACHE_SECONDS": "0",
                                    "PYTHONPATH": str(ROOT)} | self.extra_env)

    @classmethod
    def for_catalog(cls, broker: Service, redis: Service, workdir: Path,
                    **env: str) -> Pipeline:
        """A pipeline whose workers read the catalog oracle's definitions (the bundled
        ones plus its second funnel, ``tests/support/oracle_catalog.py``)."""
        from leadline.config.definitions import BUNDLED
        from tests.support.oracle_catalog import definitions_yaml

        definitions = workdir / "catalog.yaml"
        definitions.write_text(definitions_yaml(BUNDLED.read_text()), encoding="utf-8")
        return cls(broker, redis, workdir,
                   extra_env={"LEADLINE_DEFINITIONS": str(definitions), **env})

    def worker(self, name: str = "w1") -> WorkerProcess:
        return WorkerProcess(self, name)

    def send(self, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
        return asyncio.run(produce(self.bootstrap, self.topic, list(messages)))

    def read_dlq(self, want: int, timeout: float = 30.0,
                 mine: Callable[[bytes], bool] = lambda original: True) -> list[dict]:  # type: ignore[type-arg]
        """The dead-letter envelopes whose original bytes ``mine`` accepts, read from the
        start of the DLQ topic until ``want`` of them arrived or ``timeout`` passed."""

        async def read() -> list[dict]:  # type: ignore[type-arg]
            consumer = AIOKafkaConsumer(self.dlq_topic, bootstrap_servers=self.bootstrap,
                                        auto_offset_reset="earliest", enable_auto_commit=False,
                                        fetch_max_bytes=16 * 1024 * 1024)
            await consumer.start()
            out: list[dict] = []  # type: ignore[type-arg]
            try:
                deadline = time.monotonic() + timeout
                while len(out) < want and time.monotonic() < deadline:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        for r in records:
                            envelope = orjson.loads(r.value)
                            if mine(base64.b64decode(envelope["value_b64"])):
                                out.append(envelope)
            finally:
                await consumer.stop()
            return out

        return asyncio.run(read())


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5,
                                max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k) for k, v in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(messages)


class WorkerProcess(ServingProcess):
    """A ``leadline worker`` of ``pipeline`` with its own web port and log file; its
    environment is the pipeline's as it is when the worker starts. Test flavour of
    :class:`embedded.processes.ServingProcess`: a worker that exits or never gets ready
    fails the test with an ``AssertionError``; shorter scrape timeout, longer log tail."""

    def __init__(self, pipeline: Pipeline, name: str) -> None:
        argv = [sys.executable, "-m", "leadline.cli", "worker"]
        super().__init__(name=name, argv=argv, env={}, log_path=pipeline.workdir / f"{name}.log",
                         port=free_port(), cwd=pipeline.workdir)
        self.pipeline = pipeline

    def start(self) -> Self:
        self.env = self.pipeline.env(self.port, self.name)
        return super().start()

    def __enter__(self) -> Self:
        """``with pipeline.worker() as worker``: started, and stopped on the way out."""
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        return super().log_tail(lines)

    def wait_ready(self, timeout: float = 60.0) -> Self:
        try:
            self.wait_healthy(timeout, interval=0.25)
        except ProcessError as exc:
            raise AssertionError(f"worker {exc}") from None
        return self

    def scrape(self, timeout: float = 10.0) -> Samples:
        return super().scrape(timeout)


# What the factory fixtures of tests/conftest.py hand a test.
StartWorker = Callable[..., WorkerProcess]
"""``start_worker(pipeline, name="w1")``: a started worker, stopped when the test ends."""
StartService = Callable[[Service], Service]
"""``start_service(service)``: started, stopped when the test ends."""
StartServer = Callable[..., Service]
"""``start_broker(port=None)``, ``start_redis(port=None)``: the test's own, stopped
when it ends."""


def value(samples: Samples, name: str, /, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.5, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns a truthy value; fail with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def processed(samples: Samples) -> float:
    """Events this worker folded (``leadline_events_processed_total``, every name)."""
    return sum(v for (n, _), v in samples.items() if n == "leadline_events_processed_total")


def settle(worker: WorkerProcess, mismatches, truth, timeout: float) -> list[str]:  # type: ignore[no-untyped-def]
    """Poll until ``mismatches(scrape, truth, now)`` is empty; the last mismatches."""
    deadline = time.monotonic() + timeout
    while True:
        bad: list[str] = mismatches(worker.scrape(), truth, time.time())
        if not bad or time.monotonic() > deadline:
            return bad
        time.sleep(0.5)
