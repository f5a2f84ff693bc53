"""Exactness under faults: SIGKILL mid-stream and restart; two workers sharing the work."""

from __future__ import annotations

import time

import pytest

from tests.support.compare import mismatches
from tests.support.oracle import generate
from tests.support.worker import Pipeline, value, wait_for

pytestmark = pytest.mark.slow


def processed(worker) -> float:  # type: ignore[no-untyped-def]
    s = worker.scrape()
    return sum(v for (n, _), v in s.items() if n == "leadline_events_processed_total")


def test_sigkill_mid_stream_then_restart_is_still_exact(broker, redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Small batches and slow commits: the kill lands between many changelog writes and
    # the next offset commit, so the restart must replay already-counted events.
    pipeline = Pipeline(broker, redis_server, tmp_path,
                        extra_env={"LEADLINE_BATCH_MAX": "300", "LEADLINE_COMMIT_INTERVAL": "5"})
    messages, truth = generate(time.time(), seed=23, events=12000)
    first = pipeline.worker("w1").start().wait_ready()
    pipeline.send(messages)
    wait_for(lambda: processed(first) >= len(truth.events) * 0.4, timeout=60,
             interval=0.05, what="40% processed")
    first.kill()
    second = pipeline.worker("w2").start().wait_ready()
    try:
        wait_for(lambda: not mismatches(second.scrape(), truth, time.time()), timeout=90,
                 what="metrics to equal the oracle after the restart")
        time.sleep(2)  # nothing may trickle in twice afterwards
        assert mismatches(second.scrape(), truth, time.time()) == []
        assert "recovered partitions" in second.log_tail(400)
    finally:
        second.stop()


def test_two_workers_give_the_same_answers_as_the_oracle_from_either(
    broker, redis_server, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    pipeline = Pipeline(broker, redis_server, tmp_path)
    messages, truth = generate(time.time(), seed=31, events=10000)
    a = pipeline.worker("a").start()
    b = pipeline.worker("b").start()
    try:
        a.wait_ready()
        b.wait_ready()
        pipeline.send(messages)
        for w in (a, b):
            wait_for(lambda w=w: not mismatches(w.scrape(), truth, time.time()), timeout=90,
                     what=f"worker {w.name} to equal the oracle")
        share_a, share_b = processed(a), processed(b)
        assert share_a > 0 and share_b > 0, "both workers must have done part of the work"
        assert share_a + share_b >= len(truth.events)
        assert value(a.scrape(), "leadline_events_duplicate_total") + value(
            b.scrape(), "leadline_events_duplicate_total") >= truth.duplicates
    finally:
        a.stop()
        b.stop()
