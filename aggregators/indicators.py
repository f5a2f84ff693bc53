"""The product gauges of SPEC section 3, computed from cells at one instant ``now``.

Input is every cell of every partition (in any order, duplicates of a key across
partitions allowed); output is plain samples, so the Prometheus side stays thin.
Ratios with a zero denominator are 0, never NaN, so alert expressions stay simple.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from aggregators.buckets import WindowPlan
from aggregators.cells import Cell
from aggregators.labels import ALL, OTHER, LabelSets
from aggregators.money import MICROS
from aggregators.partition import CONVERTERS, EVENTS, REVENUE, USERS, CellKey
from aggregators.sketch import HyperLogLog, union
from config.definitions import Definitions

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    metric: str
    labels: Labels
    value: float


def _major(micros: int) -> float:
    try:
        return micros / MICROS
    except OverflowError:  # beyond a float (sums of 1e308 amounts): say so, don't crash
        return float("inf")


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


class Indicators:
    """Turns cells into samples for the configured windows and label sets."""

    def __init__(self, definitions: Definitions) -> None:
        self.plan = WindowPlan(definitions.window_seconds)
        self.labels = LabelSets(definitions)
        self.platforms = (*self.labels.platforms, OTHER)
        self.currencies = (*self.labels.currencies, OTHER)
        self.names = (*sorted(self.labels.names), OTHER)
        self.conversion = definitions.events.conversion

    def compute(self, cells: Iterable[tuple[CellKey, Cell]], now: float) -> list[Sample]:
        sketches: dict[tuple[str, str, str], list[HyperLogLog]] = defaultdict(list)
        sums: dict[tuple[str, str, str], int] = defaultdict(int)
        windows = self.plan.windows
        res_of = self.plan.resolution_of
        for (kind, res, start), cell in cells:
            for window, length in windows.items():
                if res_of[window] != res or start < now - length:
                    continue
                if kind in (USERS, CONVERTERS):
                    for label, hll in cell.values.items():
                        sketches[(kind, window, label)].append(hll)
                else:
                    for label, amount in cell.values.items():
                        sums[(kind, window, label)] += amount
        out: list[Sample] = []
        active_all: dict[str, float] = {}
        for window in windows:
            per_kind: dict[str, dict[str, float]] = {}
            for kind in (USERS, CONVERTERS):
                merged = {p: union(sketches.get((kind, window, p), [])) for p in self.platforms}
                counts = {p: h.count() for p, h in merged.items()}
                counts[ALL] = union(list(merged.values())).count()
                per_kind[kind] = counts
            active_all[window] = per_kind[USERS][ALL]
            for p in (*self.platforms, ALL):
                active = per_kind[USERS][p]
                out.append(Sample("product_active_users", (("window", window), ("platform", p)),
                                  round(active)))
                out.append(Sample("product_conversion_ratio",
                                  (("window", window), ("platform", p)),
                                  _ratio(round(per_kind[CONVERTERS][p]), round(active))))
            for name in self.names:
                out.append(Sample("product_events", (("window", window), ("name", name)),
                                  sums.get((EVENTS, window, name), 0)))
            out.append(Sample("product_conversions", (("window", window),),
                              sums.get((EVENTS, window, self.conversion), 0)))
            for currency in self.currencies:
                revenue = _major(sums.get((REVENUE, window, currency), 0))
                out.append(Sample("product_revenue", (("window", window), ("currency", currency)),
                                  revenue))
                out.append(Sample("product_arpu", (("window", window), ("currency", currency)),
                                  _ratio(revenue, round(active_all[window]))))
        if "24h" in windows and "30d" in windows:
            for p in (*self.platforms, ALL):
                day = next(s.value for s in out if s.metric == "product_active_users"
                           and s.labels == (("window", "24h"), ("platform", p)))
                month = next(s.value for s in out if s.metric == "product_active_users"
                             and s.labels == (("window", "30d"), ("platform", p)))
                out.append(Sample("product_stickiness_ratio", (("platform", p),),
                                  _ratio(day, month)))
        return out
