"""Compare a worker's scrape with the oracle: sums exactly, distinct counts within 2 %."""

from __future__ import annotations

from tests.support.oracle import Truth
from tests.support.worker import Samples

DISTINCT = {"product_active_users"}
RATIOS = {"product_conversion_ratio", "product_arpu", "product_stickiness_ratio"}


def mismatches(samples: Samples, truth: Truth, now: float) -> list[str]:
    """Every expected sample that the scrape gets wrong (empty list: all agree)."""
    bad = []
    for (name, labels), want in truth.expected(now).items():
        got = samples.get((name, labels))
        where = f"{name}{dict(sorted(labels))}"
        if got is None:
            bad.append(f"{where}: missing (want {want})")
        elif name in DISTINCT:
            # HyperLogLog: 2 % (SPEC), and at least one user for tiny sets.
            if abs(got - want) > max(0.02 * want, 1.0):
                bad.append(f"{where}: got {got}, want {want} (+-2%)")
        elif name in RATIOS:
            if abs(got - want) > max(0.03 * abs(want), 0.005):
                bad.append(f"{where}: got {got}, want {want} (+-3%)")
        elif got != want:
            bad.append(f"{where}: got {got!r}, want {want!r} (exact)")
    return bad
