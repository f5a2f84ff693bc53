"""Quantiles with a relative-error guarantee, from bucket counts that add up.

A DDSketch (``ddsketch``, Datadog's) with relative accuracy a maps a value x > 0 to the
bucket ``ceil(log_g x)``, g = (1 + a) / (1 - a); the bucket's representative value is
within a of every value in it, so the value it answers for a rank is within a of the
exact value of that rank. Its state is only a count per bucket, so the counts are kept as
sums in cells (label = bucket key, ``z`` for zero): they merge over partitions and time
buckets by addition, a quantile of a window is the quantile of the union of every
partition and bucket (not an average of quantiles), and a value can be taken back
exactly (a session that grows, ``aggregators/sessions.py``). KLL and REQ sketches keep
ranks within a bound, not values, and compact at random, so neither can take a value
back; ``docs/quantiles.md`` has the measured comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ddsketch import DDSketch
from ddsketch.mapping import LogarithmicMapping

#: Relative accuracy of every answer (SPEC: within 2 %).
RELATIVE_ACCURACY = 0.01
ZERO = "z"
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)


def bucket_label(value: float) -> str:
    """The label of the bucket holding ``value`` (>= 0)."""
    if value <= _MAPPING.min_possible:
        return ZERO
    return str(_MAPPING.key(value))


def quantiles(counts: Mapping[str, int], qs: Iterable[float]) -> dict[float, float] | None:
    """q -> value at rank q * (n - 1) (DDSketch's lower quantile), within the relative
    accuracy; None when there is no value."""
    sketch = DDSketch(RELATIVE_ACCURACY)
    for label, n in counts.items():
        if n > 0:
            sketch.add(0.0 if label == ZERO else _MAPPING.value(int(label)), float(n))
    if sketch.count == 0:
        return None
    return {q: float(sketch.get_quantile_value(q) or 0.0) for q in qs}  # not None: count > 0
