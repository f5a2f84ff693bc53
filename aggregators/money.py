"""Exact money: amounts become whole micro-units (10^-6 of the major unit) at ingest.

Sums of integers are exact and independent of order, which floats are not; a PM
comparing leadline's revenue with the billing system sees the same number. Amounts
with more than six decimals are rounded half-to-even once, on the way in.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

MICROS = 1_000_000


def to_micros(amount: float | int) -> int:
    """A validated amount (finite, >= 0) -> micro-units, using its shortest decimal text."""
    if isinstance(amount, int):
        return amount * MICROS
    return int((Decimal(repr(amount)) * MICROS).to_integral_value(ROUND_HALF_EVEN))


def from_micros(micros: int) -> float:
    """Micro-units -> the major unit, for exposition."""
    return micros / MICROS
