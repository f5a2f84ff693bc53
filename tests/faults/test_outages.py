"""Outages of the services a worker depends on: Redis killed and restarted empty, the
broker stalled. The worker must ride them out in the same process and end oracle-exact.

A broker *restart* needs durable storage, which the default embedded broker (tansu 0.6,
memory) lacks: ``test_broker_restart.py`` runs tansu on S3 storage for it. A stalled
broker is tested here: SIGSTOP keeps its sockets open and silent, the harder case for a
client, then SIGCONT.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from leadline.aggregators.indicators import Indicators
from leadline.config.definitions import load_definitions
from leadline.embedded.processes import parse_metrics
from leadline.embedded.services import Service
from leadline.serving.exposition import MetricsEndpoint
from leadline.serving.health import Health
from leadline.serving.view import ServingView
from tests.faults import health, processed, start_and_send_half
from tests.support.compare import mismatches
from tests.support.worker import Pipeline, StartServer, StartWorker, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def own_redis(start_redis: StartServer) -> Service:
    return start_redis()


def redis_scrape(pipeline: Pipeline) -> dict:  # type: ignore[type-arg]
    """The product metrics as a worker owning no partition computes them: from Redis only."""

    async def render() -> bytes:
        redis = Redis.from_url(pipeline.redis_url)
        try:
            view = ServingView(redis, f"{pipeline.app_id}:v1", pipeline.partitions)
            endpoint = MetricsEndpoint(view, Indicators(load_definitions()), Health("test"), 0)
            return await endpoint.render()
        finally:
            await redis.aclose()

    return parse_metrics(asyncio.run(render()).decode())


def test_redis_killed_then_restarted_empty(
    broker: Service, own_redis: Service, tmp_path: Path, start_redis: StartServer,
    start_worker: StartWorker,
) -> None:
    pipeline = Pipeline(broker, own_redis, tmp_path)
    run = start_and_send_half(pipeline, start_worker, seed=43, events=8000)
    worker, pid, messages, truth, half = run.worker, run.pid, run.messages, run.truth, run.half
    assert health(worker, "leadline_redis_up") == 1
    own_redis.stop(signal.SIGKILL)
    # Down: /metrics still answers and says so; consuming goes on.
    wait_for(lambda: health(worker, "leadline_redis_up") == 0, timeout=10, interval=0.2,
             what="leadline_redis_up 0")
    before = processed(worker)
    pipeline.send(messages[half:])
    wait_for(lambda: processed(worker) > before, timeout=30, what="processing without Redis")
    wait_for(lambda: health(worker, "leadline_events_received_total") == len(messages),
             timeout=30, what="second half read while Redis is down")
    assert health(worker, "leadline_redis_up") == 0
    # Back, empty, on the same port: the view is whole again within 10 s.
    start_redis(port=own_redis.port)
    back = time.monotonic()
    # (the worker's own /metrics reads the partitions it owns from memory: what
    # another worker would show is what Redis holds)
    wait_for(lambda: not mismatches(redis_scrape(pipeline), truth, time.time()),
             timeout=10, interval=0.2, what="the serving view in Redis whole again")
    healed = time.monotonic() - back
    print(f"serving view whole {healed:.1f}s after Redis came back empty")
    assert health(worker, "leadline_redis_up") == 1
    assert not mismatches(worker.scrape(), truth, time.time())
    assert worker.proc.poll() is None and worker.proc.pid == pid, "no restart, no crash loop"
    assert health(worker, "leadline_view_rebuilds_total") >= 1


def test_a_stalled_broker_is_ridden_out_and_nothing_is_lost(
    redis_server: Service, tmp_path: Path, start_broker: StartServer, start_worker: StartWorker
) -> None:
    broker = start_broker()
    assert broker.proc is not None
    pipeline = Pipeline(broker, redis_server, tmp_path)
    run = start_and_send_half(pipeline, start_worker, seed=47, events=6000)
    worker, pid, messages, truth, half = run.worker, run.pid, run.messages, run.truth, run.half
    wait_for(lambda: health(worker, "leadline_broker_up") == 1, timeout=10,
             what="leadline_broker_up 1")
    os.kill(broker.proc.pid, signal.SIGSTOP)
    stalled = time.monotonic()
    try:
        wait_for(lambda: health(worker, "leadline_broker_up") == 0, timeout=9,
                 interval=0.2, what="leadline_broker_up 0 while the broker is stalled")
        time.sleep(max(0.0, 10 - (time.monotonic() - stalled)))
    finally:
        os.kill(broker.proc.pid, signal.SIGCONT)
    wait_for(lambda: health(worker, "leadline_broker_up") == 1, timeout=30,
             interval=0.2, what="leadline_broker_up 1 after SIGCONT")
    pipeline.send(messages[half:])
    wait_for(lambda: not mismatches(worker.scrape(), truth, time.time()), timeout=60,
             what="metrics to equal the oracle after the stall")
    assert worker.proc.poll() is None and worker.proc.pid == pid
    log = worker.log_tail(2000)
    assert "Kafka broker not answering" in log
    assert "Kafka broker answering again" in log
