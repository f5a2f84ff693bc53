"""FunnelRule: reach in order within the conversion window, independent of arrival order."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from leadline.aggregators.funnels import FunnelRule, kind_of
from leadline.aggregators.users import Deltas
from leadline.config.definitions import Funnel

STEPS = ["view", "cart", "pay"]
RULE = FunnelRule("shop", Funnel(steps=STEPS, within="1m"))
W = 60_000

Event = tuple[int, int]  # (ms, step index)


def fold(events: list[Event]) -> tuple[Any, set[tuple[int, int]]]:
    """Apply events in order; every (entry ms, step) registered."""
    times = None
    marks: set[tuple[int, int]] = set()
    for t, step in events:
        out = Deltas()
        new = RULE.apply(times, step, t, out)
        if new is None:
            assert not out
        else:
            times = new
        for (kind, entry), labels in out.marks.items():
            assert kind == kind_of("shop")
            marks |= {(entry, int(k)) for k in labels}
    return times, marks


def brute(events: list[Event]) -> set[tuple[int, int]]:
    """(entry, k) for every entry and every k with some in-order chain, by enumeration."""
    by_step = [sorted({t for t, s in events if s == j}) for j in range(len(STEPS))]
    out = set()
    for e in by_step[0]:
        out.add((e, 0))
        for k in range(1, len(STEPS)):
            for chain in itertools.product(*by_step[1 : k + 1]):
                if all(a <= b for a, b in itertools.pairwise((e, *chain))) and chain[-1] <= e + W:
                    out.add((e, k))
                    break
    return out


times = st.integers(min_value=0, max_value=4 * W)
events = st.lists(st.tuples(times, st.integers(0, len(STEPS) - 1)), max_size=10)


@settings(max_examples=300, deadline=None)
@given(events, st.randoms(use_true_random=False))
def test_registrations_equal_the_definition_in_any_order(evs: list[Event], rnd: Any) -> None:
    want = brute(evs)
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    assert fold(shuffled)[1] == want
    assert fold(sorted(evs))[1] == want
    assert fold(list(reversed(sorted(evs))))[1] == want


def test_out_of_order_steps_do_not_count() -> None:
    assert fold([(0, 1), (10, 0), (20, 2)])[1] == {(10, 0)}   # cart before the view


def test_steps_outside_the_window_do_not_count_for_that_entry() -> None:
    assert fold([(0, 0), (10, 1), (W + 1, 2)])[1] == {(0, 0), (0, 1)}
    # ...but a later entry may use them
    assert fold([(0, 0), (10, 1), (W + 1, 2), (5, 0)])[1] == {
        (0, 0), (0, 1), (5, 0), (5, 1), (5, 2)}
    assert fold([(0, 0), (20, 0), (30, 1), (W + 15, 2)])[1] == {
        (0, 0), (0, 1), (20, 0), (20, 1), (20, 2)}


def test_repeated_steps_and_same_millisecond() -> None:
    assert fold([(0, 0), (0, 1), (0, 2)])[1] == {(0, 0), (0, 1), (0, 2)}
    times, marks = fold([(0, 0), (5, 1), (5, 1), (7, 1), (3, 0), (9, 2)])
    assert marks == {(0, 0), (0, 1), (0, 2), (3, 0), (3, 1), (3, 2)}
    assert times == [[0, 3], [5, 7], [9]]


def test_a_late_earlier_step_can_extend_the_chain() -> None:
    # pay at 40 comes before the known cart at 50: an earlier cart (arriving late) helps
    assert fold([(0, 0), (50, 1), (40, 2), (30, 1)])[1] == {(0, 0), (0, 1), (0, 2)}


def test_redefined_steps_start_over() -> None:
    out = Deltas()
    assert RULE.apply([[1], [2]], 0, 10, out) == [[10], [], []]


def test_prune() -> None:
    assert RULE.prune([[1, 5], [2, 6], []], 5) == [[5], [6], []]
    assert RULE.prune([[1], [2], [3]], 5) is None
    keep = [[5], [6], [7]]
    assert RULE.prune(keep, 5) is keep
