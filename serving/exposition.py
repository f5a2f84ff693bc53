"""``GET /metrics``: global product gauges from the serving view + this worker's health."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aggregators.indicators import Indicators, Sample
from serving.health import Health
from serving.view import ServingView

HELP = {
    "product_active_users": "Distinct users with any valid event in the window (HLL, ~1% error).",
    "product_stickiness_ratio": "Active users 24h / active users 30d.",
    "product_events": "Valid events in the window, by name.",
    "product_conversions": "Conversion events in the window.",
    "product_conversion_ratio": "Distinct converting users / distinct active users.",
    "product_revenue": "Sum of purchase amounts in the window, in the currency's major unit.",
    "product_arpu": "Revenue / active users (all platforms) in the window.",
}


class ProductCollector(Collector):
    """Yields the last computed product samples (set by :class:`MetricsEndpoint`)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def collect(self) -> Iterator[Metric]:
        by_metric: dict[str, list[Sample]] = defaultdict(list)
        for s in self.samples:
            by_metric[s.metric].append(s)
        for metric, samples in by_metric.items():
            family = GaugeMetricFamily(metric, HELP.get(metric, metric),
                                       labels=[k for k, _ in samples[0].labels])
            for s in samples:
                family.add_metric([v for _, v in s.labels], s.value)
            yield family


class MetricsEndpoint:
    """Builds the exposition; the Redis read is shared by scrapes within ``cache_seconds``."""

    def __init__(self, view: ServingView, indicators: Indicators, health: Health,
                 cache_seconds: float) -> None:
        self.view = view
        self.indicators = indicators
        self.health = health
        self.cache_seconds = cache_seconds
        self.registry = CollectorRegistry()
        self.products = ProductCollector()
        self.registry.register(self.products)
        self.registry.register(health)
        self._at = 0.0
        self._body = b""
        self._cells: list = []

    async def render(self) -> bytes:
        now = time.time()
        if now - self._at >= self.cache_seconds or not self._body:
            try:
                self._cells = await self.view.read()
            except Exception:
                # Redis down: windows still slide over the last cells read, and
                # leadline_redis_up says the view is stale.
                self.health.redis_up = 0
                self.health.redis_errors += 1
            self.products.samples = self.indicators.compute(self._cells, now)
            self._body = generate_latest(self.registry)
            self._at = now
        return self._body
