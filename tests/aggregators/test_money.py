"""Exact money in micro-units."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadline.aggregators.money import MICROS, from_micros, to_micros


@pytest.mark.parametrize(
    ("amount", "micros"),
    [
        (19.99, 19_990_000),
        (0.01, 10_000),
        (4.99, 4_990_000),
        (9.95, 9_950_000),
        (1234.56, 1_234_560_000),
        (0.000001, 1),
        (0.1, 100_000),
        (0.3, 300_000),
        (1e-7, 0),
        (0.0, 0),
        (99999.999999, 99_999_999_999),
    ],
)
def test_typical_prices_are_exact(amount: float, micros: int) -> None:
    assert to_micros(amount) == micros


def test_decimal_semantics_not_float_semantics() -> None:
    assert 0.1 + 0.2 != 0.3
    assert to_micros(0.1) + to_micros(0.2) == to_micros(0.3)
    assert sum(to_micros(19.99) for _ in range(1000)) == 19_990_000_000


@pytest.mark.parametrize(("amount", "micros"), [(0, 0), (1, 1_000_000), (250, 250_000_000),
                                                (10**15, 10**21)])
def test_ints(amount: int, micros: int) -> None:
    result = to_micros(amount)
    assert result == micros
    assert type(result) is int


def test_huge_float_is_an_exact_integer() -> None:
    assert to_micros(1e308) == 10**314
    assert to_micros(1.5e20) == 15 * 10**25


@pytest.mark.parametrize(
    ("amount", "micros"),
    [
        (0.0000005, 0),          # 0.5 -> 0 (even)
        (0.0000015, 2),          # 1.5 -> 2
        (0.0000025, 2),          # 2.5 -> 2
        (0.0000035, 4),
        (1.0000005, 1_000_000),
        (1.0000015, 1_000_002),
        (0.00000075, 1),         # 0.75 -> 1
        (0.00000049, 0),
        (2.1234567, 2_123_457),
    ],
)
def test_half_even_beyond_six_decimals(amount: float, micros: int) -> None:
    assert to_micros(amount) == micros


def test_from_micros() -> None:
    assert from_micros(19_990_000) == 19.99
    assert from_micros(0) == 0.0
    assert MICROS == 10**6


amounts = st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False,
                      allow_infinity=False)


@given(st.lists(amounts, max_size=50))
def test_sum_of_micros_is_exact(values: list[Decimal]) -> None:
    # the producer sends JSON numbers, which arrive as floats
    total = sum(to_micros(float(v)) for v in values)
    assert total == sum(values, Decimal(0)) * MICROS
    for v in values:
        assert to_micros(float(v)) == v * MICROS
