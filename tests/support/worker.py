"""Run real ``leadline worker`` processes against the session's broker and Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from embedded.services import Service, free_port

ROOT = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


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
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEADLINE_")}
        env.update({
            "LEADLINE_BROKER": f"kafka://{self.bootstrap}",
            "LEADLINE_REDIS_URL": self.redis_url,
            "LEADLINE_APP_ID": self.app_id,
            "LEADLINE_TOPIC": self.topic,
            "LEADLINE_DLQ_TOPIC": self.dlq_topic,
            "LEADLINE_PARTITIONS": str(self.partitions),
            "LEADLINE_WEB_PORT": str(web_port),
            "LEADLINE_DATA_DIR": str(self.workdir / name),
            "LEADLINE_SESSION_TIMEOUT": "6",
            "LEADLINE_PUBLISH_INTERVAL": "1",
            "LEADLINE_SCRAPE_CACHE_SECONDS": "0",
            "PYTHONPATH": str(ROOT),
        })
        env.update(self.extra_env)
        return env

    def worker(self, name: str = "w1") -> WorkerProcess:
        return WorkerProcess(self, name)

    def send(self, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
        return asyncio.run(produce(self.bootstrap, self.topic, list(messages)))


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


class WorkerProcess:
    """A ``leadline worker`` subprocess with its own web port and log file."""

    def __init__(self, pipeline: Pipeline, name: str) -> None:
        self.pipeline = pipeline
        self.name = name
        self.port = free_port()
        self.log_path = pipeline.workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from cli.main import main; main()", "worker"],
                env=self.pipeline.env(self.port, self.name), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.pipeline.workdir),
            )
        return self

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 60.0) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited {self.proc.returncode}:\n"
                                     f"{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        raise AssertionError(f"worker {self.name} not ready in {timeout}s:\n{self.log_tail()}")

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.url("/metrics"), timeout=10) as resp:
            text = resp.read().decode()
        out: Samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def value(samples: Samples, name: str, **labels: str) -> float:
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
