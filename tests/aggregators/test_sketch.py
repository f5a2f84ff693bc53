"""HyperLogLog: accuracy, monoid laws, serialization, stable hashing."""

from __future__ import annotations

import random
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadline.aggregators.sketch import EXACT_MAX, SPARSE_MAX, HyperLogLog, M, hash64, union

identities = st.lists(st.text(max_size=12), max_size=40)


def sketch_from_raises(raises: list[tuple[int, int]]) -> HyperLogLog:
    """Registers raised as the fold raises them: only where the rank is higher (no hashes
    given, so counts are estimated)."""
    h = HyperLogLog()
    h.exact = None
    for idx, rank in raises:
        if h.regs[idx] < rank:
            h.raise_register(idx, rank)
    return h


def sketch_of(items: list[str]) -> HyperLogLog:
    h = HyperLogLog()
    for item in items:
        h.add(item)
    return h


@pytest.mark.parametrize("n", [1_000, 10_000, 50_000, 200_000])
def test_accuracy_within_two_percent(n: int) -> None:
    h = sketch_of([f"user-{i}" for i in range(n)])
    assert abs(h.count() - n) <= 0.02 * n, h.count()


@pytest.mark.parametrize("n", [1, 2, 10, 100])
def test_small_counts_are_nearly_exact(n: int) -> None:
    h = sketch_of([f"anon:{i}" for i in range(n)])
    assert abs(h.count() - n) <= 0.5 + 0.01 * n


def test_empty_sketch_counts_zero() -> None:
    assert HyperLogLog().count() == 0
    assert union([]).count() == 0
    assert len(HyperLogLog().registers) == M


def test_add_is_idempotent() -> None:
    h = sketch_of(["a", "b", "c"])
    before = bytes(h.registers)
    for _ in range(5):
        h.add("a")
        h.add("c")
    assert bytes(h.registers) == before
    assert abs(h.count() - 3) < 0.5


def test_many_repeats_count_once() -> None:
    h = sketch_of(["same"] * 10_000 + ["other"] * 500)
    assert abs(h.count() - 2) < 0.5


def _merged(*sketches: HyperLogLog) -> HyperLogLog:
    out = HyperLogLog()
    for s in sketches:
        out.merge(s)
    return out


@given(identities, identities, identities)
def test_merge_is_associative(a: list[str], b: list[str], c: list[str]) -> None:
    sa, sb, sc = sketch_of(a), sketch_of(b), sketch_of(c)
    left = sa.copy().merge(sb).merge(sc)
    right = sa.copy().merge(sb.copy().merge(sc))
    assert left == right


@given(identities, identities)
def test_merge_is_commutative_and_equals_sketch_of_union(a: list[str], b: list[str]) -> None:
    sa, sb = sketch_of(a), sketch_of(b)
    assert sa.copy().merge(sb) == sb.copy().merge(sa)
    assert sa.copy().merge(sb) == sketch_of(a + b)


@given(identities)
def test_empty_is_neutral(a: list[str]) -> None:
    sa = sketch_of(a)
    assert sa.copy().merge(HyperLogLog()) == sa
    assert HyperLogLog().merge(sa) == sa
    assert union([sa, HyperLogLog()]) == sa


@given(st.lists(identities, max_size=6))
def test_union_equals_pairwise_merges(parts: list[list[str]]) -> None:
    sketches = [sketch_of(p) for p in parts]
    snapshot = [bytes(s.registers) for s in sketches]
    assert union(sketches) == _merged(*sketches)
    assert [bytes(s.registers) for s in sketches] == snapshot  # union copies, never mutates


@given(identities, st.randoms(use_true_random=False))
def test_insertion_order_does_not_matter(items: list[str], rnd: random.Random) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert sketch_of(items) == sketch_of(shuffled)


def test_merge_is_in_place_and_copy_is_independent() -> None:
    a, b = sketch_of(["x"]), sketch_of(["y"])
    c = a.copy()
    assert a.merge(b) is a
    assert a == sketch_of(["x", "y"])
    assert c == sketch_of(["x"])


def sketch_part(data: bytes) -> bytes:
    """A serialized sketch without its exact set (``X``, count, hashes)."""
    if data[:1] == b"X":
        return data[3 + 8 * int.from_bytes(data[1:3], "little"):]
    return data


@given(identities)
def test_round_trip_of_the_raise_log(items: list[str]) -> None:
    h = sketch_of(items)
    full = h.to_bytes()
    data = sketch_part(full)
    assert data[:1] == b"L"
    raised = len(data) // 3
    assert len(data) == 1 + 3 * raised and raised >= sum(1 for r in h.registers if r)
    back = HyperLogLog.from_bytes(full)
    assert back == h
    back.add("one more")  # a restored sketch keeps logging
    h.add("one more")
    assert HyperLogLog.from_bytes(back.to_bytes()) == h


@given(st.lists(st.tuples(st.integers(0, M - 1), st.integers(1, 51)), max_size=60))
def test_the_log_replays_to_the_largest_rank_in_any_order(raises: list[tuple[int, int]]) -> None:
    h = sketch_from_raises(raises)
    expected = bytearray(M)
    for idx, rank in raises:
        expected[idx] = max(expected[idx], rank)
    assert h.registers == expected
    assert HyperLogLog.from_bytes(h.to_bytes()).registers == expected


def test_round_trip_dense() -> None:
    h = sketch_of([f"u{i}" for i in range(20_000)])
    data = h.to_bytes()
    assert data[:1] == b"D"
    assert len(data) == 1 + M
    back = HyperLogLog.from_bytes(data)
    assert back == h
    assert back.count() == h.count()


def test_round_trip_of_the_empty_sketch() -> None:
    assert HyperLogLog.from_bytes(HyperLogLog().to_bytes()) == HyperLogLog()


def test_the_log_switches_to_dense_before_it_outgrows_the_registers() -> None:
    h = HyperLogLog()
    for i in range(M // 3):  # 5461 raises, 16383 bytes
        h.raise_register(i, 1)
    assert h.to_bytes()[:1] == b"L" and len(h.to_bytes()) <= M
    h.raise_register(M - 1, 1)
    assert h.to_bytes()[:1] == b"D"
    h.raise_register(M - 2, 2)
    assert HyperLogLog.from_bytes(h.to_bytes()) == h


def test_the_earlier_sorted_sparse_form_is_still_read() -> None:
    h = sketch_of([f"u{i}" for i in range(300)])
    nz = [i for i, r in enumerate(h.registers) if r]
    old = b"S" + b"".join(i.to_bytes(2, "little") for i in nz) + bytes(h.registers[i] for i in nz)
    back = HyperLogLog.from_bytes(old)
    assert back.registers == h.registers and back.exact is None  # estimated from now on
    back.add("u-new")
    h.add("u-new")
    assert HyperLogLog.from_bytes(back.to_bytes()).registers == h.registers


def test_merge_and_union_results_are_dense() -> None:
    a, b = sketch_of(["x"]), sketch_of(["y"])
    assert sketch_part(a.merge(b).to_bytes())[:1] == b"D"
    assert HyperLogLog.from_bytes(union([a, b]).to_bytes()) == sketch_of(["x", "y"])


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"X",
        b"hello world",
        b"D" + bytes(M - 1),
        b"D" + bytes(M + 1),
        b"S\x00",
        b"S\x00\x00",
        b"S" + bytes(4),
        b"L\x00",
        b"L" + bytes(4),
    ],
)
def test_from_bytes_rejects_garbage(garbage: bytes) -> None:
    with pytest.raises(ValueError):
        HyperLogLog.from_bytes(garbage)


@pytest.mark.parametrize("data", [b"S\xff\xff\x01", b"L\xff\xff\x01"])
def test_from_bytes_rejects_an_index_out_of_range(data: bytes) -> None:
    # entry (index 65535, rank 1): an index beyond the 16384 registers
    with pytest.raises(ValueError):
        HyperLogLog.from_bytes(data)


def test_hash64_is_stable() -> None:
    # XXH3-64 reference value of the empty input, and a fixed value for a fixed id
    assert hash64("") == 0x2D06800538D394C2
    assert hash64("user-1") == 8968379626967066057
    assert hash64("user-1") == hash64("user-1")
    assert hash64("user-1") != hash64("user-2")
    assert 0 <= hash64("ü∂ñ") < 2**64


# Sparse registers: a small sketch keeps its raised registers in a dict.

raises_st = st.lists(st.tuples(st.integers(0, M - 1), st.integers(1, 51)),
                     max_size=2 * SPARSE_MAX)


def dense_reference(raises: list[tuple[int, int]]) -> bytearray:
    expected = bytearray(M)
    for idx, rank in raises:
        expected[idx] = max(expected[idx], rank)
    return expected


@given(raises_st)
def test_sparse_until_more_than_sparse_max_registers_then_dense(
        raises: list[tuple[int, int]]) -> None:
    h, raised = HyperLogLog(), set()
    for idx, rank in raises:
        if h.regs[idx] < rank:
            h.raise_register(idx, rank)
        raised.add(idx)
        assert isinstance(h.regs, bytearray) == (len(raised) > SPARSE_MAX)
    expected = dense_reference(raises)
    assert h.registers == expected
    assert all(h.regs[i] == expected[i] for i in {i for i, _ in raises} | {0, M - 1})
    back = HyperLogLog.from_bytes(h.to_bytes())
    assert back == h and back.registers == expected
    assert isinstance(back.regs, bytearray) == (len(raised) > SPARSE_MAX)
    assert back.count() == h.count() == HyperLogLog(bytearray(expected)).count()


@given(raises_st, raises_st)
def test_sparse_and_dense_sketches_merge_compare_and_union_alike(
        a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    sa, sb = sketch_from_raises(a), sketch_from_raises(b)
    da, db = HyperLogLog(dense_reference(a)), HyperLogLog(dense_reference(b))
    assert sa == da and da == sa
    expected = dense_reference(a + b)
    assert union([sa, sb]).registers == union([da, db]).registers == expected
    copy = sa.copy()
    assert copy == da
    copy.raise_register(0, 60)  # above every generated rank (<= 51)
    assert sa == da  # the copy did not share the sparse registers
    assert sa.merge(sb).registers == expected


def test_a_small_sketch_holds_under_22_kilobytes_and_accounts_for_them() -> None:
    """A sketch of ~100 users (a quiet bucket): its sparse registers take < 10 KB instead
    of 16 KiB, its exact set ~10 KB more, and ``nbytes`` says so within 5 %."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        sketches = [sketch_of([f"user-{k}-{i}" for i in range(100)]) for k in range(200)]
        traced = (tracemalloc.get_traced_memory()[0] - base) / len(sketches)
    finally:
        tracemalloc.stop()
    assert all(not isinstance(s.regs, bytearray) for s in sketches)
    estimate = sum(s.nbytes for s in sketches) / len(sketches)
    assert traced < 22_000, traced
    assert estimate == pytest.approx(traced, rel=0.05)


# ------------------------------------------------------------------ exact small sets


@given(st.lists(st.text(min_size=1, max_size=12), max_size=300), st.integers(0, 2))
def test_counts_are_exact_up_to_the_limit_also_merged_and_restored(
        items: list[str], split: int) -> None:
    distinct = len(set(items))
    h = sketch_of(items)
    assert h.count() == distinct
    assert HyperLogLog.from_bytes(h.to_bytes()).count() == distinct
    half = len(items) // (split + 1)
    a, b = sketch_of(items[:half]), sketch_of(items[half:])
    assert union([a, b]).count() == distinct
    assert a.copy().merge(b).count() == distinct


def test_a_76_user_segment_reads_76_and_1000_read_1000() -> None:
    """SPEC v2: exact up to 1,000 distinct identities (v1's sketch read 76 as 74)."""
    for n in (76, 999, 1000):
        assert sketch_of([f"segment-user-{i}" for i in range(n)]).count() == n
    parts = [sketch_of([f"p{p}-{i}" for i in range(250)]) for p in range(4)]
    assert union(parts).count() == 1000


def test_beyond_the_limit_the_count_is_estimated_within_two_percent() -> None:
    h = sketch_of([f"u{i}" for i in range(EXACT_MAX + 1)])
    assert h.exact is None
    assert h.count() == pytest.approx(EXACT_MAX + 1, rel=0.02)
    a = sketch_of([f"a{i}" for i in range(600)])
    b = sketch_of([f"b{i}" for i in range(600)])
    merged = union([a, b])
    assert merged.exact is None and merged.count() == pytest.approx(1200, rel=0.02)
    assert a.exact is not None and len(a.exact) == 600  # the inputs are untouched


def test_a_truncated_exact_set_is_rejected() -> None:
    data = sketch_of(["x", "y"]).to_bytes()
    with pytest.raises(ValueError):
        HyperLogLog.from_bytes(data[:10])
