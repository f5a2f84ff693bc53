"""promstack against a real Prometheus scraping a fake worker that exports every SPEC series.

This proves the helper works and that every dashboard and rule query is valid
PromQL that returns data for the label sets SPEC promises. The same checks
against a real worker belong to the end-to-end tests.
"""

from __future__ import annotations

import time

import pytest

from tests.observability.fake_worker import FakeWorker
from tests.observability.promstack import (
    Prometheus,
    PrometheusError,
    dashboards,
    panel_queries,
    rule_expressions,
    start_prometheus,
)


def test_targets_are_scraped(prometheus: Prometheus, fake_worker: FakeWorker) -> None:
    (target,) = [t for t in prometheus.targets() if t["labels"]["job"] == "leadline"]
    assert target["labels"]["instance"] == fake_worker.target
    result = prometheus.query('up{job="leadline"}')
    assert [r["value"][1] for r in result] == ["1"]


def test_rules_are_loaded(prometheus: Prometheus) -> None:
    loaded = {r["name"] for g in prometheus.rule_groups() for r in g["rules"]}
    assert loaded == {r.name for r in rule_expressions()}
    for group in prometheus.rule_groups():
        for rule in group["rules"]:
            assert rule["health"] != "err", rule


def test_every_panel_query_returns_data(prometheus: Prometheus) -> None:
    queries = panel_queries()
    assert queries
    for query in queries:
        if query.historical:
            # Valid PromQL (an error would raise), but no history a week back yet.
            assert prometheus.query(query.expr) == [], str(query)
        else:
            assert prometheus.wait_for(query.expr, timeout=20), str(query)


def test_annotation_queries_run(prometheus: Prometheus) -> None:
    """The boards' annotations: a deploy is a version that was not running 5 minutes
    earlier (the fake worker has just appeared); alerts firing exclude the Watchdog."""
    (board, *_) = dashboards().values()
    exprs = {a["name"]: a["expr"] for a in board["annotations"]["list"]}
    assert set(exprs) == {"Firing alerts", "Deploys"}
    assert prometheus.wait_for(exprs["Deploys"], timeout=20)
    assert prometheus.query(exprs["Firing alerts"]) == []
    assert prometheus.wait_for(exprs["Firing alerts"].replace(
        'alertname!="LeadlineWatchdog"', 'alertname="LeadlineWatchdog"'), timeout=20)
    for other in dashboards().values():
        assert other["annotations"] == board["annotations"]


def test_every_recording_rule_records(prometheus: Prometheus) -> None:
    for rule in rule_expressions():
        if rule.kind == "record" and not rule.historical:
            assert prometheus.wait_for(rule.name, timeout=20), str(rule)


def test_no_alert_fires_on_healthy_data(prometheus: Prometheus) -> None:
    time.sleep(2)
    firing = [a["labels"]["alertname"] for a in prometheus.alerts() if a["state"] != "inactive"]
    assert firing == ["LeadlineWatchdog"]  # always firing: the heartbeat


def test_bad_query_raises(prometheus: Prometheus) -> None:
    with pytest.raises(PrometheusError, match="parse error"):
        prometheus.query("sum(")


@pytest.mark.services  # a real Prometheus, started by the test itself
def test_stop_is_idempotent_and_cleans_up() -> None:
    prom = start_prometheus(["127.0.0.1:9"], rules=[])
    workdir = prom.workdir
    assert prom.query("vector(1)")[0]["value"][1] == "1"
    prom.stop()
    prom.stop()
    assert prom.process.returncode is not None
    assert not workdir.exists()
