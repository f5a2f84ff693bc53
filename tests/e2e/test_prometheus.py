"""A real Prometheus scrapes two real workers fed with generated traffic.

Every dashboard panel query and every recording rule must return data, and what
Prometheus stored must equal what the workers' own ``/metrics`` say. Queries that
look back with ``offset`` cannot have data on a fresh Prometheus; they are checked
to be accepted (valid PromQL) only. Two minutes of traffic cannot define LTV and net
revenue retention (they need subscriptions from before the window and a cancellation),
so :func:`subscription_history` adds that much history.
"""

from __future__ import annotations

import time

import orjson
import pytest

from leadline.config import load_definitions
from leadline.simulator.traffic import TrafficGenerator
from tests.observability import spec
from tests.observability.promstack import (
    Prometheus,
    panel_queries,
    rule_expressions,
    start_prometheus,
)
from tests.support.worker import Pipeline, wait_for

pytestmark = pytest.mark.slow

PANELS = panel_queries()
RECORDING = [r for r in rule_expressions() if r.kind == "record"]
# The Watchdog always fires (a heartbeat): every other alert must be silent here.
ALERTING = [r for r in rule_expressions() if r.kind == "alert" and r.name != "LeadlineWatchdog"]

def subscription_history(now: float) -> list[tuple[bytes, bytes]]:
    """Two subscriptions started 30.5 days ago (before every window, inside too_old's
    31 days), one cancelled three days ago: 30d subscription churn 0.5, so an LTV, and
    MRR at the start of the 7d and 30d windows, so a net revenue retention."""
    day = 86400.0
    events = [("hist-sub-a", "hist-a", now - 30.5 * day, "subscription_started", 50),
              ("hist-sub-b", "hist-b", now - 30.5 * day, "subscription_started", 40),
              ("hist-cancel-b", "hist-b", now - 3 * day, "subscription_cancelled", 40)]
    return [(user.encode(), orjson.dumps({
        "event_id": event_id, "name": name, "user_id": user, "timestamp": ts,
        "properties": {"plan": "pro", "mrr": mrr, "currency": "USD"}}))
        for event_id, user, ts, name, mrr in events]


@pytest.fixture(scope="module")
def stack(broker, redis_server, tmp_path_factory):  # type: ignore[no-untyped-def]
    pipeline = Pipeline(broker, redis_server, tmp_path_factory.mktemp("prom"))
    workers = [pipeline.worker(name).start() for name in ("a", "b")]
    prom: Prometheus | None = None
    try:
        for w in workers:
            w.wait_ready()
        generator = TrafficGenerator(seed=3, definitions=load_definitions())
        now = time.time()
        messages = []
        for i in range(120):  # two minutes of simulated product traffic, ending now
            messages += generator.batch(now - 120 + i, 60)
        messages += subscription_history(now)
        pipeline.send(messages)

        def processed() -> float:
            return sum(v for w in workers for (n, _), v in w.scrape().items()
                       if n in ("leadline_events_processed_total",
                                "leadline_events_invalid_total",
                                "leadline_events_duplicate_total",
                                "leadline_messages_ignored_total"))

        wait_for(lambda: processed() >= len(messages), timeout=90, what="traffic processed")
        prom = start_prometheus([f"127.0.0.1:{w.port}" for w in workers])
        prom.wait_for_targets_up(timeout=30)
        yield prom, workers
    finally:
        if prom is not None:
            prom.stop()
        for w in workers:
            w.stop()


@pytest.mark.parametrize("query", PANELS, ids=str)
def test_every_panel_query_returns_data(stack, query) -> None:  # type: ignore[no-untyped-def]
    prom, _ = stack
    if query.historical:
        prom.query(query.expr)  # must be accepted; a fresh Prometheus has no week-old data
        return
    assert prom.wait_for(query.expr, timeout=30), query


@pytest.mark.parametrize("rule", RECORDING, ids=str)
def test_every_recording_rule_returns_data(stack, rule) -> None:  # type: ignore[no-untyped-def]
    prom, _ = stack
    if rule.historical:
        prom.query(rule.expr)
        return
    assert prom.wait_for(rule.expr, timeout=30), rule
    assert prom.wait_for(rule.name, timeout=30), f"{rule.name} not recorded"


@pytest.mark.parametrize("rule", ALERTING, ids=str)
def test_alert_expressions_are_valid_and_silent_on_a_healthy_pipeline(stack, rule) -> None:  # type: ignore[no-untyped-def]
    prom, _ = stack
    prom.query(rule.expr)  # raises on invalid PromQL
    firing = prom.query(f'ALERTS{{alertname="{rule.name}", alertstate="firing"}}')
    assert firing == [], firing


def test_stored_values_equal_the_workers_own_metrics(stack) -> None:  # type: ignore[no-untyped-def]
    prom, workers = stack
    time.sleep(3)  # let Prometheus take a scrape after the last change
    for w in workers:
        direct = w.scrape()
        instance = f"127.0.0.1:{w.port}"
        checked = 0
        for metric in ("product_events", "product_revenue", "product_conversions",
                       "leadline_events_received_total", "leadline_events_processed_total"):
            for series in prom.query(f'last_over_time({metric}{{instance="{instance}"}}[10s])'):
                labels = {k: v for k, v in series["metric"].items()
                          if k not in ("__name__", "instance", "job")}
                if labels.get("window") in ("5m", "1h"):
                    continue  # late events (minutes old) age out of these between reads
                key = (metric, frozenset(labels.items()))
                assert key in direct, key
                assert float(series["value"][1]) == pytest.approx(direct[key], rel=1e-9), key
                checked += 1
        assert checked > 50


def test_both_workers_report_the_same_product_gauges(stack) -> None:  # type: ignore[no-untyped-def]
    _, (a, b) = stack
    sa, sb = a.scrape(), b.scrape()
    product = {k: v for k, v in sa.items() if k[0].startswith("product_")}
    assert product
    for key, value in product.items():
        assert sb.get(key) == pytest.approx(value, rel=1e-9, abs=1e-9), key


def test_workers_export_every_built_metric_and_no_planned_one(stack) -> None:  # type: ignore[no-untyped-def]
    """SPEC's metrics split into built and planned (tests/observability/spec.py) as the
    workers really export them: a metric that lands must move from PLANNED to METRICS."""
    _, workers = stack
    exported = {name for w in workers for (name, _labels) in w.scrape()}
    for name, (kind, _labels) in spec.METRICS.items():
        series = f"{name}_count" if kind == "histogram" else name
        assert series in exported, f"{name} is listed as built but no worker exports it"
    for name in spec.PLANNED:
        family = {name, f"{name}_count", f"{name}_total"}
        assert not family & exported, f"{name} is exported: move it from PLANNED to METRICS"
