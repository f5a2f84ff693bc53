"""SubscriptionRule: transitions by event time, whatever the arrival order; MRR bridge."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from leadline.aggregators.subscriptions import (
    ACTIVE,
    CANCELS,
    CURRENT,
    MOVES,
    STARTS,
    SubscriptionRule,
    active_label,
    mrr_label,
)
from leadline.aggregators.users import Deltas

RULE = SubscriptionRule(lambda c: c if c in ("USD", "EUR") else "other")
Sub = list[Any]


def fold(subs: list[Sub]) -> tuple[Any, dict[int, dict[str, int]], dict[str, int]]:
    comp = None
    moves: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    current: dict[str, int] = defaultdict(int)
    for sub in subs:
        out = Deltas()
        new = RULE.apply(comp, sub, out)
        if new is None:
            assert not out
        else:
            comp = new
        for (kind, t), labels in out.sums.items():
            assert kind == MOVES
            for label, v in labels.items():
                moves[t][label] += v
        for kind, labels in out.current.items():
            assert kind == CURRENT
            for label, v in labels.items():
                current[label] += v
    return comp, _clean(moves), {k: v for k, v in current.items() if v}


def _clean(by_t: dict[int, dict[str, int]]) -> dict[int, dict[str, int]]:
    return {t: {k: v for k, v in d.items() if v} for t, d in by_t.items() if any(d.values())}


def brute(subs: list[Sub]) -> tuple[dict[int, dict[str, int]], dict[str, int]]:
    """Sort by (time, id), walk once."""
    moves: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    state = None
    for t, _, cur, plan, mrr in sorted({(s[0], s[1]): s for s in subs}.values(),
                                       key=lambda s: (s[0], s[1])):
        new = None if cur is None else (cur, plan, mrr)
        for label, v in RULE.transition(state, new).items():
            moves[t][label] += v
        state = new
    return _clean(moves), {k: v for k, v in RULE.current(state).items() if v}


states = st.one_of(
    st.just((None, None, 0)),
    st.tuples(st.sampled_from(["USD", "EUR", "CHF"]), st.sampled_from(["pro", "other"]),
              st.integers(0, 5) .map(lambda x: x * 1_000_000)),
)
subs = st.lists(st.tuples(st.integers(0, 50), st.sampled_from("abcdefgh"), states)
                .map(lambda x: [x[0], x[1], *x[2]]), max_size=10)


@settings(max_examples=300, deadline=None)
@given(subs, st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_sorted_walk(evs: list[Sub], rnd: Any) -> None:
    unique = list({(s[0], s[1]): s for s in evs}.values())  # an event id is one event
    shuffled = list(unique)
    rnd.shuffle(shuffled)
    _, moves, current = fold(shuffled)
    assert (moves, current) == brute(unique)


@settings(max_examples=200, deadline=None)
@given(subs, st.integers(0, 50))
def test_mrr_bridge_and_active_at_start(evs: list[Sub], start: int) -> None:
    """MRR now - MRR at start == new + expansion - contraction - churn after start;
    active now - starts + cancels == active at start."""
    unique = list({(s[0], s[1]): s for s in evs}.values())
    _, moves, current = fold(unique)
    _, _, before = fold([s for s in unique if s[0] < start])
    net: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for t, labels in moves.items():
        if t < start:
            continue
        for label, v in labels.items():
            if label in (STARTS, CANCELS):
                counts[label] += v
                continue
            kind, cur = label.split(":")
            net[cur] += v if kind in ("new", "expansion") else -v
    for cur in ("USD", "EUR", "other"):
        now_mrr = sum(v for k, v in current.items() if k.startswith(f"mrr:{cur}:"))
        then_mrr = sum(v for k, v in before.items() if k.startswith(f"mrr:{cur}:"))
        assert now_mrr - then_mrr == net[cur]
    assert current.get(ACTIVE, 0) - counts[STARTS] + counts[CANCELS] == before.get(ACTIVE, 0)


def test_transitions() -> None:
    usd10, usd30, eur9 = ("USD", "pro", 10), ("USD", "business", 30), ("EUR", "pro", 9)
    assert RULE.transition(None, usd10) == {"new:USD": 10, STARTS: 1}
    assert RULE.transition(usd10, usd30) == {"expansion:USD": 20}          # upgrade
    assert RULE.transition(usd30, usd10) == {"contraction:USD": 20}        # downgrade
    assert RULE.transition(usd10, ("USD", "other", 10)) == {}              # plan change, same mrr
    assert RULE.transition(usd10, None) == {"churn:USD": 10, CANCELS: 1}   # cancel
    assert RULE.transition(None, None) == {}                               # cancel without sub
    assert RULE.transition(usd10, eur9) == {"contraction:USD": 10, "expansion:EUR": 9}
    assert RULE.transition(("CHF", "pro", 5), None) == {"churn:other": 5, CANCELS: 1}


def test_resubscribe_and_a_late_event_in_between() -> None:
    start, cancel, again = [0, "a", "USD", "pro", 10], [5, "b", None, None, 0], \
        [9, "c", "USD", "pro", 12]
    _, moves, current = fold([start, again])
    assert moves == {0: {"new:USD": 10, STARTS: 1}, 9: {"expansion:USD": 2}}
    # the cancel arrives late: the expansion at 9 becomes a re-subscribe
    _, moves, current = fold([start, again, cancel])
    assert moves == {0: {"new:USD": 10, STARTS: 1}, 5: {"churn:USD": 10, CANCELS: 1},
                     9: {"new:USD": 12, STARTS: 1}}
    assert current == {mrr_label("USD", "pro"): 12, ACTIVE: 1, active_label("USD"): 1}


def test_ties_in_time_are_broken_by_event_id() -> None:
    a, b = [7, "b", "USD", "pro", 30], [7, "a", "USD", "pro", 10]
    assert fold([a, b])[2] == fold([b, a])[2] == {
        mrr_label("USD", "pro"): 30, ACTIVE: 1, active_label("USD"): 1}


def test_the_same_event_twice_changes_nothing() -> None:
    sub = [3, "x", "EUR", "pro", 4]
    comp, _, _ = fold([sub])
    out = Deltas()
    assert RULE.apply(comp, list(sub), out) is None and not out


def test_prune_keeps_the_starting_state() -> None:
    comp, _, _ = fold([[0, "a", "USD", "pro", 1], [10, "b", "USD", "pro", 2],
                       [20, "c", "USD", "pro", 3], [30, "d", "USD", "pro", 4]])
    pruned = RULE.prune(comp, 25)
    assert pruned == [[20, "c"], [[20, "c", "USD", "pro", 3], [30, "d", "USD", "pro", 4]]]
    # an event older than the kept history is ignored (its buckets are invisible)
    assert RULE.apply(pruned, [15, "z", "USD", "pro", 9], Deltas()) is None
    # a cancelled subscription with nothing recent is forgotten; an active one never
    assert RULE.prune([None, [[0, "a", None, None, 0]]], 25) is None
    active = [None, [[0, "a", "USD", "pro", 1]]]
    assert RULE.prune(active, 25) is active


@settings(max_examples=200, deadline=None)
@given(subs, subs, st.integers(0, 50))
def test_pruning_changes_nothing_after_the_cutoff(old: list[Sub], new: list[Sub],
                                                  cutoff: int) -> None:
    """Events at or after the cutoff give the same deltas with pruned or full history."""
    first = list({(s[0], s[1]): s for s in old}.values())
    later = [s for s in {(s[0], s[1]): s for s in new}.values()
             if s[0] >= cutoff and (s[0], s[1]) not in {(f[0], f[1]) for f in first}]
    comp, _, _ = fold(first)
    if comp is None:
        return
    pruned = RULE.prune(comp, cutoff)
    for history in (comp, pruned):
        out_a = Deltas()
        state = history
        moves: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for sub in later:
            out = Deltas()
            nxt = RULE.apply(state, sub, out)
            state = nxt if nxt is not None else state
            for (_, t), labels in out.sums.items():
                for k, v in labels.items():
                    moves[t][k] += v
            for kind, labels in out.current.items():
                for k, v in labels.items():
                    out_a.add_current(kind, k, v)
        if history is comp:
            full = (_clean(moves), {k: dict(v) for k, v in out_a.current.items()})
        else:
            assert (_clean(moves), {k: dict(v) for k, v in out_a.current.items()}) == full
