"""The broker crashes and comes back: the worker reconnects by itself and ends exact.

tansu's default storage is memory, where a restart is a new, empty cluster. With S3
storage (``--storage-engine s3://BUCKET/``) topics, records and committed consumer-group
offsets are written to the bucket and a restarted broker serves them again, as a
restarted Kafka broker serves its log directory. The S3 server is moto's
(``moto[server]``, the ``test`` extra), a child process on a loopback port like the
broker and Redis.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from leadline.embedded import services
from leadline.embedded.services import Service
from tests.faults import health, start_and_send_half
from tests.support.compare import mismatches
from tests.support.worker import Pipeline, StartService, StartWorker, wait_for

pytestmark = pytest.mark.slow

DOWN_SECONDS = 8.0


def s3_server(workdir: Path, port: int | None = None) -> Service:
    """moto's S3 server (in-memory buckets) on 127.0.0.1:``port``."""
    port = port or services.free_port()
    return Service("s3 (moto)", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                 "-p", str(port)], port, workdir / "moto.log")


def s3_broker(s3: Service, bucket: str, workdir: Path, port: int | None = None) -> Service:
    """A tansu broker storing in ``s3://bucket/`` on ``s3``; same port, same data on restart.

    tansu's S3 storage reads the object-store settings from the environment (``env``
    execs tansu, so the process is tansu itself); moto accepts any credentials."""
    port = port or services.free_port()
    url = f"tcp://127.0.0.1:{port}"
    env = shutil.which("env") or "/usr/bin/env"
    return Service("broker (tansu, s3)", [
        env, "AWS_ACCESS_KEY_ID=leadline", "AWS_SECRET_ACCESS_KEY=leadline",
        "AWS_DEFAULT_REGION=us-east-1", f"AWS_ENDPOINT=http://127.0.0.1:{s3.port}",
        "AWS_ALLOW_HTTP=true",
        str(services.tansu_binary()), "broker", "--listener-url", url,
        "--advertised-listener-url", url, "--storage-engine", f"s3://{bucket}/",
    ], port, workdir / "tansu.log")


def s3_request(s3: Service, path: str, method: str = "GET") -> bytes:
    request = urllib.request.Request(f"http://127.0.0.1:{s3.port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return bytes(resp.read())


def object_count(s3: Service, bucket: str) -> int:
    """Objects in the bucket (up to 1,000: enough to tell empty from written)."""
    return int(re.search(rb"<KeyCount>(\d+)</KeyCount>",
                         s3_request(s3, f"/{bucket}?list-type=2")).group(1))  # type: ignore[union-attr]


def committed(pipeline: Pipeline) -> dict[int, int]:
    """The worker's committed offsets on its source topic, as the broker answers them
    (OffsetFetch for the worker's group, without joining it)."""
    async def fetch() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=pipeline.bootstrap,
                                    group_id=pipeline.app_id, enable_auto_commit=False)
        await consumer.start()
        try:
            return {p: offset for p in range(pipeline.partitions)
                    if (offset := await consumer.committed(TopicPartition(pipeline.topic, p)))
                    is not None}
        finally:
            await consumer.stop()
    return asyncio.run(fetch())


@pytest.fixture
def s3(start_service: StartService, tmp_path: Path) -> Service:
    """Stopped after the brokers that store in it (``start_service``: last started, first
    stopped)."""
    (tmp_path / "s3").mkdir()
    return start_service(s3_server(tmp_path / "s3"))


def test_a_restarted_broker_is_reconnected_to_and_nothing_is_lost_or_counted_twice(
    s3: Service, redis_server: Service, tmp_path: Path, start_service: StartService,
    start_worker: StartWorker,
) -> None:
    bucket = f"tansu-{uuid.uuid4().hex[:8]}"
    s3_request(s3, f"/{bucket}", method="PUT")
    (tmp_path / "broker1").mkdir()
    (tmp_path / "broker2").mkdir()
    broker = start_service(s3_broker(s3, bucket, tmp_path / "broker1"))
    pipeline = Pipeline(broker, redis_server, tmp_path)
    run = start_and_send_half(pipeline, start_worker, seed=67, events=6000)
    worker, pid, messages, truth, half = run.worker, run.pid, run.messages, run.truth, run.half
    wait_for(lambda: health(worker, "leadline_broker_up") == 1, timeout=10,
             what="leadline_broker_up 1 before the crash")
    assert object_count(s3, bucket) > 0, "tansu wrote nothing to S3"
    # A committed offset is the next one to read: over the partitions they add up to
    # the messages read once the worker's periodic commit has run.
    before = wait_for(lambda: (c := committed(pipeline)) and sum(c.values()) == half and c,
                      timeout=15, what="the first half committed")

    # A crash: SIGKILL, nothing flushed on the way out. Down ~8 s, then the same
    # port and the same bucket.
    broker.stop(signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: health(worker, "leadline_broker_up") == 0, timeout=DOWN_SECONDS,
             interval=0.2, what="leadline_broker_up 0 while the broker is down")
    seen_down = time.monotonic() - killed
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - killed)))
    assert health(worker, "leadline_broker_up") == 0, "up while nothing listens?"
    assert worker.proc.poll() is None, f"worker exited while the broker was down:\n" \
                                       f"{worker.log_tail()}"
    start_service(s3_broker(s3, bucket, tmp_path / "broker2", port=broker.port))
    back = time.monotonic()
    down = back - killed
    wait_for(lambda: health(worker, "leadline_broker_up") == 1, timeout=30, interval=0.2,
             what="leadline_broker_up 1 after the restart")
    up_after = time.monotonic() - back
    # What the broker had acknowledged before the crash is still there.
    assert committed(pipeline) == before, "committed offsets lost in the restart"

    pipeline.send(messages[half:])
    wait_for(lambda: not mismatches(worker.scrape(), truth, time.time()), timeout=60,
             what="metrics to equal the oracle after the broker restart")
    time.sleep(2)  # nothing may trickle in twice afterwards
    assert mismatches(worker.scrape(), truth, time.time()) == []
    assert worker.proc.poll() is None and worker.proc.pid == pid, "same process throughout"
    received = health(worker, "leadline_events_received_total")
    log = worker.log_path.read_text(errors="replace")
    assert log.count("Kafka broker not answering") == 1, log[-4000:]
    assert log.count("Kafka broker answering again") == 1, log[-4000:]
    print(f"broker down {down:.1f}s (broker_up 0 seen after {seen_down:.1f}s); "
          f"broker_up 1 {up_after:.1f}s after the restart; {len(messages)} messages "
          f"({half} before, {len(messages) - half} after, {received:.0f} read); oracle-exact; "
          f"{object_count(s3, bucket)} objects in S3; pid {pid} throughout")
