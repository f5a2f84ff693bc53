"""The generated Grafana dashboards: up to date, well-formed, and only SPEC metrics."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from grafana import generate
from grafana.panels import ALERT_LINE, BASELINE
from leadline.config.definitions import load_definitions
from tests.observability import spec
from tests.observability.promstack import (
    dashboards,
    iter_panels,
    panel_queries,
    rule_expressions,
    substitute,
)

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "grafana"
LEADING = "leadline-leading-indicators"
PIPELINE = "leadline-pipeline-health"
DATASOURCE_UID = "leadline-prometheus"

KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
}


def metric_names(expr: str) -> set[str]:
    """Series names a PromQL expression selects (functions, keywords, labels left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?\d+\w*", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, call = match.groups()
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def recording_rule_names() -> set[str]:
    return {r.name for r in rule_expressions() if r.kind == "record"}


def boards() -> dict[str, dict[str, Any]]:
    return {b["uid"]: b for b in dashboards().values()}


def content_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in iter_panels(board) if p["type"] != "row"]


# ------------------------------------------------------------------------ generation


def test_committed_dashboards_are_up_to_date() -> None:
    rendered = generate.render_all()
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert set(committed) == set(rendered), "stray or missing files in grafana/dashboards/"
    for name, text in rendered.items():
        assert committed[name] == text, (
            f"grafana/dashboards/{name} is stale: run `python -m grafana.generate`"
        )


def test_generator_check_mode(tmp_path: Path) -> None:
    assert generate.main(["--out", str(tmp_path), "--check"]) == 1
    assert generate.main(["--out", str(tmp_path)]) == 0
    assert generate.main(["--out", str(tmp_path), "--check"]) == 0


# ------------------------------------------------------------------------- structure


def test_fixed_uids_and_datasource() -> None:
    assert set(boards()) == {LEADING, PIPELINE}
    provisioned = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yaml").read_text())
    assert [d["uid"] for d in provisioned["datasources"]] == [DATASOURCE_UID]
    for board in boards().values():
        for panel in content_panels(board):
            assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        for variable in board.get("templating", {}).get("list", []):
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == DATASOURCE_UID


@pytest.mark.parametrize("uid", [LEADING, PIPELINE])
def test_every_panel_is_documented_and_formatted(uid: str) -> None:
    board = boards()[uid]
    ids = [p["id"] for p in iter_panels(board)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in content_panels(board):
        title = panel["title"]
        defaults = panel["fieldConfig"]["defaults"]
        assert panel.get("description", "").strip(), f"{title}: no description"
        assert defaults.get("unit"), f"{title}: no unit"
        assert "decimals" in defaults, f"{title}: no decimals"
        assert defaults.get("thresholds", {}).get("steps"), f"{title}: no thresholds"
        assert panel["targets"], f"{title}: no query"
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, title


def test_leading_indicators_has_platform_variable() -> None:
    variables = {v["name"]: v for v in boards()[LEADING]["templating"]["list"]}
    platform = variables["platform"]
    assert platform["type"] == "query"
    assert platform["query"] == "label_values(product_active_users, platform)"
    assert platform["current"]["value"] == "all"
    assert variables["window"]["current"]["value"] == "24h"


def test_leading_timeseries_have_last_week_overlay() -> None:
    for panel in content_panels(boards()[LEADING]):
        if panel["type"] != "timeseries":
            continue
        # what an alert compares with is drawn as it is (no last-week twin)
        exprs = [t["expr"] for t in panel["targets"]
                 if not t["legendFormat"].endswith((BASELINE, ALERT_LINE))]
        now = [e for e in exprs if " offset 1w" not in e]
        last_week = [e for e in exprs if " offset 1w" in e]
        assert now and len(now) == len(last_week), panel["title"]
        for expr in now:
            assert any(lw.replace(" offset 1w", "") == expr for lw in last_week), expr
        dashed = [
            o
            for o in panel["fieldConfig"]["overrides"]
            if o["matcher"]["id"] == "byRegexp"
            and "last week" in o["matcher"]["options"]
            and any(
                p["id"] == "custom.lineStyle" and p["value"]["fill"] == "dash"
                for p in o["properties"]
            )
        ]
        assert dashed, f"{panel['title']}: last-week series not dashed"
        for target in panel["targets"]:
            if " offset 1w" in target["expr"]:
                assert re.search(dashed[0]["matcher"]["options"], target["legendFormat"])


def test_headline_stats_show_the_week_over_week_change_coloured_by_direction() -> None:
    board = boards()[LEADING]
    panels = content_panels(board)
    headline = [p for p in panels if p["gridPos"]["y"] < 6 and p["type"] == "stat"]
    assert [p["title"] for p in headline] == [
        "Active users", "Signups", "Conversions", "Conversion ratio", "Revenue"]
    for panel in headline:
        (now, change) = [t["expr"] for t in panel["targets"]]
        assert change == f"({now} / ({now} offset 1w) - 1)", panel["title"]
        assert panel["options"]["graphMode"] == "area"  # the sparkline
        (wow,) = [o for o in panel["fieldConfig"]["overrides"]
                  if "vs last week" in o["matcher"]["options"]]
        props = {p["id"]: p["value"] for p in wow["properties"]}
        assert props["unit"] == "percentunit"
        assert props["thresholds"]["steps"] == [{"color": "red", "value": None},
                                                {"color": "green", "value": 0}]


def test_trend_panels_draw_what_the_alerts_compare_with() -> None:
    """The baseline and the trigger line of each drop alert, on its panel."""
    panels = {p["title"]: p for p in content_panels(boards()[LEADING])}
    rules = {r.name: r.expr for r in rule_expressions()}
    for title, baseline, factor in (
        ("Active users against the baseline ($window)",
         "leadline:product_active_users:median_1w_2w_3w", "0.85"),
        ("Conversion ratio ($window)", "leadline:product_conversion_ratio:median_1w_2w_3w",
         "0.5"),
        ("Revenue by currency ($window)", "leadline:product_revenue:median_1w_2w_3w", "0.5"),
        ("D$day retention against the baseline",
         "leadline:product_retention_ratio:median_1w_2w_3w", "0.7"),
    ):
        targets = {t["legendFormat"]: t["expr"] for t in panels[title]["targets"]}
        (line,) = [e for legend, e in targets.items() if legend.endswith(BASELINE)]
        (trigger,) = [e for legend, e in targets.items() if legend.endswith(ALERT_LINE)]
        assert line.startswith(baseline + "{") and trigger == f"{factor} * {line}"
        assert baseline in rules
    # the factors are the alerts' own
    alerts = " ".join(r.expr for r in rule_expressions() if r.kind == "alert")
    assert "< 0.85" in alerts and "< 0.5 * leadline:product_conversion_ratio" in alerts
    assert "< 0.5 * leadline:product_revenue:median_1w_2w_3w" in alerts
    assert "< 0.7 * leadline:product_retention_ratio:median_1w_2w_3w" in alerts
    # the cohort panel draws the minimum LeadlineRetentionDrop guards on
    (cohort,) = [t["expr"] for t in panels["Retention cohort size"]["targets"]
                 if t["legendFormat"].endswith(ALERT_LINE)]
    assert cohort in rules and cohort in alerts


def test_performance_panels_draw_what_the_alerts_compare_with() -> None:
    """The p95 panel draws the alert's baseline and trigger line (the baseline times the
    configured factor); the error-ratio, crash-free and volume panels draw the alerts'
    configured threshold or guard: recording rules the alerts read, so the lines follow
    the render_rules.py settings."""
    panels = {p["title"]: p for p in content_panels(boards()[LEADING])}
    rules = {r.name: r.expr for r in rule_expressions()}
    alerts = {r.name: r.expr for r in rule_expressions() if r.kind == "alert"}
    targets = {t["legendFormat"]: t["expr"]
               for t in panels["Response time of $event ($window)"]["targets"]}
    assert [legend for legend in targets if not legend.endswith((BASELINE, ALERT_LINE))] == [
        "p50", "p95", "p99", "p50 · last week", "p95 · last week", "p99 · last week"]
    baseline, factor = ("leadline:product_response_time_seconds:median_1w_2w_3w",
                        "leadline:product_response_time_seconds:configured_factor")
    line = targets["p95" + BASELINE]
    assert line.startswith(baseline + "{")
    assert targets["p95" + ALERT_LINE] == f"{line} * on () group_left () {factor}"
    assert baseline in rules and factor in rules
    assert baseline in alerts["LeadlineResponseTimeHigh"]
    assert factor in alerts["LeadlineResponseTimeHigh"]
    for title, alert in (
        ("Request error ratio by event ($window)", "LeadlineRequestErrorRatioHigh"),
        ("Performance events (5m)", "LeadlineRequestErrorRatioHigh"),
        ("Performance events (5m)", "LeadlineResponseTimeHigh"),
        ("Crash-free users by platform ($window)", "LeadlineCrashFreeUsersLow"),
    ):
        (threshold,) = [t["expr"] for t in panels[title]["targets"]
                        if t["legendFormat"].endswith(ALERT_LINE)]
        assert ":configured_" in threshold and threshold in rules, title
        assert threshold in alerts[alert], (title, alert)


def test_performance_row_follows_the_configured_events() -> None:
    """The `event` variable offers performance.events and opens on the first; the volume
    panel queries exactly those events."""
    events = load_definitions().performance.events
    board = boards()[LEADING]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert [o["value"] for o in variables["event"]["options"]] == events
    assert variables["event"]["current"]["value"] == events[0]
    panels = {p["title"]: p for p in content_panels(board)}
    (now, *_) = [t["expr"] for t in panels["Performance events (5m)"]["targets"]]
    assert f'name=~"{"|".join(events)}"' in now


def test_retention_row_follows_the_configured_days() -> None:
    """One query per retention day, in configured order, each with its last week; the
    `day` variable offers the same days and opens on D7."""
    days = [str(n) for n in load_definitions().retention.days]
    board = boards()[LEADING]
    panels = {p["title"]: p for p in content_panels(board)}
    title = "Retention (" + ", ".join(f"D{n}" for n in days) + ")"
    legends = [t["legendFormat"] for t in panels[title]["targets"]]
    assert legends == [f"D{n}" for n in days] + [f"D{n} · last week" for n in days]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert [o["value"] for o in variables["day"]["options"]] == days
    assert variables["day"]["current"]["value"] == ("7" if "7" in days else days[0])


def test_leading_indicators_cover_the_brief() -> None:
    exprs = " ".join(q.raw_expr for q in panel_queries() if q.dashboard == LEADING)
    for needed in [
        "product_active_users",
        "product_stickiness_ratio",
        "product_signups",
        "product_activation_ratio",
        'product_funnel_users{job="leadline", funnel="checkout"',
        'product_funnel_conversion_ratio{job="leadline", funnel="checkout"',
        "product_conversion_ratio",
        "product_revenue",
        "product_arpu",
        "product_mrr{",
        "product_mrr_movement",
        "product_nps",
        "product_csat",
        "product_refunds",
        "product_subscription_churn_ratio",
        "leadline:product_feature_users:ratio_active_users",
        "product_feature_users",
        "product_time_to_activate_seconds_bucket",
        # SPEC 3b (issue 15)
        "leadline:product_retention_ratio:max",
        'product_retention_ratio{job="leadline", day="7"}',
        "product_retention_cohort_users",
        'product_new_users{job="leadline", platform="all"',
        "product_returning_users",
        "product_user_churn_ratio",
        "product_new_customers",
        "max by (channel, currency) (product_marketing_spend",
        "product_cac",
        "product_ltv",
        "product_net_revenue_retention_ratio",
        # SPEC 3b (issue 16)
        'leadline:product_response_time_seconds:max{quantile="0.95", window="$window"}',
        'leadline:product_response_time_seconds:max{quantile="0.99", event="$event"',
        "leadline:product_request_error_ratio:max",
        "leadline:product_crash_free_users_ratio:max",
        'product_session_duration_seconds{job="leadline", quantile="0.9"',
        "max by (window) (product_sessions{",
    ]:
        assert needed in exprs, needed


def test_pipeline_health_covers_the_brief() -> None:
    exprs = " ".join(q.raw_expr for q in panel_queries() if q.dashboard == PIPELINE)
    for needed in [
        "rate(leadline_events_received_total",
        "sum by (name) (rate(leadline_events_processed_total",
        "sum by (reason) (rate(leadline_events_invalid_total",
        "rate(leadline_events_duplicate_total",
        "histogram_quantile(0.5, sum by (le) (rate(leadline_event_lag_seconds_bucket",
        "histogram_quantile(0.9, sum by (le) (rate(leadline_event_lag_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(leadline_event_lag_seconds_bucket",
        "leadline:watermark_age_seconds:by_instance",
        'up{job="leadline"}',
        "sum by (instance) (rate(leadline_events_processed_total",
        "sum by (topic, partition) (leadline_consumer_lag",
        "leadline:consumer_lag:sum",
        "leadline:workers:expected",
        "process_resident_memory_bytes",
        "leadline_memory_budget_bytes",
        "rate(process_cpu_seconds_total",
        "leadline_state_bytes",
    ]:
        assert needed in exprs, needed


def test_product_gauges_use_max_and_health_metrics_sum() -> None:
    for query in panel_queries():
        for match in re.finditer(r"(?<![\w:])product_\w+\{", query.raw_expr):
            before = query.raw_expr[: match.start()]
            assert re.search(r"max by \([^)]*\) \($", before), f"{query}: product_* not max"
        for match in re.finditer(r"rate\(leadline_\w+", query.raw_expr):
            before = query.raw_expr[: match.start()]
            assert re.search(r"sum( by \([^)]*\))? \($", before), f"{query}: rate not summed"


# -------------------------------------------------------------------- metric names


def test_spec_lists_match_spec_md() -> None:
    """Every SPEC metric is either built or planned by a named open issue, never both."""
    in_spec = spec.spec_metric_names(spec.spec_path().read_text())
    built, planned = set(spec.METRICS), set(spec.PLANNED)
    assert not built & planned, f"both built and planned: {sorted(built & planned)}"
    assert in_spec - built - planned == set(), "in SPEC, neither built nor planned"
    assert (built | planned) - in_spec == set(), "listed here, not in SPEC"
    assert all(isinstance(issue, int) and issue > 0 for issue in spec.PLANNED.values())


def test_nothing_queries_a_planned_metric() -> None:
    planned = set(spec.PLANNED)
    for query in panel_queries():
        assert not metric_names(query.expr) & planned, query
    for rule in rule_expressions():
        assert not metric_names(rule.expr) & planned, rule


def test_metric_name_parser() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{job="x", le!="1"}[5m]))) '
        '/ on (instance) group_left b:c:d offset 1w > bool 3 and time() - e{f="g h"}'
    )
    assert metric_names(expr) == {"a_bucket", "b:c:d", "e"}


def test_panels_only_query_spec_metrics_and_recording_rules() -> None:
    allowed = spec.series_names() | recording_rule_names()
    for query in panel_queries():
        unknown = metric_names(query.expr) - allowed
        assert not unknown, f"{query}: not in SPEC nor a recording rule: {unknown}"


def test_rules_only_query_spec_metrics_and_recording_rules() -> None:
    allowed = spec.series_names() | recording_rule_names()
    for rule in rule_expressions():
        unknown = metric_names(rule.expr) - allowed
        assert not unknown, f"{rule}: not in SPEC nor a recording rule: {unknown}"


def test_panel_variables_all_substituted() -> None:
    for query in panel_queries():
        assert "$" not in query.expr and "[[" not in query.expr, query
    with pytest.raises(KeyError):
        substitute('x{a="$nope"}')


def test_every_exported_product_metric_is_on_a_panel() -> None:
    """Directly, or through a recording rule that reads it (issue 17)."""
    exprs = [q.raw_expr for q in panel_queries() if q.dashboard == LEADING]
    rules = {r.name: r.expr for r in rule_expressions() if r.kind == "record"}
    shown: set[str] = set()
    for expr in exprs:
        for name in metric_names(expr):
            shown.add(name.removesuffix("_bucket"))
            shown |= {m.removesuffix("_bucket") for m in metric_names(rules.get(name, ""))}
    product = {m for m in spec.METRICS if m.startswith("product_")}
    assert product - shown == set()
