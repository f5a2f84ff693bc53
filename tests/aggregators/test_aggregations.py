"""Monoid laws of the aggregations (DESIGN: zero is neutral, merge associative)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from leadline.aggregators.aggregations import DISTINCT, SUM, Distinct, Sum
from leadline.aggregators.sketch import HyperLogLog

ints = st.integers(min_value=-(2**80), max_value=2**80)
sketches = st.lists(st.text(max_size=8), max_size=30).map(
    lambda items: _sketch(items)
)


def _sketch(items: list[str]) -> HyperLogLog:
    h = HyperLogLog()
    for i in items:
        h.add(i)
    return h


def test_singletons() -> None:
    assert isinstance(SUM, Sum)
    assert isinstance(DISTINCT, Distinct)


@given(ints, ints, ints)
def test_sum_laws(a: int, b: int, c: int) -> None:
    assert SUM.merge(SUM.merge(a, b), c) == SUM.merge(a, SUM.merge(b, c))
    assert SUM.merge(a, b) == SUM.merge(b, a)
    assert SUM.merge(SUM.zero(), a) == a == SUM.merge(a, SUM.zero())


@given(st.lists(st.integers(min_value=0, max_value=10**12), max_size=30))
def test_sum_result_is_the_total(values: list[int]) -> None:
    acc = SUM.zero()
    for v in values:
        acc = SUM.merge(acc, v)
    assert SUM.result(acc) == float(sum(values))
    assert isinstance(SUM.result(acc), float)


@given(sketches, sketches, sketches)
def test_distinct_is_associative_and_commutative(
    a: HyperLogLog, b: HyperLogLog, c: HyperLogLog
) -> None:
    assert DISTINCT.merge(DISTINCT.merge(a, b), c) == DISTINCT.merge(a, DISTINCT.merge(b, c))
    assert DISTINCT.merge(a, b) == DISTINCT.merge(b, a)


@given(sketches)
def test_distinct_zero_is_neutral(a: HyperLogLog) -> None:
    assert DISTINCT.merge(DISTINCT.zero(), a) == a
    assert DISTINCT.merge(a, DISTINCT.zero()) == a
    assert DISTINCT.result(DISTINCT.zero()) == 0


@given(sketches, sketches)
def test_distinct_merge_never_mutates_its_inputs(a: HyperLogLog, b: HyperLogLog) -> None:
    a_before, b_before = a.copy(), b.copy()
    DISTINCT.merge(a, b)
    assert a == a_before
    assert b == b_before


def test_distinct_is_a_union_not_a_sum() -> None:
    a = _sketch([f"u{i}" for i in range(100)])
    b = _sketch([f"u{i}" for i in range(50, 150)])
    assert abs(DISTINCT.result(DISTINCT.merge(a, b)) - 150) <= 2
    assert abs(DISTINCT.result(DISTINCT.merge(a, a)) - 100) <= 2
