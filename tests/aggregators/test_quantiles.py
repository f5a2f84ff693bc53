"""DDSketch bucket counts as cell sums: within 1 % of the exact rank, mergeable, undoable."""

from __future__ import annotations

import math
import random
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from leadline.aggregators.quantiles import RELATIVE_ACCURACY, ZERO, bucket_label, quantiles

QS = (0.5, 0.9, 0.95, 0.99)


def exact(values: list[float], q: float) -> float:
    """The value of rank floor(q * (n - 1)) in sorted order (SPEC's quantile rule)."""
    return sorted(values)[math.floor(q * (len(values) - 1))]


def counts(values: list[float]) -> Counter[str]:
    return Counter(bucket_label(v) for v in values)


def close(got: float, want: float) -> bool:
    if want == 0:
        return got == 0
    return abs(got - want) <= RELATIVE_ACCURACY * want * (1 + 1e-9)


values = st.lists(st.one_of(st.just(0.0), st.floats(min_value=1e-3, max_value=3600.0)),
                  min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(values)
def test_every_quantile_is_within_the_relative_accuracy(vs: list[float]) -> None:
    got = quantiles(counts(vs), QS)
    assert got is not None
    for q in QS:
        assert close(got[q], exact(vs, q)), (q, got[q], exact(vs, q))


@settings(max_examples=100, deadline=None)
@given(st.lists(values, min_size=2, max_size=6))
def test_the_sum_of_pieces_answers_for_their_union(pieces: list[list[float]]) -> None:
    merged: Counter[str] = Counter()
    for piece in pieces:
        merged.update(counts(piece))
    union = [v for piece in pieces for v in piece]
    assert quantiles(merged, QS) == quantiles(counts(union), QS)


@settings(max_examples=100, deadline=None)
@given(values, values)
def test_a_value_taken_back_leaves_the_rest(keep: list[float], extra: list[float]) -> None:
    both = counts(keep + extra)
    both.subtract(counts(extra))
    assert quantiles(both, QS) == quantiles(counts(keep), QS)


def test_no_value_no_answer_and_zero_is_exact() -> None:
    assert quantiles({}, QS) is None
    assert quantiles({"17": 0}, QS) is None  # a bucket emptied by subtraction
    assert bucket_label(0.0) == ZERO
    assert quantiles({ZERO: 5}, QS) == dict.fromkeys(QS, 0.0)


def test_a_heavy_tail_of_a_million_values() -> None:
    rng = random.Random(7)
    vs = [rng.lognormvariate(math.log(0.2), 1.0) for _ in range(100_000)]
    vs += [rng.uniform(5, 30) for _ in range(2_000)]  # a slow tail
    got = quantiles(counts(vs), QS)
    assert got is not None
    assert all(close(got[q], exact(vs, q)) for q in QS)
    assert len(counts(vs)) < 1200  # buckets held: the cell size does not grow with n
