"""Lifecycle metrics (SPEC 3b) folded in process, against the batch oracle.

The oracle (``tests/support/oracle_lifecycle.py``) computes every value from its
definition over the whole log; here the worker's own code (decoder, partition states,
indicators) folds the same messages, in several partitions, and must agree exactly,
before and after the late events that rewrite users' histories, after a crash in the
middle of a checkpoint, in any order, and after the per-user state is pruned.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadline.aggregators.lifecycle import users_in_run
from tests.support import oracle_lifecycle as ol
from tests.support.fold import NOW, Fold, crash_replay, decoded

DAY = 86400


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
    restored, whole = crash_replay(decoded(first, seen) + decoded(late, seen), data)
    assert restored == whole


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
