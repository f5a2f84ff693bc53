"""Compare a worker's scrape with the oracle: sums exactly, distinct counts exactly up to
1,000 identities and within 2 % beyond (SPEC v2)."""

from __future__ import annotations

from tests.support.oracle import Truth
from tests.support.worker import Samples

DISTINCT = {"product_active_users"}
RATIOS = {"product_conversion_ratio", "product_arpu", "product_stickiness_ratio"}


#: SPEC v2: distinct counts are exact up to this many identities.
EXACT_DISTINCT = 1000


def distinct_slack(n: float) -> float:
    """How far a distinct count of ``n`` identities may be off: 0 up to 1,000, 2 % beyond."""
    return 0.0 if n <= EXACT_DISTINCT else 0.02 * n


def mismatches(samples: Samples, truth: Truth, now: float) -> list[str]:
    """Every expected sample that the scrape gets wrong (empty list: all agree)."""
    bad = []
    for (name, labels), want in truth.expected(now).items():
        got = samples.get((name, labels))
        where = f"{name}{dict(sorted(labels))}"
        if got is None:
            bad.append(f"{where}: missing (want {want})")
        elif name in DISTINCT:
            if abs(got - want) > distinct_slack(want):
                bad.append(f"{where}: got {got}, want {want} (+-{distinct_slack(want):g})")
        elif name in RATIOS:
            if abs(got - want) > max(0.03 * abs(want), 0.005):
                bad.append(f"{where}: got {got}, want {want} (+-3%)")
        elif got != want:
            bad.append(f"{where}: got {got!r}, want {want!r} (exact)")
    return bad
