"""The metric contract of SPEC.md section 3, as data for the observability tests.

SPEC.md's metric tables (``../shared/SPEC.md`` beside the repository) are split in two:

- ``METRICS``: in SPEC and built. A worker exports them, so dashboards, rules and the
  fake worker may use them.
- ``PLANNED``: in SPEC, not built yet, each with the open issue that builds it. Nothing
  may query them yet. An issue that lands moves its names from ``PLANNED`` to ``METRICS``;
  empty when every SPEC metric is built (as since issue 16).

Together they must equal SPEC.md's list, with no name in both. ``EXTRA_METRICS`` holds
what the worker exports beyond SPEC (the per-partition consumer lag for the SRE board).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPEC_CANDIDATES = (REPO.parent / "shared" / "SPEC.md", REPO / "shared" / "SPEC.md")

#: name -> (type, label names), from SPEC.md section 3.
METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "product_active_users": ("gauge", ("window", "platform")),
    "product_stickiness_ratio": ("gauge", ("platform",)),
    "product_events": ("gauge", ("window", "name")),
    "product_signups": ("gauge", ("window", "platform")),
    "product_activation_ratio": ("gauge", ("window",)),
    "product_time_to_activate_seconds": ("histogram", ()),
    "product_conversions": ("gauge", ("window",)),
    "product_conversion_ratio": ("gauge", ("window", "platform")),
    "product_funnel_users": ("gauge", ("funnel", "step", "window")),
    "product_funnel_conversion_ratio": ("gauge", ("funnel", "step", "window")),
    "product_revenue": ("gauge", ("window", "currency")),
    "product_refunds": ("gauge", ("window", "currency")),
    "product_arpu": ("gauge", ("window", "currency")),
    "product_mrr": ("gauge", ("currency", "plan")),
    "product_mrr_movement": ("gauge", ("kind", "window", "currency")),
    "product_subscription_churn_ratio": ("gauge", ("window",)),
    "product_nps": ("gauge", ("window",)),
    "product_survey_responses": ("gauge", ("window", "survey")),
    "product_csat": ("gauge", ("window",)),
    "product_feature_users": ("gauge", ("feature", "window")),
    "product_sessions_per_user": ("gauge", ("window",)),
    # SPEC 3b, issue 15: lifecycle metrics
    "product_new_users": ("gauge", ("window", "platform")),
    "product_returning_users": ("gauge", ("window",)),
    "product_retention_ratio": ("gauge", ("day",)),
    "product_retention_cohort_users": ("gauge", ("day",)),
    "product_user_churn_ratio": ("gauge", ("window",)),
    "product_new_customers": ("gauge", ("window",)),
    "product_marketing_spend": ("gauge", ("window", "currency", "channel")),
    "product_cac": ("gauge", ("window", "currency")),
    "product_ltv": ("gauge", ("currency",)),
    "product_net_revenue_retention_ratio": ("gauge", ("window", "currency")),
    # SPEC 3b, issue 16: sessions and technical performance
    "product_sessions": ("gauge", ("window",)),
    "product_session_duration_seconds": ("gauge", ("window", "quantile")),
    "product_response_time_seconds": ("gauge", ("window", "event", "quantile")),
    "product_request_error_ratio": ("gauge", ("window", "event")),
    "product_crash_free_users_ratio": ("gauge", ("window", "platform")),
    "leadline_events_received_total": ("counter", ()),
    "leadline_events_processed_total": ("counter", ("name",)),
    "leadline_events_invalid_total": ("counter", ("reason",)),
    "leadline_messages_ignored_total": ("counter", ("type",)),
    "leadline_events_duplicate_total": ("counter", ()),
    "leadline_event_lag_seconds": ("histogram", ()),
    "leadline_watermark_timestamp_seconds": ("gauge", ()),
    "leadline_build_info": ("gauge", ("version",)),
}

#: In SPEC, not built yet: name -> the open issue that builds it. Empty while every
#: SPEC metric is built (issue 16 moved the last ones); a SPEC change that adds a metric
#: lists it here, with its issue, until a worker exports it.
PLANNED: dict[str, int] = {}

#: Not in SPEC's table; agreed with the worker: messages behind the high watermark.
EXTRA_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "leadline_consumer_lag": ("gauge", ("topic", "partition")),
    # A partition whose records cannot be read (streams/faust_adapter.py, issue 19).
    "leadline_partition_stalled": ("gauge", ("topic", "partition")),
    "leadline_fetch_errors_total": ("counter", ("topic", "partition", "error")),
    # 1 while the worker reaches Redis / the broker (serving/health.py; alerts
    # LeadlineRedisDown and LeadlineBrokerDown, issue 17).
    "leadline_redis_up": ("gauge", ()),
    "leadline_broker_up": ("gauge", ()),
    # What the state holds, and its memory, by kind (serving/health.py).
    "leadline_state_entries": ("gauge", ("kind",)),
    "leadline_state_bytes": ("gauge", ("kind",)),
    # LEADLINE_MEMORY_BUDGET (issue 14); LeadlineMemoryOverBudget compares RSS with it.
    "leadline_memory_budget_bytes": ("gauge", ()),
    # RssAnon: what the budget bounds (file pages of mapped id files are the kernel's).
    "leadline_resident_anonymous_bytes": ("gauge", ()),
    # prometheus-client's process collector (issue 17: the SRE board's resources row).
    "process_resident_memory_bytes": ("gauge", ()),
    "process_cpu_seconds_total": ("counter", ()),
    "process_start_time_seconds": ("gauge", ()),
}

#: Series Prometheus itself adds to every scrape target.
PROMETHEUS_SERIES = frozenset({"up"})


def spec_path() -> Path:
    """SPEC.md; its absence is an error, never a skip (CI always has ``../shared``)."""
    found = next((p for p in SPEC_CANDIDATES if p.is_file()), None)
    if found is None:
        tried = ", ".join(str(p) for p in SPEC_CANDIDATES)
        raise FileNotFoundError(f"SPEC.md not found (tried {tried}): the metric contract "
                                "cannot be checked without it")
    return found


def spec_metric_names(text: str) -> set[str]:
    """Metric names in the first column of SPEC.md's section-3 tables."""
    section = text.split("## 3.", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `((?:product|leadline)_[a-z_]+)", section, flags=re.M))


def series_names() -> set[str]:
    """Every series name a scrape of a worker may hold (histograms expanded)."""
    names: set[str] = set(PROMETHEUS_SERIES)
    for name, (kind, _labels) in {**METRICS, **EXTRA_METRICS}.items():
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names
