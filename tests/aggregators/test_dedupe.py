"""Idempotency by event_id over 24 h, telling replays from duplicates."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from leadline.aggregators import dedupe
from leadline.aggregators.dedupe import (
    _ENTRY,
    HORIZON,
    HOUR,
    LIVE_MAX,
    RETENTION,
    Deduper,
    generation_seconds,
    id_hash,
)

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


def test_held_counts_what_memory_holds_in_o1() -> None:
    d = Deduper()
    for i in range(LIVE_MAX + 10):                 # past the live dict: a run too
        d.is_duplicate(f"id{i}", i, NOW)
    d.is_duplicate("id0", 99, NOW)                 # a duplicate holds nothing new
    assert d.held == len(d) == LIVE_MAX + 10
    d.load_chunk(GEN, chunk_of(["id0", "new"]))
    assert d.held == LIVE_MAX + 12                 # queued, before it is sorted
    assert len(d) == LIVE_MAX + 11                 # distinct ids


def chunk_of(ids: list[str]) -> bytes:
    d = Deduper()
    for i, event_id in enumerate(ids):
        d.is_duplicate(event_id, i, NOW)
    return d.take_chunk() or b""


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


# -- check_batch, and everything against a plain model ------------------------------------


def test_check_batch_within_the_batch() -> None:
    d = Deduper()
    assert d.check_batch(["a", "b", "a", "a", "c", "b"], [1, 2, 3, 1, 4, 2], NOW) == [
        False, False, True, False, False, False,
    ]
    assert d.check_batch([], [], NOW) == []
    assert len(d) == 3
    assert len(d.take_chunk() or b"") == 3 * 16


def test_check_batch_needs_one_offset_per_id() -> None:
    d = Deduper()
    with pytest.raises(ValueError):
        d.check_batch(["a", "b"], [1], NOW)


def test_an_id_in_two_hours_is_kept_until_both_expire_with_the_smaller_offset() -> None:
    a = Deduper()
    a.is_duplicate("x", 7, NOW)
    first = a.take_chunk()
    b = Deduper()
    b.is_duplicate("x", 3, NOW + 2 * HOUR)   # another incarnation, two hours later
    second = b.take_chunk()
    assert first is not None and second is not None
    r = Deduper()
    r.load_chunk(GEN, first)
    r.load_chunk(GEN + 2 * HOUR, second)
    assert len(r) == 1
    assert r.check_batch(["x", "x"], [3, 7], NOW + 3 * HOUR) == [False, True]
    assert r.expire(GEN + RETENTION + 1) == [GEN]
    assert r.is_duplicate("x", 3, NOW + 3 * HOUR) is False  # still held by GEN + 2h
    assert r.is_duplicate("x", 7, NOW + 3 * HOUR) is True


def test_a_chunk_loaded_after_a_live_id_lowers_its_first_offset() -> None:
    for batch in (True, False):
        d = Deduper()
        assert d.check_batch(["x", "y"], [5, 6], NOW) == [False, False]
        d.load_chunk(GEN, _ENTRY.pack(id_hash("x"), 2))   # still the live hour
        probes = [0, 2, 5]
        if batch:
            assert d.check_batch(["x"] * 3, probes, NOW) == [True, False, True]
        else:
            assert [d.is_duplicate("x", o, NOW) for o in probes] == [True, False, True]
        assert len(d) == 2


def test_expire_drops_the_live_hour_too() -> None:
    d = Deduper()
    d.check_batch(["a", "b"], [1, 2], NOW)
    assert d.expire(NOW + 26 * HOUR) == [GEN]
    assert len(d) == 0
    assert list(d.hours()) == []
    assert d.check_batch(["a"], [3], NOW + 26 * HOUR) == [False]


@pytest.mark.parametrize("batch", [True, False])
def test_more_generations_than_filter_bits(batch: bool) -> None:
    """Past 32 generations (only by loading far-apart hours) some are searched unfiltered."""
    with patch.multiple(dedupe, _BITS=2, _MIN_SLOTS=1, _VECTOR_MIN=1):
        d = Deduper()
        for k in reversed(range(6)):  # the oldest get the bits, the newest inherit them
            d.load_chunk(GEN - 10 * k * HOUR, _ENTRY.pack(id_hash(f"h{k}"), k))

        def ask(offsets: list[int]) -> list[bool]:
            ids = [f"h{k}" for k in range(6)]
            if batch:
                return d.check_batch(ids, offsets, NOW)
            return [d.is_duplicate(i, o, NOW) for i, o in zip(ids, offsets, strict=True)]

        assert ask([0, 1, 2, 3, 4, 5]) == [False] * 6
        assert ask([9, 9, 9, 9, 9, 9]) == [True] * 6
        # 20 h back and older are gone, the unfiltered ones among them; 0 h and 10 h stay
        assert d.expire(NOW + 6 * HOUR) == [GEN - k * 10 * HOUR for k in (5, 4, 3, 2)]
        assert ask([9, 9, 7, 8, 9, 10]) == [True, True, False, False, False, False]
        assert ask([0, 1, 7, 8, 9, 10]) == [False] * 6
        assert ask([1, 2, 8, 9, 10, 11]) == [True] * 6


@pytest.mark.parametrize("batch", [True, False])
def test_the_filter_grows_and_shrinks_without_losing_ids(batch: bool) -> None:
    with patch.multiple(dedupe, _MIN_SLOTS=1, LIVE_MAX=3, _VECTOR_MIN=1):
        d = Deduper()
        many = [f"m{i}" for i in range(200)]
        for offset, event_id in enumerate(many):                 # grows 1 -> 256 slots
            d.is_duplicate(event_id, offset, NOW)
        assert d._slots.size >= 200
        assert d.check_batch(many, [999] * 200, NOW) == [True] * 200
        assert [d.is_duplicate(i, o, NOW) for o, i in enumerate(many)] == [False] * 200
        d.check_batch(["k1", "k2", "k3"], [301, 302, 303], NOW + 2 * HOUR)
        d.check_batch([], [], NOW + 3 * HOUR)
        assert d.expire(GEN + RETENTION + 1) == [GEN]            # shrinks to 1 slot
        ids = ["k1", "k2", "k3", "m7"]
        if batch:
            assert d.check_batch(ids, [1, 1, 1, 1], NOW + 3 * HOUR) == [True, True, True, False]
        else:
            assert [d.is_duplicate(i, 1, NOW + 3 * HOUR) for i in ids] == [True] * 3 + [False]
        assert d._slots.size <= 8


class Model:
    """The oracle: one plain dict per hour; an id's first offset is its least one."""

    def __init__(self, retention: float = RETENTION, generation: int = HOUR) -> None:
        self.retention = retention
        self.generation = generation
        self.gens: dict[int, dict[int, int]] = {}
        self.new: list[tuple[int, int]] = []

    def is_duplicate(self, event_id: str, offset: int, now: float) -> bool:
        h = id_hash(event_id)
        known = [g[h] for g in self.gens.values() if h in g]
        if not known:
            self.gens.setdefault(int(now // self.generation) * self.generation, {})[h] = offset
            self.new.append((h, offset))
            return False
        return min(known) != offset

    def take_chunk(self) -> bytes | None:
        data = b"".join(_ENTRY.pack(h, o) for h, o in self.new)
        self.new.clear()
        return data or None

    def load_chunk(self, hour: int, data: bytes) -> None:
        gen = self.gens.setdefault(hour, {})
        for h, o in _ENTRY.iter_unpack(data):
            gen[h] = min(o, gen.get(h, o))

    def expire(self, now: float) -> list[int]:
        dropped = sorted(hour for hour in self.gens if hour < now - self.retention)
        for hour in dropped:
            del self.gens[hour]
        return dropped

    def hours(self) -> list[int]:
        return sorted(self.gens)

    def __len__(self) -> int:
        return len(set().union(*self.gens.values()))


IDS = [f"e{i}" for i in range(12)]

events = st.lists(
    st.tuples(st.integers(0, len(IDS) - 1), st.booleans(), st.integers(0, 10**6)), max_size=20
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), events),
        st.tuples(st.just("single"), events),
        st.tuples(
            st.just("advance"),
            st.sampled_from([0, 1, 700, HOUR, 3 * HOUR, 11 * HOUR, 26 * HOUR, -5]),
        ),
        st.tuples(st.just("flush"), st.none()),
        st.tuples(st.just("expire"), st.none()),
        st.tuples(st.just("recover"), st.randoms(use_true_random=False)),
        st.tuples(st.just("load"), st.tuples(st.integers(0, 10**6), st.booleans())),
        st.tuples(
            st.just("foreign"),
            st.tuples(
                st.integers(-30, 1),
                st.lists(st.tuples(st.integers(0, len(IDS) - 1), st.integers(0, 40)), max_size=6),
            ),
        ),
    ),
    max_size=40,
)


@settings(max_examples=500, deadline=None)
# len() settles loaded chunks: the past hour they reach must be sealed (one run) too
@example([("batch", []), ("foreign", (-1, [(0, 0), (1, 0)])), ("foreign", (-1, [(0, 0)]))],
         1, 1, 1, 1, 0, True, HORIZON)
@given(
    operations,
    st.sampled_from([1, 2, 5, dedupe.LIVE_MAX]),
    st.sampled_from([1, dedupe._VECTOR_MIN]),
    st.sampled_from([1, 2, 3, dedupe._BITS]),
    st.sampled_from([1, 4, dedupe._MIN_SLOTS]),
    st.sampled_from([0, dedupe._SCALAR_PROBES]),
    st.booleans(),
    st.sampled_from([HORIZON, 600]),
)
def test_against_the_model(
    ops: list[tuple[str, Any]],
    live_max: int,
    vector_min: int,
    bits: int,
    min_slots: int,
    scalar_probes: int,
    spill_to_files: bool,
    horizon: int,
) -> None:
    """Batches (duplicates, replays), time passing 25 h and more, changelog chunks,
    recovery into a fresh deduper, chunks loaded into a live one, expiry; past hours in
    memory or in files; the SPEC's 24 h horizon or a short one."""
    with tempfile.TemporaryDirectory() as tmp, patch.multiple(
        dedupe,
        LIVE_MAX=live_max,
        _VECTOR_MIN=vector_min,
        _BITS=bits,
        _MIN_SLOTS=min_slots,
        _SCALAR_PROBES=scalar_probes,
    ):
        spill = Path(tmp) / "ids" if spill_to_files else None
        d = Deduper(horizon, spill)
        model = Model(d.retention, d.generation)
        gen = d.generation
        now = NOW
        offset = 0
        sent: list[tuple[str, int]] = []
        log: list[tuple[int, bytes]] = []  # the changelog: (hour, chunk)
        for op, arg in ops:
            if op in ("batch", "single"):
                batch: list[tuple[str, int]] = []
                for i, replay, pick in arg:
                    if replay and sent:
                        batch.append(sent[pick % len(sent)])
                    else:
                        offset += 1
                        batch.append((IDS[i], offset))
                sent.extend(batch)
                expected = [model.is_duplicate(e, o, now) for e, o in batch]
                if op == "batch":
                    got = d.check_batch([e for e, _ in batch], [o for _, o in batch], now)
                else:
                    got = [d.is_duplicate(e, o, now) for e, o in batch]
                assert got == expected
            elif op == "advance":
                now += arg
            elif op == "flush":
                chunk = d.take_chunk()
                assert chunk == model.take_chunk()
                if chunk is not None:
                    log.append((int(now // gen) * gen, chunk))
            elif op == "expire":
                assert d.expire(now) == model.expire(now)
                log = [(hour, c) for hour, c in log if hour >= now - model.retention]
            elif op == "recover":
                # a crash: what was not flushed is lost; a new deduper loads the changelog
                d, model = Deduper(horizon, spill), Model(d.retention, gen)
                order = list(log)
                arg.shuffle(order)
                for hour, chunk in order:
                    d.load_chunk(hour, chunk)
                    model.load_chunk(hour, chunk)
            elif op == "load" and log:
                # a chunk of another incarnation, into this live deduper, maybe this hour
                pick, this_hour = arg
                hour, chunk = log[pick % len(log)]
                if this_hour:
                    hour = int(now // gen) * gen
                d.load_chunk(hour, chunk)
                model.load_chunk(hour, chunk)
            elif op == "foreign":
                # a zombie incarnation's chunk: its own offsets, any hour, into the changelog
                hours_back, entries = arg
                hour = int(now // gen) * gen + hours_back * gen
                chunk = b"".join(_ENTRY.pack(id_hash(IDS[i]), o) for i, o in entries)
                d.load_chunk(hour, chunk)
                model.load_chunk(hour, chunk)
                log.append((hour, chunk))
            assert sorted(d.hours()) == model.hours()
            assert len(d) == len(model)
            if spill is not None:  # past hours in files, only theirs, and nothing else
                files = {r.file for g in d._gens.values() for r in g.runs if r.file}
                assert set(spill.iterdir()) == files
                assert all(g.hour >= (d._live_hour or 0) or len(g.runs) <= 1
                           for g in d._gens.values() if not g.pending)
        # everything the model remembers, with its first offset
        for n, e in enumerate(IDS):
            probes = list(range(offset + 2))
            if n % 2:
                probes.reverse()
            expected = [model.is_duplicate(e, o, now) for o in probes]
            assert d.check_batch([e] * len(probes), probes, now) == expected
            expected = [model.is_duplicate(e, o, now) for o in probes]
            assert [d.is_duplicate(e, o, now) for o in probes] == expected


def test_past_hours_go_to_files_and_leave_the_heap(tmp_path: Path) -> None:
    spill = tmp_path / "ids"
    d = Deduper(spill=spill)
    in_memory = Deduper()
    hours = [[f"h{h}-{i}" for i in range(5000)] for h in range(3)]
    offset = 0
    for h, ids in enumerate(hours):
        for dd in (d, in_memory):
            assert dd.check_batch(ids, range(offset, offset + len(ids)), NOW + h * HOUR) == [
                False] * len(ids)
        offset += len(ids)
    # hours 0 and 1 are over: one file each, mapped; hour 2 is live, in memory
    assert len(list(spill.iterdir())) == 2
    assert d.disk_bytes() == 2 * 5000 * 16
    assert d.nbytes() < in_memory.nbytes() - 2 * 5000 * 16 + 1
    probe = hours[0][:100] + hours[1][-100:] + ["new"]
    expected = in_memory.check_batch(probe, [10**6] * len(probe), NOW + 2 * HOUR)
    assert d.check_batch(probe, [10**6] * len(probe), NOW + 2 * HOUR) == expected
    assert expected == [True] * 200 + [False]
    assert [d.is_duplicate(i, 0, NOW + 2 * HOUR) for i in ("h0-0", "h1-0")] == [False, True]
    # expiry deletes a past hour's file with it
    d.expire(GEN + RETENTION + 1)
    assert len(list(spill.iterdir())) == 1
    # a new deduper on the directory starts empty (the changelog refills it)
    again = Deduper(spill=spill)
    assert not list(spill.iterdir()) and not again.is_duplicate("h1-0", 1, NOW + 2 * HOUR)


def test_a_past_hour_holds_one_descriptor_and_gives_it_back(tmp_path: Path) -> None:
    """One file and one mapping per spilled run; expired runs close theirs."""
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    d = Deduper(spill=tmp_path / "ids")
    before = open_fds()
    for h in range(6):
        d.check_batch([f"{h}-{i}" for i in range(100)], range(h * 100, h * 100 + 100),
                      NOW + h * HOUR)
    gc.collect()
    assert open_fds() - before == 5                      # hours 0-4 are past
    d.expire(NOW + 30 * HOUR)
    d.check_batch([], [], NOW + 30 * HOUR)
    gc.collect()
    assert open_fds() - before == 0


def test_a_run_sealed_after_its_partition_was_forgotten_stays_in_memory(
        tmp_path: Path) -> None:
    """A batch still in flight when its partition is revoked may seal an hour after the
    directory is gone: the run stays in memory, the answers are the same."""
    spill = tmp_path / "ids"
    d = Deduper(spill=spill)
    d.check_batch(["a", "b"], [1, 2], NOW)
    shutil.rmtree(spill)
    assert d.check_batch(["a", "c"], [3, 4], NOW + HOUR) == [True, False]
    assert d.disk_bytes() == 0 and not spill.exists()


def test_a_shorter_horizon_forgets_sooner() -> None:
    """10 minutes: generations of a minute, an id forgotten 10-11 minutes after."""
    d = Deduper(horizon=600)
    assert (d.generation, d.retention) == (60, 660)
    assert generation_seconds(HORIZON) == HOUR and generation_seconds(3600) == 300
    d.is_duplicate("a", 1, NOW)
    assert d.is_duplicate("a", 2, NOW + 599)
    start = d.generation_start(NOW)
    d.check_batch([], [], NOW + 700)
    assert d.expire(NOW + 700) == [start]  # at most the horizon plus a generation
    assert not d.is_duplicate("a", 3, NOW + 700)
