"""Idempotency by event_id over 24 h, telling replays from duplicates."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from aggregators.dedupe import HOUR, RETENTION, Deduper, id_hash

NOW = 1_700_000_000.0  # 22:13:20 UTC
GEN = int(NOW // HOUR) * HOUR


def test_first_occurrence_is_not_a_duplicate() -> None:
    d = Deduper()
    assert d.is_duplicate("e1", 10, NOW) is False
    assert len(d) == 1


def test_same_id_at_another_offset_is_a_duplicate() -> None:
    d = Deduper()
    d.is_duplicate("e1", 10, NOW)
    assert d.is_duplicate("e1", 11, NOW) is True
    assert d.is_duplicate("e1", 9, NOW + 3600) is True
    assert d.is_duplicate("e2", 12, NOW) is False
    assert len(d) == 2


def test_replay_of_the_same_message_is_not_a_duplicate() -> None:
    d = Deduper()
    d.is_duplicate("e1", 10, NOW)
    assert d.is_duplicate("e1", 10, NOW) is False
    assert d.is_duplicate("e1", 10, NOW + 5) is False
    assert d.is_duplicate("e1", 10, NOW) is False
    assert len(d) == 1


def test_take_chunk_hands_over_new_ids_once() -> None:
    d = Deduper()
    assert d.take_chunk() is None
    d.is_duplicate("a", 1, NOW)
    d.is_duplicate("b", 2, NOW)
    d.is_duplicate("a", 3, NOW)   # duplicate: not new
    d.is_duplicate("b", 2, NOW)   # replay: not new
    chunk = d.take_chunk()
    assert chunk is not None
    assert len(chunk) == 2 * 16
    assert d.take_chunk() is None
    d.is_duplicate("c", 4, NOW)
    assert len(d.take_chunk() or b"") == 16


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=6), st.integers(min_value=0, max_value=10**9)),
        max_size=40,
    ),
    st.lists(
        st.tuples(st.text(min_size=1, max_size=6), st.integers(min_value=0, max_value=10**9)),
        max_size=40,
    ),
)
def test_load_chunk_restores_the_same_answers(
    history: list[tuple[str, int]], probes: list[tuple[str, int]]
) -> None:
    original = Deduper()
    for event_id, offset in history:
        original.is_duplicate(event_id, offset, NOW)
    restored = Deduper()
    chunk = original.take_chunk()
    if chunk is not None:
        restored.load_chunk(GEN, chunk)
    assert len(restored) == len(original)
    for event_id, offset in probes:
        assert restored.is_duplicate(event_id, offset, NOW) == original.is_duplicate(
            event_id, offset, NOW
        )


def test_load_chunk_in_pieces_and_keeps_the_earliest_offset() -> None:
    a = Deduper()
    a.is_duplicate("x", 5, NOW)
    first = a.take_chunk()
    b = Deduper()
    b.is_duplicate("x", 9, NOW)  # a later copy, written by another incarnation
    second = b.take_chunk()
    assert first is not None and second is not None
    restored = Deduper()
    restored.load_chunk(GEN, second)
    restored.load_chunk(GEN, first)
    assert restored.is_duplicate("x", 5, NOW) is False  # replay of the first occurrence
    assert restored.is_duplicate("x", 9, NOW) is True
    assert set(restored.hours()) == {GEN}


def test_expire_forgets_generations_older_than_25_hours_only() -> None:
    d = Deduper()
    d.is_duplicate("old", 1, NOW)               # generation GEN
    d.is_duplicate("new", 2, NOW + 2 * HOUR)    # generation GEN + 2h
    assert set(d.hours()) == {GEN, GEN + 2 * HOUR}
    assert d.expire(GEN + RETENTION) == []      # exactly 25 h after it started: kept
    assert d.is_duplicate("old", 99, GEN + RETENTION) is True
    assert d.expire(GEN + RETENTION + 1) == [GEN]
    assert set(d.hours()) == {GEN + 2 * HOUR}
    assert len(d) == 1
    assert d.is_duplicate("old", 100, GEN + RETENTION + 1) is False  # forgotten: new again
    assert d.is_duplicate("new", 101, GEN + RETENTION + 1) is True   # newer: still known


def test_within_24_hours_a_repeat_is_always_caught() -> None:
    d = Deduper()
    d.is_duplicate("e", 1, NOW)
    d.expire(NOW + 24 * HOUR)
    assert d.is_duplicate("e", 2, NOW + 24 * HOUR) is True


def test_expire_of_loaded_generations() -> None:
    d = Deduper()
    d.is_duplicate("e", 1, NOW)
    chunk = d.take_chunk()
    assert chunk is not None
    r = Deduper()
    r.load_chunk(GEN - 30 * HOUR, chunk)
    assert r.expire(NOW) == [GEN - 30 * HOUR]
    assert len(r) == 0


def test_id_hash_is_64_bit_and_stable() -> None:
    assert id_hash("e1") == id_hash("e1")
    assert id_hash("e1") != id_hash("e2")
    assert 0 <= id_hash("e1") < 2**64
