"""Sessions and technical performance (SPEC 3b) folded in process, against the oracle.

The oracle (``tests/support/oracle_performance.py``) computes every value from its
definition over the whole log; here the worker's own code (decoder, partition states,
indicators) folds the same messages in several partitions and must agree (counts and
ratios exactly, quantiles within 2 % of the exact rank), before and after the late
events that move sessions' first and last times, in any order, and after a crash in the
middle of a checkpoint.
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
from leadline.aggregators.partition import PartitionState
from leadline.config.definitions import load_definitions
from leadline.events.decoder import Decoder
from leadline.events.model import Event
from tests.support import oracle_performance as op

D = load_definitions()
DAY = 86400
#: 2027-01-15 12:00 UTC.
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
            state.take_dirty_sessions()

    def scrape(self, now: float = NOW) -> Samples:
        return scrape(self.states, now)


def scrape(states: list[PartitionState], now: float = NOW) -> Samples:
    cells = [(k, Cell.decode(c.encode())) for s in states for k, c in s.cells.items()]
    return {(s.metric, frozenset(s.labels)): s.value
            for s in Indicators(D).compute(cells, now)}


@pytest.fixture(scope="module", params=[(7, False), (2, True)], ids=["seed7", "edges"])
def corpus(request: pytest.FixtureRequest) -> dict[str, Any]:
    seed, edges = request.param
    first, late, truth = op.generate(NOW, seed=seed, edges=edges)
    seen: set[str] = set()
    return {"first": decoded(first, seen), "late": decoded(late, seen), "truth": truth}


def test_first_list_matches_the_oracle(corpus: dict[str, Any]) -> None:
    fold = Fold()
    fold.feed(corpus["first"])
    assert op.mismatches(fold.scrape(), corpus["truth"].first_only(), NOW) == []


def test_late_events_move_sessions_exactly(corpus: dict[str, Any]) -> None:
    fold = Fold()
    fold.feed(corpus["first"])
    before = fold.scrape()
    fold.feed(corpus["late"])
    after = fold.scrape()
    assert op.mismatches(after, corpus["truth"], NOW) == []
    moved = {k for k in after if after[k] != before.get(k)}
    assert any(k[0] == "product_sessions" for k in moved)  # the late events matter
    assert any(k[0] == "product_session_duration_seconds" for k in moved)


def test_any_order_gives_the_same_answer(corpus: dict[str, Any]) -> None:
    """The whole log reversed (every late event first): the same samples."""
    events = corpus["first"] + corpus["late"]
    fold = Fold()
    fold.feed(events[::-1])
    assert op.mismatches(fold.scrape(), corpus["truth"], NOW) == []


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_crash_mid_checkpoint_then_replay_is_exact(data: Any) -> None:
    """One partition, checkpoints as the store writes them (cells, then users and
    sessions); a crash leaves a prefix of the last one and the replay starts at an earlier
    committed offset."""
    first, late, _ = op.generate(NOW, seed=data.draw(st.integers(1, 10**6), label="seed"),
                                 users=30)
    seen: set[str] = set()
    events = decoded(first, seen) + decoded(late, seen)
    n = len(events)
    cuts = sorted({0, n, *data.draw(st.lists(st.integers(1, n), max_size=5), label="cuts")})
    batches = list(itertools.pairwise(cuts))
    crash = data.draw(st.integers(0, len(batches) - 1), label="crash batch")
    cells: dict[CellKey, bytes] = {}
    users: dict[str, bytes] = {}
    sessions: dict[str, bytes] = {}
    live = PartitionState(D)
    for i, (lo, hi) in enumerate(batches[: crash + 1]):
        for offset in range(lo, hi):
            live.fold(offset, events[offset], NOW)
        records = [("c", k, blob) for k, (_, blob) in live.take_dirty().items()]
        records += [("u", k, blob) for k, (_, blob) in live.take_dirty_users().items()]
        records += [("s", k, blob) for k, (_, blob) in live.take_dirty_sessions().items()]
        landed = len(records) if i < crash else data.draw(
            st.integers(0, len(records)), label="records landed")
        for kind, key, blob in records[:landed]:
            {"c": cells, "u": users, "s": sessions}[kind][key] = blob  # type: ignore[index]
    committed = data.draw(st.integers(0, batches[crash][0]), label="committed offset")
    restored = PartitionState(D)
    for key, blob in cells.items():
        restored.load(key, blob)
    for identity, blob in users.items():
        restored.load_user(identity, blob)
    for key, blob in sessions.items():
        restored.load_session(key, blob)
    for offset in range(committed, n):
        restored.fold(offset, events[offset], NOW)
    whole = PartitionState(D)
    for offset, ev in enumerate(events):
        whole.fold(offset, ev, NOW)
    assert scrape([restored]) == scrape([whole])

