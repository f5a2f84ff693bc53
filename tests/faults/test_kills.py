"""Workers killed while traffic flows: SIGKILL at random points, three times; SIGKILL
mid-stream and a restart; SIGTERM.

The kill points come from a seeded generator and land anywhere: during start-up,
recovery, or mid-batch. Whatever survives must end oracle-exact.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from leadline.embedded.services import Service
from reliability.harness import PacedSender, fetch, sample
from tests.faults import folded, processed
from tests.support import oracle_catalog as oc
from tests.support.compare import mismatches
from tests.support.oracle import generate
from tests.support.worker import Pipeline, StartWorker, WorkerProcess, wait_for

pytestmark = pytest.mark.slow


def counts(worker: WorkerProcess) -> tuple[float, float]:
    """(messages read from the source topic, events folded in) by this worker."""
    s = worker.scrape()
    return sample(s, "leadline_events_received_total"), folded(s)


def owns_everything(worker: WorkerProcess) -> bool:
    """Ready, and holding every partition: the group has settled on this worker alone."""
    assert worker.proc is not None and worker.proc.poll() is None, worker.log_tail(20)
    try:
        status, body = fetch(worker.url("/healthz"), timeout=2)
    except OSError:
        return False
    return status == 200 and json.loads(body)["partitions"] == [0, 1, 2, 3]


def test_three_sigkills_at_random_points_while_traffic_flows(
    broker: Service, redis_server: Service, tmp_path: Path, start_worker: StartWorker,
    at_teardown: ExitStack,
) -> None:
    rng = random.Random(2024)
    # Small batches and slow commits: each kill leaves much already-counted work
    # uncommitted, which the next worker replays.
    pipeline = Pipeline.for_catalog(broker, redis_server, tmp_path, LEADLINE_BATCH_MAX="500",
                                    LEADLINE_COMMIT_INTERVAL="3", LEADLINE_SESSION_TIMEOUT="3")
    # The whole catalog: activation, funnels, subscriptions, surveys and the core.
    messages, truth = oc.generate(time.time(), seed=53, users=4300)
    worker = start_worker(pipeline, "w0").wait_ready()
    sender = PacedSender.of(pipeline.bootstrap, pipeline.topic, messages, rate=800)
    sender.start()
    at_teardown.callback(sender.finish)
    kills = []
    for k in range(1, 4):
        wait_for(lambda w=worker: owns_everything(w), timeout=60, interval=0.2,
                 what=f"{worker.name} to hold every partition")
        time.sleep(rng.uniform(0.3, 3.0))  # somewhere in the middle of processing
        kills.append(f"{worker.name} at {sender.sent / len(messages):.0%} sent")
        worker.kill()
        worker = start_worker(pipeline, f"w{k}")
    assert sender.is_alive(), "all three kills must land while traffic flows"
    sender.join(90)
    assert sender.error is None and sender.sent == len(messages)
    worker.wait_ready()
    wait_for(lambda: not oc.whole_mismatches(worker.scrape(), truth, time.time()),
             timeout=90, what="metrics to equal the oracle after three kills")
    time.sleep(2)  # nothing may trickle in twice afterwards
    assert oc.whole_mismatches(worker.scrape(), truth, time.time()) == []
    print("killed:", ", ".join(kills))


def test_sigkill_mid_stream_then_restart_is_still_exact(
    broker: Service, redis_server: Service, tmp_path: Path, start_worker: StartWorker
) -> None:
    # Small batches and slow commits: the kill lands between many changelog writes and
    # the next offset commit, so the restart must replay already-counted events.
    pipeline = Pipeline(broker, redis_server, tmp_path,
                        extra_env={"LEADLINE_BATCH_MAX": "300", "LEADLINE_COMMIT_INTERVAL": "5"})
    messages, truth = generate(time.time(), seed=23, events=12000)
    first = start_worker(pipeline, "w1").wait_ready()
    pipeline.send(messages)
    wait_for(lambda: processed(first) >= len(truth.events) * 0.4, timeout=60,
             interval=0.05, what="40% processed")
    first.kill()
    second = start_worker(pipeline, "w2").wait_ready()
    wait_for(lambda: not mismatches(second.scrape(), truth, time.time()), timeout=90,
             what="metrics to equal the oracle after the restart")
    time.sleep(2)  # nothing may trickle in twice afterwards
    assert mismatches(second.scrape(), truth, time.time()) == []
    assert "changelog records restored" in second.log_tail(100_000)


def test_sigterm_stops_within_10s_and_the_restart_replays_little(
    broker: Service, redis_server: Service, tmp_path: Path, start_worker: StartWorker
) -> None:
    # Commits every 60 s: only the graceful stop itself can have committed the offsets.
    pipeline = Pipeline(broker, redis_server, tmp_path,
                        extra_env={"LEADLINE_COMMIT_INTERVAL": "60"})
    messages, truth = generate(time.time(), seed=61, events=5000)
    first = start_worker(pipeline, "w1").wait_ready()
    pipeline.send(messages)
    wait_for(lambda: counts(first) == (len(messages), len(truth.events)), timeout=60,
             what="every message processed")
    assert first.proc is not None
    first.signal(signal.SIGTERM)
    asked = time.monotonic()
    try:
        code = first.proc.wait(10)
    except subprocess.TimeoutExpired:
        first.kill()
        raise AssertionError("worker did not stop within 10 s of SIGTERM") from None
    stopped_in = time.monotonic() - asked
    second = start_worker(pipeline, "w2").wait_ready()
    wait_for(lambda: not mismatches(second.scrape(), truth, time.time()), timeout=60,
             what="metrics to equal the oracle after the restart")
    received, refolded = counts(second)
    print(f"SIGTERM: exit {code} after {stopped_in:.1f}s; restart re-read {received:.0f} "
          f"messages and re-folded {refolded:.0f} events of {len(messages)}")
    assert code == 0
    assert received <= 0.01 * len(messages) and refolded <= 0.01 * len(truth.events)
