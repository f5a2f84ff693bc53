"""The metric contract of SPEC.md section 3, as data for the observability tests.

``METRICS`` must list exactly the names SPEC.md lists (checked against the file
when it is reachable, ``../shared/SPEC.md`` beside the repository), plus the
per-partition consumer lag gauge the worker exports for the SRE board.
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
    "leadline_events_received_total": ("counter", ()),
    "leadline_events_processed_total": ("counter", ("name",)),
    "leadline_events_invalid_total": ("counter", ("reason",)),
    "leadline_events_duplicate_total": ("counter", ()),
    "leadline_event_lag_seconds": ("histogram", ()),
    "leadline_watermark_timestamp_seconds": ("gauge", ()),
    "leadline_build_info": ("gauge", ("version",)),
}

#: Not in SPEC's table; agreed with the worker: messages behind the high watermark.
EXTRA_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    "leadline_consumer_lag": ("gauge", ("topic", "partition")),
}

#: Series Prometheus itself adds to every scrape target.
PROMETHEUS_SERIES = frozenset({"up"})


def spec_path() -> Path | None:
    return next((p for p in SPEC_CANDIDATES if p.is_file()), None)


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
