"""Hostile input through one real worker (real broker, real Redis), at the default log level.

Each test sends its own messages and checks deltas of the worker's counters, so the
order of the tests does not matter; they share one worker to keep the run short. The
last two tests scan the exposition and the log for everything the others sent.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import math
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import orjson
import pytest

from leadline.config.definitions import load_definitions
from leadline.embedded.processes import parse_metrics
from reliability.harness import Message, Samples, produce, rss_kib, series_count
from tests.hostile.corpus import MARK, VALID, Case, cases, purchases_1e308
from tests.support.oracle import generate
from tests.support.worker import Pipeline, WorkerProcess, value, wait_for

pytestmark = pytest.mark.slow

_D = load_definitions()
# Configured label values may be exported; anything else a producer sends may not.
CONFIGURED = {*_D.known_names, *_D.labels.platform, *_D.labels.currency, *_D.labels.plan,
              *_D.features}

# 100k events with made-up label values may grow the worker by this much at most: the
# id dedupe map (25 h of event ids) grows with any 100k events. Unbounded labels would
# cost a HyperLogLog (16 KiB) per value and bucket: gigabytes.
FLOOD_RSS_BOUND_KIB = 48 * 1024


@dataclass
class Run:
    pipeline: Pipeline
    worker: WorkerProcess
    sent: list[Message] = field(default_factory=list)
    identifiers: set[str] = field(default_factory=set)  # must never reach /metrics or the log

    def send(self, messages: Sequence[Message]) -> None:
        asyncio.run(produce(self.pipeline.bootstrap, self.pipeline.topic, messages))
        self.sent += messages

    def scrape_text(self) -> str:
        with urllib.request.urlopen(self.worker.url("/metrics"), timeout=10) as resp:
            return resp.read().decode()

    def scrape(self) -> Samples:
        return parse_metrics(self.scrape_text())

    def counters(self) -> tuple[float, Counter[str], Counter[str]]:
        s = self.scrape()
        processed: Counter[str] = Counter()
        invalid: Counter[str] = Counter()
        for (name, labels), v in s.items():
            if name == "leadline_events_processed_total":
                processed[dict(labels)["name"]] += int(v)
            elif name == "leadline_events_invalid_total":
                invalid[dict(labels)["reason"]] += int(v)
        return value(s, "leadline_events_received_total"), processed, invalid

    def settle(self, before: tuple[float, Counter[str], Counter[str]], sent: int,
               valid: int, timeout: float = 120) -> tuple[Counter[str], Counter[str]]:
        """Wait until ``sent`` more messages were read and ``valid`` more processed."""
        received0, processed0, invalid0 = before

        def done() -> tuple[Counter[str], Counter[str]] | None:
            received, processed, invalid = self.counters()
            if received - received0 >= sent and (
                    sum(processed.values()) - sum(processed0.values()) >= valid):
                return processed - processed0, invalid - invalid0
            return None

        return wait_for(done, timeout=timeout, interval=0.25, what=f"{sent} messages settled")


@pytest.fixture(scope="module")
def run(broker, redis_server, tmp_path_factory) -> Iterator[Run]:  # type: ignore[no-untyped-def]
    pipeline = Pipeline(broker, redis_server, tmp_path_factory.mktemp("hostile"),
                        extra_env={"LEADLINE_LOG_LEVEL": "info"})
    with pipeline.worker() as worker:
        yield Run(pipeline, worker.wait_ready())


def _events(s: Samples, name: str, window: str = "30d") -> float:
    return s.get(("product_events", frozenset({("window", window), ("name", name)})), 0.0)


def test_every_hostile_message_lands_under_its_reason(run: Run) -> None:
    corpus: list[Case] = cases(time.time())
    expected = Counter(c.expect for c in corpus)
    valid = expected.pop(VALID)
    in_window = sum(1 for c in corpus if c.expect == VALID and c.in_30d)
    before, s0 = run.counters(), run.scrape()
    run.send([(c.key, c.value) for c in corpus])
    processed, invalid = run.settle(before, len(corpus), valid)
    assert dict(invalid) == dict(expected)
    assert dict(processed) == {"activation": valid}
    assert _events(run.scrape(), "activation") - _events(s0, "activation") == in_window
    # ...and the DLQ holds exactly those messages, byte for byte, with the same reasons.
    originals = {c.value: c.expect for c in corpus if c.expect != VALID}
    envelopes = run.pipeline.read_dlq(len(originals), mine=lambda raw: raw in originals)
    assert Counter(e["reason"] for e in envelopes) == expected
    for env in envelopes:
        assert originals[base64.b64decode(env["value_b64"])] == env["reason"]
    run.identifiers |= {MARK}


def test_sums_beyond_the_float_range_neither_crash_nor_block_later_events(run: Run) -> None:
    pid = run.worker.proc.pid  # type: ignore[union-attr]
    before = run.counters()
    huge = purchases_1e308(time.time())
    run.send([(None, v) for v in huge])
    run.settle(before, len(huge), len(huge))
    s = run.scrape()  # /metrics still answers
    revenue = value(s, "product_revenue", window="30d", currency="USD")
    assert math.isinf(revenue) or revenue >= 1e308
    # Later valid events still count, exactly.
    eur0 = value(s, "product_revenue", window="30d", currency="EUR")
    before = run.counters()
    later = [orjson.dumps({"event_id": f"{MARK}-after-huge-{i}", "name": "purchase",
                           "user_id": f"{MARK}-after-{i}", "timestamp": time.time() - 30,
                           "properties": {"amount": 12.5, "currency": "EUR"}}) for i in range(4)]
    run.send([(None, v) for v in later])
    processed, _ = run.settle(before, len(later), len(later))
    assert processed == Counter({"purchase": 4})
    assert value(run.scrape(), "product_revenue", window="30d", currency="EUR") == eur0 + 50.0
    assert run.worker.proc.poll() is None and run.worker.proc.pid == pid  # type: ignore[union-attr]


def _flood(now: float, tag: str) -> tuple[list[Message], int, set[str]]:
    """25k each of made-up names, platforms, currencies (every 3-letter code, then
    malformed ones) and features: (messages, how many are schema-invalid, the values)."""
    out: list[Message] = []
    made_up: set[str] = set()
    codes = ("".join(c) for c in itertools.product("ABCDEFGHIJKLMNOPQRSTUVWXYZ", repeat=3))
    bad = 0
    for i in range(25_000):
        base: dict[str, object] = {"user_id": f"{MARK}-fl-user-{i % 997}",
                                   "timestamp": now - 120 - i % 600}
        name, platform = f"{MARK}.{tag}.n{i}", f"{MARK}-{tag}-p{i}"
        currency = next(codes, None) or f"{MARK}{i}"
        bad += currency.startswith(MARK)
        feature = f"{MARK}-{tag}-f{i}"
        made_up |= {name, platform, feature}
        events: list[dict[str, object]] = [
            {"event_id": f"{MARK}-{tag}-n-{i}", "name": name},
            {"event_id": f"{MARK}-{tag}-p-{i}", "name": "product_viewed", "platform": platform},
            {"event_id": f"{MARK}-{tag}-c-{i}", "name": "purchase",
             "properties": {"amount": 1, "currency": currency}},
            {"event_id": f"{MARK}-{tag}-f-{i}", "name": "feature_used",
             "properties": {"feature": feature}},
        ]
        out += [(None, orjson.dumps(base | e)) for e in events]
    return out, bad, made_up


def test_a_flood_of_made_up_label_values_keeps_series_and_memory_bounded(run: Run) -> None:
    pid = run.worker.proc.pid  # type: ignore[union-attr]
    warm, _, _ = _flood(time.time(), "warm")  # first touch of every code path and buffer
    before = run.counters()
    run.send(warm[:10_000] + warm[-400:])  # the tail holds malformed currencies (schema)
    run.settle(before, 10_400, 9_000)
    # Series that exist once the worker has run a while, whatever the input: the lag of
    # each of the 8 partitions it reads (a 5 s timer), the schema rejects of the tail.
    wait_for(lambda: sum(1 for k in run.scrape() if k[0] == "leadline_consumer_lag") >= 8,
             timeout=30, what="consumer lag reported for every partition")
    series0, rss0 = series_count(run.scrape()), rss_kib(pid)
    messages, bad, made_up = _flood(time.time(), "flood")
    before = run.counters()
    run.send(messages)
    processed, invalid = run.settle(before, len(messages), len(messages) - bad)
    text = run.scrape_text()
    series1, rss1 = series_count(parse_metrics(text)), rss_kib(pid)
    assert invalid == Counter({"schema": bad})
    assert processed["other"] == 25_000 and processed["product_viewed"] == 25_000
    assert processed["purchase"] == 25_000 - bad and processed["feature_used"] == 25_000
    assert series1 == series0, "made-up values must not become series"
    assert not [v for v in made_up if v in text]
    grown = rss1 - rss0
    print(f"flood of {len(messages)} events: RSS {rss0} -> {rss1} KiB (+{grown}), "
          f"series {series0} -> {series1}")
    assert grown <= FLOOD_RSS_BOUND_KIB, f"RSS grew {grown} KiB"
    run.identifiers |= {f"{MARK}-flood-n-1", f"{MARK}-fl-user-5"}


def test_one_user_sending_100k_events_is_counted_exactly(run: Run) -> None:
    n, now = 100_000, time.time()
    user = f"{MARK}-whale"
    s0, rss0 = run.scrape(), rss_kib(run.worker.proc.pid)  # type: ignore[union-attr]
    messages = [(user.encode(), orjson.dumps({
        "event_id": f"{MARK}-whale-{i}", "name": "checkout_started", "user_id": user,
        "platform": "ios", "timestamp": now - 1800 + (i % 1500)})) for i in range(n)]
    before = run.counters()
    run.send(messages)
    processed, invalid = run.settle(before, n, n)
    assert processed == Counter({"checkout_started": n}) and not invalid
    s1, rss1 = run.scrape(), rss_kib(run.worker.proc.pid)  # type: ignore[union-attr]
    print(f"one user, {n} events: RSS {rss0} -> {rss1} KiB (+{rss1 - rss0})")
    for window in ("1h", "24h", "7d", "30d"):
        got = _events(s1, "checkout_started", window) - _events(s0, "checkout_started", window)
        assert got == n, window
    run.identifiers.add(user)


def test_no_identifier_or_free_text_ever_reaches_metrics(run: Run) -> None:
    messages, truth = generate(time.time(), seed=5, users=500, events=3000)
    before = run.counters()
    run.send(messages)
    run.settle(before, len(messages), len(truth.events))
    strings = set(run.identifiers) | {MARK}
    for _, raw in run.sent:
        strings |= _identifiers(raw)
    strings = {s for s in strings if len(s) >= 4} - CONFIGURED
    assert len(strings) > 1000
    text = run.scrape_text()
    exported = {v for _, labels in parse_metrics(text) for _, v in labels}
    assert sorted(strings & exported) == []
    # Also anywhere in the text (HELP, names), for a sample and for the marker.
    sample = [*sorted(strings)[:: max(1, len(strings) // 3000)], MARK]
    assert [s for s in sample if s in text] == []


def _identifiers(raw: bytes) -> set[str]:
    """Every id and free-text string of one message (nothing of a message that is not JSON
    text is exported either, but there is nothing to search for in it)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {MARK} if MARK.encode() in raw else set()
    out: set[str] = set()

    def walk(x: object, key: str = "") -> None:
        if isinstance(x, dict):
            for k, v in x.items():
                walk(v, k)
        elif isinstance(x, list):
            for v in x:
                walk(v, key)
        elif isinstance(x, str) and key not in ("name", "event", "type", "currency",
                                                  "timestamp", "platform", "country"):
            out.add(x)

    walk(obj)
    return out


def test_logs_never_show_payloads_at_info_level(run: Run) -> None:
    log = run.worker.log_path.read_text(errors="replace")
    assert "[INFO]" in log and "Ready" in log  # the log is there, written at info level
    for needle in (MARK, "visitor-1", "evt-5-1", "user-1"):
        assert needle not in log, f"{needle!r} appears in the worker log"
