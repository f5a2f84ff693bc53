"""``GET /metrics``: global product gauges from the serving view + this worker's health."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from leadline.aggregators.cells import Cell
from leadline.aggregators.indicators import HISTOGRAMS, Indicators, Sample
from leadline.aggregators.kinds import CellKey
from leadline.serving.health import Health
from leadline.serving.view import ServingView

HELP = {
    "product_active_users": "Distinct users with any valid event in the window (exact up to "
                            "1,000, HyperLogLog beyond).",
    "product_stickiness_ratio": "Active users 24h / active users 30d.",
    "product_events": "Valid events in the window, by name.",
    "product_conversions": "Conversion events in the window.",
    "product_conversion_ratio": "Distinct converting users / distinct active users.",
    "product_revenue": "Sum of purchase amounts in the window, in the currency's major unit.",
    "product_arpu": "Revenue / active users (all platforms) in the window.",
    "product_signups": "Distinct users with a signup event in the window (exact up to 1,000, "
                       "HyperLogLog beyond).",
    "product_activation_ratio": "Of the users whose first signup is in the window, the share "
                                "with an activation event within activation.within after it.",
    "product_time_to_activate_seconds": "Signup -> first activation (within activation.within), "
                                        "users whose first signup is in the longest window. "
                                        "A snapshot: never rate() it.",
    "product_funnel_users": "Distinct users who entered the funnel in the window and reached "
                            "this step in order within the funnel's conversion window.",
    "product_funnel_conversion_ratio": "Funnel users at this step / funnel users at the first "
                                       "step, same window.",
    "product_refunds": "Sum of refund amounts in the window, in the currency's major unit.",
    "product_mrr": "Monthly recurring revenue of current subscriptions (latest subscription "
                   "event of each user by event time), major unit.",
    "product_mrr_movement": "MRR change in the window by kind: new, expansion, contraction, "
                            "churn (major unit, >= 0).",
    "product_subscription_churn_ratio": "Cancellations in the window / subscriptions active "
                                        "at the window's start.",
    "product_nps": "Net promoter score of the window's NPS responses: % 9-10 - % 0-6.",
    "product_csat": "Mean CSAT score of the window's responses.",
    "product_survey_responses": "Survey responses in the window, by survey.",
    "product_feature_users": "Distinct users of each configured feature in the window (HLL).",
    "product_sessions_per_user": "Session events / active users (all platforms) in the window.",
}


class ProductCollector(Collector):
    """Yields the last computed product samples (set by :class:`MetricsEndpoint`)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def collect(self) -> Iterator[Metric]:
        by_metric: dict[str, list[Sample]] = defaultdict(list)
        histograms: dict[str, list[Sample]] = defaultdict(list)
        for s in self.samples:
            base = s.metric.rsplit("_", 1)[0]
            if base in HISTOGRAMS:
                histograms[base].append(s)
            else:
                by_metric[s.metric].append(s)
        for metric, samples in histograms.items():
            buckets = [(dict(s.labels)["le"], s.value) for s in samples
                       if s.metric.endswith("_bucket")]
            total = next(s.value for s in samples if s.metric.endswith("_sum"))
            yield HistogramMetricFamily(metric, HELP.get(metric, metric), buckets=buckets,
                                        sum_value=total)
        for metric, samples in by_metric.items():
            family = GaugeMetricFamily(metric, HELP.get(metric, metric),
                                       labels=[k for k, _ in samples[0].labels])
            for s in samples:
                family.add_metric([v for _, v in s.labels], s.value)
            yield family


class MetricsEndpoint:
    """Builds the exposition; the Redis read is shared by scrapes within ``cache_seconds``."""

    def __init__(self, view: ServingView, indicators: Indicators, health: Health,
                 cache_seconds: float,
                 local: Callable[[], Mapping[int, Mapping[CellKey, Cell]]] | None = None,
                 ) -> None:
        self.view = view
        #: The cells of the partitions this worker owns (``ServingView.read``).
        self.local = local
        self.indicators = indicators
        self.health = health
        self.cache_seconds = cache_seconds
        self.registry = CollectorRegistry()
        self.products = ProductCollector()
        self.registry.register(self.products)
        self.registry.register(health)
        # process_* (CPU seconds, resident memory, open files) and python_info: the SRE
        # board's resources row and LeadlineMemoryOverBudget read them.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._at = 0.0
        self._body = b""
        self._cells: list = []

    async def render(self) -> bytes:
        now = time.time()
        if now - self._at >= self.cache_seconds or not self._body:
            try:
                self._cells = await self.view.read(self.local() if self.local else None)
            except Exception as exc:
                # Redis down: windows still slide over the last cells read, and
                # leadline_redis_up says the view is stale. Not logged: every scrape
                # would repeat what the maintenance timer's check already says.
                self.health.redis_failed("read", exc, log=False)
            self.products.samples = self.indicators.compute(self._cells, now)
            self._body = generate_latest(self.registry)
            self._at = now
        return self._body
