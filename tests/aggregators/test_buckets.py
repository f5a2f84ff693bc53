"""Event-time buckets and trailing windows (SPEC section 3, precision rule)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from leadline.aggregators.buckets import (
    DAY,
    LADDER,
    WindowPlan,
    bucket_start,
    in_window,
    resolution_for,
)

HOUR = 3600
DEFAULT = {"5m": 300, "1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}


@pytest.mark.parametrize(
    ("window", "expected"),
    [(300, 15), (HOUR, 300), (DAY, 7200), (7 * DAY, DAY), (30 * DAY, DAY)],
)
def test_resolution_of_the_default_windows(window: int, expected: int) -> None:
    assert resolution_for(window) == expected


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (12, 1),             # the shortest window allowed: g = W/12 exactly
        (59, 1),
        (60, 5),             # W/12 = 5 is a ladder step
        (179, 5),
        (180, 15),
        (12 * HOUR, HOUR),
        (12 * HOUR - 1, 900),
        (DAY - 1, HOUR),     # W/12 = 7199.9 -> 3600
        (DAY + 1, DAY),      # beyond a day the bound is one day, not W/12
        (2 * DAY, DAY),
        (400 * DAY, DAY),
    ],
)
def test_resolution_at_edge_windows(window: int, expected: int) -> None:
    assert resolution_for(window) == expected


@pytest.mark.parametrize("window", [11, 1, 0, -5])
def test_too_short_window_raises(window: int) -> None:
    with pytest.raises(ValueError, match="too short"):
        resolution_for(window)


@given(st.integers(min_value=12, max_value=400 * DAY))
def test_resolution_is_the_coarsest_ladder_step_within_the_bound(window: int) -> None:
    g = resolution_for(window)
    bound = window / 12 if window <= DAY else DAY
    assert g in LADDER
    assert g <= bound
    coarser = [s for s in LADDER if s > g]
    assert not coarser or coarser[0] > bound


def test_bucket_start_alignment() -> None:
    assert bucket_start(0, 15) == 0
    assert bucket_start(14.999, 15) == 0
    assert bucket_start(15, 15) == 15
    assert bucket_start(1_700_000_123.75, 300) == 1_700_000_100
    # daily buckets start at 00:00 UTC (1700006400 = 2023-11-15T00:00:00Z)
    assert bucket_start(1_700_006_400, DAY) == 1_700_006_400
    assert bucket_start(1_700_006_399.9, DAY) == 1_700_006_400 - DAY
    assert isinstance(bucket_start(1_700_000_123.75, 300), int)


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False), st.sampled_from(LADDER))
def test_bucket_start_contains_the_timestamp(ts: float, g: int) -> None:
    start = bucket_start(ts, g)
    assert start % g == 0
    assert start <= ts < start + g


def test_in_window_keeps_starts_at_or_after_the_edge() -> None:
    now = 1000.0
    assert in_window([600, 690, 700, 705, 1000], 300, now) == [700, 705, 1000]
    assert in_window([], 300, now) == []


# Windows a configuration can express (whole units), up to the 400 d maximum.
windows = st.one_of(
    st.integers(min_value=12, max_value=400 * DAY),
    st.builds(lambda n, u: n * u, st.integers(1, 400), st.sampled_from([60, HOUR, DAY])).filter(
        lambda w: w >= 12
    ),
)


def _counted(ts: float, window: int, now: float) -> bool:
    plan = WindowPlan({"w": window})
    g = plan.resolution_of["w"]
    return bool(in_window([bucket_start(ts, g)], window, now))


@given(
    window=windows,
    now=st.floats(min_value=1e9, max_value=2e9, allow_nan=False),
    ages=st.lists(st.floats(min_value=-300, max_value=500 * DAY, allow_nan=False), max_size=20),
)
@example(window=300, now=1_700_000_000.0, ages=[285.0, 300.0, 300.001, 0.0])
@example(window=DAY, now=1_700_006_400.0, ages=[DAY - 7200, DAY, DAY + 1e-3])
def test_precision_rule(window: int, now: float, ages: list[float]) -> None:
    """Counts every event of age <= W - g, none of age > W (SPEC section 3)."""
    g = resolution_for(window)
    for age in ages:
        ts = now - age
        real_age = now - ts
        if real_age <= window - g:
            assert _counted(ts, window, now), (window, g, real_age)
        if real_age > window:
            assert not _counted(ts, window, now), (window, g, real_age)


@given(
    window=windows,
    now=st.integers(min_value=10**9, max_value=2 * 10**9),
    slack=st.integers(min_value=0, max_value=10**6),
)
def test_precision_rule_at_the_exact_edges(window: int, now: int, slack: int) -> None:
    g = resolution_for(window)
    assert _counted(now - (window - g), window, now)
    assert not _counted(now - window - 1 - slack, window, now)
    assert _counted(now, window, now)


def test_default_plan() -> None:
    plan = WindowPlan(DEFAULT)
    assert plan.resolution_of == {"5m": 15, "1h": 300, "24h": 7200, "7d": DAY, "30d": DAY}
    assert plan.resolutions == (15, 300, 7200, DAY)
    assert plan.longest == 30 * DAY
    assert plan.horizon(15) == 315
    assert plan.horizon(300) == HOUR + 300
    assert plan.horizon(7200) == DAY + 7200
    assert plan.horizon(DAY) == 31 * DAY  # the longest window sharing the resolution


def test_is_expired_boundary() -> None:
    plan = WindowPlan(DEFAULT)
    now = 1_700_000_000.0
    assert not plan.is_expired(15, int(now - 315), now)
    assert plan.is_expired(15, int(now - 316), now)
    assert not plan.is_expired(DAY, int(now - 31 * DAY), now)
    assert plan.is_expired(DAY, int(now - 31 * DAY) - 1, now)


@given(
    plan_windows=st.dictionaries(
        st.text(alphabet="abcdefgh", min_size=1, max_size=3), windows, min_size=1, max_size=5
    ),
    start_offset=st.integers(min_value=-500 * DAY, max_value=DAY),
    later=st.integers(min_value=0, max_value=100 * DAY),
)
def test_expired_buckets_are_in_no_window_now_or_later(
    plan_windows: dict[str, int], start_offset: int, later: int
) -> None:
    plan = WindowPlan(plan_windows)
    now = 1_700_000_000
    for label, w in plan_windows.items():
        g = plan.resolution_of[label]
        start = bucket_start(now + start_offset, g)
        if plan.is_expired(g, start, now):
            assert not in_window([start], w, now)
            assert not in_window([start], w, now + later)
            assert plan.is_expired(g, start, now + later)
        elif in_window([start], w, now):
            assert not plan.is_expired(g, start, now)
