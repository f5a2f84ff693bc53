"""ActivationRule: first signup, first activation within the horizon, in any arrival order."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from leadline.aggregators.activation import (
    ACTIVATED,
    KIND,
    SIGNUPS,
    TTA_BOUNDS,
    TTA_SUM,
    ActivationRule,
    tta_label,
)
from leadline.aggregators.users import Deltas

DAY_MS = 86_400_000
WITHIN = 7 * 86400
RULE = ActivationRule(WITHIN)

Event = tuple[int, str]  # (ms, "signup" | "activation")


def fold(events: list[Event]) -> tuple[Any, dict[int, dict[str, int]]]:
    """Apply events in the given order; the summed deltas by signup time."""
    comp = None
    totals: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for t, name in events:
        out = Deltas()
        new = RULE.apply(comp, t, name == "signup", name == "activation", out)
        if new is None:
            assert not out, "no change must mean no deltas"
        else:
            comp = new
        for (kind, at), labels in out.sums.items():
            assert kind == KIND
            for label, v in labels.items():
                totals[at][label] += v
    return comp, {t: {k: v for k, v in d.items() if v} for t, d in totals.items()
                  if any(d.values())}


def brute(events: list[Event]) -> dict[int, dict[str, int]]:
    """Straight from the definition."""
    signups = [t for t, n in events if n == "signup"]
    if not signups:
        return {}
    s = min(signups)
    after = [a for a, n in events if n == "activation" and s <= a]
    labels = {SIGNUPS: 1}
    if after and min(after) - s <= WITHIN * 1000:
        tta = min(after) - s
        labels |= {ACTIVATED: 1, TTA_SUM: tta, tta_label(tta): 1}
    return {s: {k: v for k, v in labels.items() if v}}


times = st.integers(min_value=0, max_value=20 * DAY_MS)
events = st.lists(st.tuples(times, st.sampled_from(["signup", "activation"])), max_size=12)


@settings(max_examples=300, deadline=None)
@given(events, st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_definition(evs: list[Event], rnd: Any) -> None:
    shuffled = list(evs)
    rnd.shuffle(shuffled)
    assert fold(shuffled)[1] == brute(evs)
    assert fold(sorted(evs))[1] == brute(evs)


def test_activation_before_signup_does_not_count() -> None:
    assert fold([(0, "activation"), (1000, "signup")])[1] == {1000: {SIGNUPS: 1}}


def test_activation_after_the_horizon_does_not_count() -> None:
    limit = WITHIN * 1000
    late = fold([(0, "signup"), (limit + 1, "activation")])[1]
    assert late == {0: {SIGNUPS: 1}}
    edge = fold([(0, "signup"), (limit, "activation")])[1]   # exactly at the horizon: counts
    assert edge[0][ACTIVATED] == 1 and edge[0][TTA_SUM] == limit


def test_a_later_signup_does_not_move_the_signup_an_earlier_one_does() -> None:
    comp, totals = fold([(5000, "signup"), (9000, "signup"), (6000, "activation")])
    assert comp[0] == 5000
    assert totals == {5000: {SIGNUPS: 1, ACTIVATED: 1, TTA_SUM: 1000, tta_label(1000): 1}}
    comp, totals = fold([(5000, "signup"), (6000, "activation"), (1000, "signup")])
    assert comp[0] == 1000   # moved: counted in the earlier bucket only
    assert totals == {1000: {SIGNUPS: 1, ACTIVATED: 1, TTA_SUM: 5000, tta_label(5000): 1}}


def test_only_activations_that_can_matter_are_kept() -> None:
    comp, _ = fold([(10, "activation"), (100, "signup"), (200, "activation"),
                    (300, "activation"), (150, "activation")])
    assert comp == [100, [10, 150]]   # 200 and 300 can never be the first again
    comp, _ = fold([(10, "activation"), (20, "activation")])
    assert comp == [None, [10, 20]]  # no signup yet: any may become the first


def test_tta_labels_follow_the_bounds() -> None:
    assert tta_label(0) == "tta:0"
    assert tta_label(60_000) == "tta:0"            # le=60 includes 60 s
    assert tta_label(60_001) == "tta:1"
    assert tta_label(TTA_BOUNDS[-1] * 1000 + 1) == f"tta:{len(TTA_BOUNDS)}"   # +Inf


def test_prune() -> None:
    assert RULE.prune([5, [1, 6]], signup_cutoff=6, time_cutoff=0) is None   # old signup
    assert RULE.prune([None, [1, 2, 9]], signup_cutoff=0, time_cutoff=3) == [None, [9]]
    assert RULE.prune([None, [1, 2]], signup_cutoff=0, time_cutoff=3) is None
    comp = [10, [4, 12]]
    assert RULE.prune(comp, signup_cutoff=0, time_cutoff=3) is comp          # nothing to do
