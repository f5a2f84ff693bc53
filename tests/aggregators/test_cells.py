"""Cell encoding: count cells (JSON) and sketch cells (framed HyperLogLogs)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadline.aggregators.cells import Cell
from leadline.aggregators.sketch import HyperLogLog

offsets = st.integers(min_value=-1, max_value=2**63 - 1)
labels = st.text(min_size=0, max_size=20)
counts = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def _sketch(items: list[str]) -> HyperLogLog:
    h = HyperLogLog()
    for i in items:
        h.add(i)
    return h


sketches = st.lists(st.text(max_size=6), min_size=0, max_size=25).map(_sketch)


@given(offsets, st.dictionaries(labels, counts, max_size=12))
def test_count_cell_round_trip(offset: int, values: dict[str, int]) -> None:
    cell = Cell(offset, values)
    data = cell.encode()
    assert data[:1] == b"C"
    back = Cell.decode(data)
    assert back == cell
    assert back.offset == offset
    assert back.values == values
    assert all(type(v) is int for v in back.values.values())


@given(offsets, st.dictionaries(labels, sketches, min_size=1, max_size=6))
def test_sketch_cell_round_trip(offset: int, values: dict[str, HyperLogLog]) -> None:
    cell = Cell(offset, values)
    data = cell.encode()
    assert data[:1] == b"H"
    back = Cell.decode(data)
    assert back.offset == offset
    assert list(back.values) == list(values)
    for label, hll in values.items():
        assert isinstance(back.values[label], HyperLogLog)
        assert back.values[label] == hll


def test_dense_sketch_cell_round_trip() -> None:
    big = _sketch([f"u{i}" for i in range(30_000)])
    cell = Cell(42, {"web": big, "ios": _sketch(["a"]), "ünïcode": HyperLogLog()})
    back = Cell.decode(cell.encode())
    assert back == cell


def test_default_cell() -> None:
    cell = Cell()
    assert cell.offset == -1
    assert cell.values == {}
    assert Cell.decode(cell.encode()) == cell


@pytest.mark.parametrize("garbage", [b"", b"Z123", b"xx"])
def test_decode_rejects_unknown_kinds(garbage: bytes) -> None:
    with pytest.raises(ValueError):
        Cell.decode(garbage)


def test_count_cell_with_a_sum_beyond_64_bits_round_trips() -> None:
    cell = Cell(7, {"USD": 10**20})
    assert Cell.decode(cell.encode()) == cell
