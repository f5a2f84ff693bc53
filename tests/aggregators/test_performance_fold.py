"""Sessions and technical performance (SPEC 3b) folded in process, against the oracle.

The oracle (``tests/support/oracle_performance.py``) computes every value from its
definition over the whole log; here the worker's own code (decoder, partition states,
indicators) folds the same messages in several partitions and must agree (counts and
ratios exactly, quantiles within 2 % of the exact rank), before and after the late
events that move sessions' first and last times, in any order, and after a crash in the
middle of a checkpoint.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import oracle_performance as op
from tests.support.fold import NOW, Fold, crash_replay, decoded


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
    restored, whole = crash_replay(decoded(first, seen) + decoded(late, seen), data)
    assert restored == whole

