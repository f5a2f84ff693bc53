"""The catalog metrics (issue 3) through real workers equal the independent batch oracle.

The log (tests/support/oracle_catalog.py) holds per-user scenarios for activation,
two funnels sharing steps (the second one from a definitions file given to the worker
with LEADLINE_DEFINITIONS), subscriptions, surveys with every NPS boundary score and
out-of-range scores, refunds, features and sessions; shuffled, with duplicates, mixed
keys, both payload formats and several timestamp styles.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import oracle_catalog as oc
from tests.support.worker import Pipeline, StartWorker, processed, settle, value, wait_for

pytestmark = pytest.mark.slow


def _pipeline(broker, redis_server, workdir: Path, **env: str) -> Pipeline:  # type: ignore[no-untyped-def]
    return Pipeline.for_catalog(broker, redis_server, workdir, **env)




@pytest.fixture(scope="module")
def run(broker, redis_server, tmp_path_factory):  # type: ignore[no-untyped-def]
    pipeline = _pipeline(broker, redis_server, tmp_path_factory.mktemp("catalog"))
    with pipeline.worker() as worker:
        worker.wait_ready()
        messages, truth = oc.generate(time.time(), seed=1)
        pipeline.send(messages)
        yield pipeline, worker, messages, truth


def test_every_catalog_metric_equals_the_oracle(run) -> None:  # type: ignore[no-untyped-def]
    _, worker, messages, truth = run
    wait_for(lambda: value(worker.scrape(), "leadline_events_received_total") == len(messages)
             and processed(worker.scrape()) == len(truth.records), timeout=60,
             what="every message processed")
    assert settle(worker, oc.mismatches, truth, timeout=30) == []


def test_out_of_range_scores_are_dead_lettered_as_schema(run) -> None:  # type: ignore[no-untyped-def]
    _, worker, _, truth = run
    samples = wait_for(lambda: (s := worker.scrape()) and processed(s) == len(truth.records)
                       and s, timeout=60, what="every message processed")
    assert value(samples, "leadline_events_invalid_total", reason="schema") == \
        truth.invalid["schema"] == 6
    assert value(samples, "leadline_events_duplicate_total") == truth.duplicates


def test_histogram_is_exposed_as_a_histogram(run) -> None:  # type: ignore[no-untyped-def]
    worker = run[1]
    with urllib.request.urlopen(worker.url("/metrics"), timeout=10) as resp:
        text = resp.read().decode()
    assert "# TYPE product_time_to_activate_seconds histogram" in text
    assert 'product_time_to_activate_seconds_bucket{le="+Inf"}' in text


def test_sigkill_mid_stream_then_restart_is_still_exact(  # type: ignore[no-untyped-def]
        broker, redis_server, tmp_path, start_worker: StartWorker) -> None:
    # Small batches and slow commits: the kill lands between changelog writes of cells
    # and user states and the next offset commit, so the restart replays events whose
    # per-user effects are partly in the table already.
    pipeline = _pipeline(broker, redis_server, tmp_path,
                         LEADLINE_BATCH_MAX="200", LEADLINE_COMMIT_INTERVAL="5")
    messages, truth = oc.generate(time.time(), seed=2)
    first = start_worker(pipeline, "w1").wait_ready()
    pipeline.send(messages)
    wait_for(lambda: processed(first.scrape()) >= len(truth.records) * 0.4, timeout=60,
             interval=0.05, what="40% processed")
    first.kill()
    second = start_worker(pipeline, "w2").wait_ready()
    assert settle(second, oc.mismatches, truth, timeout=60) == []
    time.sleep(2)  # nothing may trickle in twice afterwards
    assert oc.mismatches(second.scrape(), truth, time.time()) == []
    assert "changelog records restored" in second.log_tail(100_000)
