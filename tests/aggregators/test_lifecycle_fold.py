"""Lifecycle metrics (SPEC 3b) folded in process, against the batch oracle.

The oracle (``tests/support/oracle_lifecycle.py``) computes every value from its
definition over the whole log; here the worker's own code (decoder, partition states,
indicators) folds the same messages, in several partitions, and must agree exactly,
before and after the late events that rewrite users' histories, after a crash in the
middle of a checkpoint, in any order, and after the per-user state is pruned.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadline.aggregators.cells import Cell
from leadline.aggregators.indicators import Indicators
from leadline.aggregators.kinds import CellKey
from leadline.aggregators.lifecycle import users_in_run
from leadline.aggregators.partition import PartitionState
from leadline.config.definitions import load_definitions
from leadline.events.decoder import Decoder
from leadline.events.model import Event
from tests.support import oracle_lifecycle as ol

D = load_definitions()
DAY = 86400
#: 2027-01-15 12:00 UTC: far from midnight, which the corpus needs (retention days).
NOW = 1_800_000_000.0 + 4 * 3600
PARTITIONS = 4

Samples = dict[tuple[str, frozenset], float]


def decoded(messages: list[tuple[bytes | None, bytes]], seen: set[str]) -> list[Event]:
    """The valid events, first delivery only (the dedupe step's job), in message order."""
    decoder = Decoder(D)
    out = []
    for _, value in messages:
        ev = decoder.decode(value, NOW)
        if isinstance(ev, Event) and ev.event_id not in seen:
            seen.add(ev.event_id)
            out.append(ev)
    return out


def partition_of(ev: Event) -> int:
    key = ev.identity or "spend:" + ev.event_id  # as streams/agents.py keys them
    return zlib.crc32(key.encode()) % PARTITIONS


class Fold:
    """Partition states fed as the worker feeds them: by key, offsets in order."""

    def __init__(self) -> None:
        self.states = [PartitionState(D) for _ in range(PARTITIONS)]
        self.offsets = [0] * PARTITIONS

    def feed(self, events: list[Event], now: float = NOW) -> None:
        for ev in events:
            p = partition_of(ev)
            self.states[p].fold(self.offsets[p], ev, now)
            self.offsets[p] += 1
        for state in self.states:
            state.take_dirty_users()

    def scrape(self, now: float = NOW) -> Samples:
        return scrape(self.states, now)


def scrape(states: list[PartitionState], now: float = NOW) -> Samples:
    cells = [(k, Cell.decode(c.encode())) for s in states for k, c in s.cells.items()]
    return {(s.metric, frozenset(s.labels)): s.value
            for s in Indicators(D).compute(cells, now)}


@pytest.fixture(scope="module", params=[(1, False), (5, False), (2, True)],
                ids=["seed1", "seed5", "edges"])
def corpus(request: pytest.FixtureRequest) -> dict[str, Any]:
    seed, edges = request.param
    first, late, truth = ol.generate(NOW, seed=seed, edges=edges)
    seen: set[str] = set()
    return {"first": decoded(first, seen), "late": decoded(late, seen), "truth": truth}


def test_first_list_matches_the_oracle(corpus: dict[str, Any]) -> None:
    fold = Fold()
    fold.feed(corpus["first"])
    assert ol.mismatches(fold.scrape(), corpus["truth"].first_only(), NOW) == []


def test_late_first_events_rewrite_histories_exactly(corpus: dict[str, Any]) -> None:
    fold = Fold()
    fold.feed(corpus["first"])
    before = fold.scrape()
    fold.feed(corpus["late"])
    after = fold.scrape()
    assert ol.mismatches(after, corpus["truth"], NOW) == []
    moved = {k for k in after if k[0] in ol.LIFECYCLE and after[k] != before.get(k)}
    assert any(k[0] == "product_new_users" for k in moved)  # the late events matter


def test_any_order_gives_the_same_answer(corpus: dict[str, Any]) -> None:
    """The whole log reversed (every late event first): the same samples."""
    events = corpus["first"] + corpus["late"]
    fold = Fold()
    fold.feed(events[::-1])
    assert ol.mismatches(fold.scrape(), corpus["truth"], NOW) == []


def test_pruned_state_gives_the_same_answers_later(corpus: dict[str, Any]) -> None:
    """Sweep the per-user state three days on: the lifecycle samples then are unchanged."""
    events = corpus["first"] + corpus["late"]
    full, pruned = Fold(), Fold()
    full.feed(events)
    pruned.feed(events)
    later = NOW + 3 * DAY
    before = sum(len(v) for s in pruned.states for v in s.users.values())
    for state in pruned.states:
        state.prune_users(later)
    assert sum(len(v) for s in pruned.states for v in s.users.values()) < before
    assert pruned.scrape(later) == full.scrape(later)


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_crash_mid_checkpoint_then_replay_is_exact(data: Any) -> None:
    """One partition, checkpoints as the store writes them (cells, then users); a crash
    leaves a prefix of the last one and the replay starts at an earlier committed offset."""
    first, late, _ = ol.generate(NOW, seed=data.draw(st.integers(1, 10**6), label="seed"),
                                 users=40)
    seen: set[str] = set()
    events = decoded(first, seen) + decoded(late, seen)
    n = len(events)
    cuts = sorted({0, n, *data.draw(st.lists(st.integers(1, n), max_size=5), label="cuts")})
    batches = list(itertools.pairwise(cuts))
    crash = data.draw(st.integers(0, len(batches) - 1), label="crash batch")
    cells: dict[CellKey, bytes] = {}
    users: dict[str, bytes] = {}
    live = PartitionState(D)
    for i, (lo, hi) in enumerate(batches[: crash + 1]):
        for offset in range(lo, hi):
            live.fold(offset, events[offset], NOW)
        records = [("c", k, blob) for k, (_, blob) in live.take_dirty().items()]
        records += [("u", k, blob) for k, (_, blob) in live.take_dirty_users().items()]
        landed = len(records) if i < crash else data.draw(
            st.integers(0, len(records)), label="records landed")
        for kind, key, blob in records[:landed]:
            (cells if kind == "c" else users)[key] = blob  # type: ignore[index]
    committed = data.draw(st.integers(0, batches[crash][0]), label="committed offset")
    restored = PartitionState(D)
    for key, blob in cells.items():
        restored.load(key, blob)
    for identity, blob in users.items():
        restored.load_user(identity, blob)
    for offset in range(committed, n):
        restored.fold(offset, events[offset], NOW)
    whole = PartitionState(D)
    for offset, ev in enumerate(events):
        whole.fold(offset, ev, NOW)
    assert scrape([restored]) == scrape([whole])


def test_users_in_run_counts_each_user_in_their_first_bucket_of_the_run() -> None:
    # user a: buckets 3, 4, 9; user b: 5; user c: 1, 9 (gap labels capped at 10)
    gaps = {1: {"10": 1}, 3: {"10": 1}, 4: {"1": 1}, 5: {"10": 1}, 9: {"5": 1, "8": 1}}
    assert users_in_run(gaps, 0) == 3
    assert users_in_run(gaps, 4) == 3            # a at 4, b at 5, c at 9
    assert users_in_run(gaps, 5) == 3            # b at 5; a (gap 5) and c (gap 8) at 9
    assert users_in_run(gaps, 6) == 2            # a and c at 9
    assert users_in_run(gaps, 4, 9) == 2         # a, b
    assert users_in_run(gaps, 2, 4) == 1         # a
    assert users_in_run(gaps, 6, 9) == 0
