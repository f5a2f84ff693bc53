"""Segment and RudderStack calls, as their libraries send them, through a real worker.

The log (``tests/support/segment_corpus.py``) is built from the spec examples in
``tests/fixtures/producers/``: semantic event names, amounts from ``revenue`` and
``total``, lower-case currencies, page and screen calls, identify / alias / group calls,
and anonymous browsing stitched to the user id an identify or alias links it to. Every
core and catalog metric must equal the oracle, also after a SIGKILL mid-stream; no call
may reach the dead-letter topic.
"""

from __future__ import annotations

import time

import pytest

from tests.support import compare, oracle_catalog
from tests.support.segment_corpus import Corpus, build
from tests.support.worker import Pipeline, StartWorker, WorkerProcess, value, wait_for

pytestmark = pytest.mark.slow


def mismatches(worker: WorkerProcess, corpus: Corpus, counters: bool = True) -> list[str]:
    """Product gauges against the oracle; with ``counters``, this worker's health
    counters too (they start at 0 in every process, so not after a restart)."""
    samples, now = worker.scrape(), time.time()
    bad = compare.mismatches(samples, corpus.core, now)
    bad += oracle_catalog.mismatches(samples, corpus.catalog, now)
    for kind, n in corpus.ignored.items() if counters else ():
        got = value(samples, "leadline_messages_ignored_total", type=kind)
        if got != n:
            bad.append(f"leadline_messages_ignored_total{{type={kind}}}: got {got}, want {n}")
    invalid = sum(v for (name, _), v in samples.items()
                  if name == "leadline_events_invalid_total")
    if invalid:
        bad.append(f"leadline_events_invalid_total: {invalid} calls dead-lettered, want 0")
    return bad


def settle(worker: WorkerProcess, corpus: Corpus, timeout: float,
           counters: bool = True) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        bad = mismatches(worker, corpus, counters)
        if not bad or time.monotonic() > deadline:
            return bad
        time.sleep(0.5)


def test_the_corpus_exercises_what_it_claims() -> None:
    corpus = build(time.time())
    names = {e["name"] for e in corpus.core.events}
    assert {"page_view", "screen_view", "signup", "product_viewed", "cart_added",
            "checkout_started", "purchase"} <= names
    assert set(corpus.ignored) == {"identify", "alias", "group"}
    assert corpus.stitched > 100
    assert any(e["identity"].startswith("anon:") for e in corpus.core.events)
    assert {e["platform"] for e in corpus.core.events} == {"web", "ios", "android"}


def test_every_call_is_counted_or_ignored_and_equals_the_oracle(
        broker, redis_server, tmp_path, start_worker: StartWorker) -> None:  # type: ignore[no-untyped-def]
    pipeline = Pipeline(broker, redis_server, tmp_path)
    worker = start_worker(pipeline).wait_ready()
    corpus = build(time.time())
    pipeline.send(corpus.messages)
    bad = settle(worker, corpus, timeout=60)
    assert bad == [], "\n".join(bad)
    samples = worker.scrape()
    assert value(samples, "leadline_events_received_total") == len(corpus.messages)


def test_stitching_stays_exact_after_sigkill_mid_stream(
        broker, redis_server, tmp_path, start_worker: StartWorker) -> None:  # type: ignore[no-untyped-def]
    """Links survive a SIGKILL after their offsets were committed (restored from the
    changelog, not replayed), and stitched events replayed after a second SIGKILL
    mid-stream count once."""
    pipeline = Pipeline(broker, redis_server, tmp_path,
                        extra_env={"LEADLINE_BATCH_MAX": "50", "LEADLINE_COMMIT_INTERVAL": "1"})
    corpus = build(time.time(), visitors=200)
    links, rest = corpus.messages[:corpus.linked_at], corpus.messages[corpus.linked_at:]
    first = start_worker(pipeline, "w1").wait_ready()
    pipeline.send(links)
    wait_for(lambda: value(first.scrape(), "leadline_events_received_total") == len(links)
             and sum(v for (n, _), v in first.scrape().items()
                     if n == "leadline_messages_ignored_total") == sum(
                         n for k, n in corpus.ignored.items() if k != "group"),
             timeout=60, what="every link read")
    time.sleep(4)  # a few commits: the links' by-user offsets are committed
    first.kill()
    second = start_worker(pipeline, "w2").wait_ready()
    pipeline.send(rest)
    wait_for(lambda: value(second.scrape(), "leadline_events_received_total")
             >= len(rest) * 0.5, timeout=60, interval=0.05, what="half received")
    second.kill()
    third = start_worker(pipeline, "w3").wait_ready()
    bad = settle(third, corpus, timeout=60, counters=False)
    assert bad == [], "\n".join(bad)
    time.sleep(2)  # nothing may trickle in twice afterwards
    assert mismatches(third, corpus, counters=False) == []
    assert "changelog records restored" in third.log_tail(100_000)
