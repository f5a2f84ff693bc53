"""A generated event log through a real worker equals the batch oracle.

The log has out-of-order and late events, duplicates (some keyed differently),
unkeyed and wrongly keyed messages, both payload formats, and every kind of bad
event; the worker runs against the real broker and Redis.
"""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from leadline.aggregators.indicators import Indicators
from leadline.config.definitions import load_definitions
from leadline.embedded.processes import Samples, parse_metrics
from leadline.serving.exposition import MetricsEndpoint
from leadline.serving.health import Health
from leadline.serving.view import ServingView
from tests.support.compare import mismatches
from tests.support.oracle import generate
from tests.support.worker import Pipeline, value, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(broker, redis_server, tmp_path_factory):  # type: ignore[no-untyped-def]
    pipeline = Pipeline(broker, redis_server, tmp_path_factory.mktemp("oracle"))
    with pipeline.worker() as worker:
        worker.wait_ready()
        messages, truth = generate(time.time(), seed=11)
        pipeline.send(messages)
        yield pipeline, worker, messages, truth


def test_counts_of_received_invalid_and_duplicates_are_exact(run) -> None:  # type: ignore[no-untyped-def]
    _, worker, messages, truth = run

    def settled():  # type: ignore[no-untyped-def]
        s = worker.scrape()
        done = value(s, "leadline_events_received_total") == len(messages)
        processed = sum(v for (n, _), v in s.items() if n == "leadline_events_processed_total")
        return s if done and processed == len(truth.events) else None

    samples = wait_for(settled, timeout=90, what="every message processed")
    for reason, n in truth.invalid.items():
        assert value(samples, "leadline_events_invalid_total", reason=reason) == n, reason
    assert value(samples, "leadline_events_duplicate_total") == truth.duplicates
    # What memory holds (a 5 s gauge): every distinct id folded (one per event), once.
    ids = len(truth.events)
    wait_for(lambda: value(worker.scrape(), "leadline_state_entries", kind="event_ids") == ids,
             timeout=15, what="the event ids held reported")


def test_every_product_metric_equals_the_oracle(run) -> None:  # type: ignore[no-untyped-def]
    _, worker, _, truth = run
    wait_for(lambda: not mismatches(worker.scrape(), truth, time.time()), timeout=60,
             what="metrics to equal the oracle")
    problems = mismatches(worker.scrape(), truth, time.time())
    assert problems == []


def test_dead_letters_keep_the_original_bytes_and_say_why(run) -> None:  # type: ignore[no-untyped-def]
    pipeline, _, messages, truth = run
    envelopes = pipeline.read_dlq(sum(truth.invalid.values()))
    assert sum(truth.invalid.values()) == len(envelopes)
    originals = {v for _, v in messages}
    by_reason: dict[str, int] = {}
    for env in envelopes:
        assert base64.b64decode(env["value_b64"]) in originals
        assert env["error"]
        assert env["source"]["topic"] == pipeline.topic
        assert env["source"]["offset"] >= 0
        by_reason[env["reason"]] = by_reason.get(env["reason"], 0) + 1
    assert by_reason == dict(truth.invalid)


def view_only_scrape(pipeline: Pipeline) -> Samples:
    """``/metrics`` as a reader that owns no partition computes it: from Redis alone.

    A worker's own scrape serves its partitions from memory, so it cannot show whether
    the view in Redis, which every other worker reads, was rebuilt."""

    async def render() -> bytes:
        client = AsyncRedis.from_url(pipeline.redis_url)
        try:
            view = ServingView(client, f"{pipeline.app_id}:v1", pipeline.partitions)
            endpoint = MetricsEndpoint(view, Indicators(load_definitions()), Health("test"),
                                       cache_seconds=0.0)
            return await endpoint.render()
        finally:
            await client.aclose()

    return parse_metrics(asyncio.run(render()).decode())


def test_a_flushed_redis_heals_from_the_tables(run) -> None:  # type: ignore[no-untyped-def]
    pipeline, worker, _, truth = run
    wait_for(lambda: not mismatches(view_only_scrape(pipeline), truth, time.time()),
             timeout=60, what="the view in Redis to equal the oracle")
    client = redis.Redis.from_url(pipeline.redis_url)
    client.flushdb()
    assert client.dbsize() == 0
    assert mismatches(view_only_scrape(pipeline), truth, time.time())  # the view is gone
    flushed_at = time.monotonic()
    wait_for(lambda: not mismatches(view_only_scrape(pipeline), truth, time.time()),
             timeout=10, interval=0.2, what="the view in Redis whole again after FLUSHDB")
    assert time.monotonic() - flushed_at <= 10
    assert not mismatches(worker.scrape(), truth, time.time())
    client.close()
