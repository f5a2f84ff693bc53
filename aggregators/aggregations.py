"""Aggregations as small monoids: ``zero()``, ``merge(a, b)``, ``result(value)``.

Trailing windows merge buckets and the serving view merges partitions, so every
aggregation must merge associatively with a neutral zero (tested with hypothesis).
"""

from __future__ import annotations

from typing import Any, Protocol

from leadline.aggregators.sketch import HyperLogLog, union


class Aggregation(Protocol):
    def zero(self) -> Any: ...
    def merge(self, a: Any, b: Any) -> Any: ...
    def result(self, value: Any) -> float: ...


class Sum:
    """Counts and exact integer sums (money in micro-units)."""

    def zero(self) -> int:
        return 0

    def merge(self, a: int, b: int) -> int:
        return a + b

    def result(self, value: int) -> float:
        return float(value)


class Distinct:
    """Distinct identities, as a HyperLogLog; merge is a union, never a sum."""

    def zero(self) -> HyperLogLog:
        return HyperLogLog()

    def merge(self, a: HyperLogLog, b: HyperLogLog) -> HyperLogLog:
        return union([a, b])

    def result(self, value: HyperLogLog) -> float:
        return value.count()


SUM = Sum()
DISTINCT = Distinct()
