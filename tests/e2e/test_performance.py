"""Sessions and technical performance (SPEC 3b, issue 16) through a real worker equal
the batch oracle.

The log (tests/support/oracle_performance.py) holds 29 days of sessions (single-event,
long, one id shared by two users), page loads and API calls with heavy-tailed latencies,
statuses and errors, crashes on several platforms, duplicates, unkeyed and mis-keyed
messages, canonical and Segment payloads, and invalid performance fields. Its second list
is sent once the first is processed: events that move sessions' first and last times.
Counts and ratios exact, quantiles within 2 %, also after a SIGKILL mid-stream.
"""

from __future__ import annotations

import time

import pytest

from tests.support import oracle_performance as op
from tests.support.worker import Pipeline, StartWorker, processed, settle, value, wait_for

pytestmark = pytest.mark.slow




def _corpus(seed: int) -> tuple[list, list, op.Truth]:  # type: ignore[type-arg]
    return op.generate(time.time(), seed=seed)


def test_every_performance_metric_equals_the_oracle_before_and_after_late_events(  # type: ignore[no-untyped-def]
        broker, redis_server, tmp_path, start_worker: StartWorker) -> None:
    pipeline = Pipeline(broker, redis_server, tmp_path)
    first, late, truth = _corpus(seed=3)
    worker = start_worker(pipeline, "w1").wait_ready()
    pipeline.send(first)
    wait_for(lambda: processed(worker.scrape()) == truth.events_first, timeout=90,
             what="the first list processed")
    assert settle(worker, op.mismatches, truth.first_only(), timeout=30) == []
    pipeline.send(late)
    wait_for(lambda: processed(worker.scrape()) == truth.events_total, timeout=60,
             what="the late list processed")
    assert settle(worker, op.mismatches, truth, timeout=30) == []
    samples = worker.scrape()
    assert value(samples, "leadline_events_invalid_total", reason="schema") == \
        truth.invalid["schema"]
    assert value(samples, "leadline_events_duplicate_total") == truth.duplicates


def test_sigkill_mid_stream_then_restart_is_still_exact(  # type: ignore[no-untyped-def]
        broker, redis_server, tmp_path, start_worker: StartWorker) -> None:
    # Small batches and slow commits: the kill lands between changelog writes of cells
    # and user records and the next offset commit, so the restart replays events whose
    # session effects are partly in the table already.
    pipeline = Pipeline(broker, redis_server, tmp_path,
                        extra_env={"LEADLINE_BATCH_MAX": "200",
                                   "LEADLINE_COMMIT_INTERVAL": "5"})
    first, late, truth = _corpus(seed=4)
    one = start_worker(pipeline, "w1").wait_ready()
    pipeline.send(first)
    wait_for(lambda: processed(one.scrape()) >= truth.events_first * 0.4, timeout=60,
             interval=0.05, what="40% processed")
    one.kill()
    two = start_worker(pipeline, "w2").wait_ready()
    pipeline.send(late)
    assert settle(two, op.mismatches, truth, timeout=90) == []
    time.sleep(2)  # nothing may trickle in twice afterwards
    assert op.mismatches(two.scrape(), truth, time.time()) == []
    assert "changelog records restored" in two.log_tail(100_000)

