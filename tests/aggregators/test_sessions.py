"""Sessions: counted by first event, length last - first, in any order, exactly."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from leadline.aggregators import sessions
from leadline.aggregators.quantiles import bucket_label
from leadline.aggregators.users import Deltas


def fold(times: list[int]) -> tuple[sessions.Record | None, dict[tuple[str, int], dict[str, int]]]:
    """One session's record and its summed cell deltas after events at ``times`` (ms)."""
    record = None
    total: dict[tuple[str, int], dict[str, int]] = {}
    for offset, t in enumerate(times):
        out = Deltas()
        new = sessions.apply(record, t, out)
        if new is not None:
            new[0] = offset
            record = new
        for key, labels in out.sums.items():
            acc = total.setdefault(key, {})
            for label, v in labels.items():
                acc[label] = acc.get(label, 0) + v
    return record, {k: {label: v for label, v in ls.items() if v}
                    for k, ls in total.items() if any(ls.values())}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**9), min_size=1, max_size=12), st.randoms())
def test_any_order_leaves_one_session_at_its_first_event(times: list[int], rng) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(times)
    rng.shuffle(shuffled)
    record, cells = fold(shuffled)
    assert record is not None and record[1:] == [min(times), max(times)]
    first = min(times)
    assert cells == {
        (sessions.SESSIONS, first): {sessions.ONE: 1},
        (sessions.LENGTH, first): {bucket_label((max(times) - first) / 1000): 1},
    }


def test_an_event_inside_the_session_changes_nothing() -> None:
    record, _ = fold([1000, 5000])
    out = Deltas()
    assert sessions.apply(record, 3000, out) is None and not out


def test_the_key_tells_users_and_ids_apart() -> None:
    keys = {sessions.session_key(u, s)
            for u, s in itertools.product(["a", "a|b", 'a"', ""], ["b", "|b", "", "x"])}
    assert len(keys) == 16
    assert sessions.decode(sessions.encode([3, 10, 20])) == [3, 10, 20]
