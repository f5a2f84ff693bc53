"""PartitionState against a plain oracle, including crash + replay from earlier offsets."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from leadline.aggregators.cells import Cell
from leadline.aggregators.kinds import (
    ACTIVITY_GAPS,
    CONVERTERS,
    EVENTS,
    LAST_SEEN,
    NEW_CUSTOMERS,
    NEW_USERS,
    RETAINED,
    REVENUE,
    USERS,
    CellKey,
    key_text,
    parse_key,
)
from leadline.aggregators.partition import PartitionState
from leadline.aggregators.sketch import HyperLogLog
from leadline.config.definitions import load_definitions
from leadline.events.model import Event

D = load_definitions()
LIFECYCLE = {NEW_USERS, LAST_SEEN, ACTIVITY_GAPS, RETAINED, NEW_CUSTOMERS}
NOW = 1_700_000_123.5
DAY = 86400
# resolution -> how far back its buckets are kept (longest window using it + g; 2-hour
# buckets twice 24h, since the 24h churn compares a day with the day before)
HORIZONS = {15: 300 + 15, 300: 3600 + 300, 7200: 2 * DAY + 7200, DAY: 30 * DAY + DAY}

PLATFORMS = {"web": "web", "ios": "ios", "android": "android"}
KNOWN_CURRENCIES = {"USD", "EUR", "GBP", "JPY", "CAD", "AUD", "BRL", "INR"}


def platform_label(p: str | None) -> str:
    return PLATFORMS.get(p.lower(), "other") if p is not None else "other"


def name_label(n: str) -> str:
    return n if n in D.known_names else "other"


Item = tuple[Event, Decimal | None]

ages = st.one_of(
    st.floats(min_value=-299, max_value=400),
    st.floats(min_value=0, max_value=4000),
    st.floats(min_value=0, max_value=2 * DAY),
    st.floats(min_value=0, max_value=33 * DAY),
)


@st.composite
def items(draw: Any) -> Item:
    name = draw(st.sampled_from(["signup", "purchase", "purchase", "session_start", "mystery"]))
    amount = None
    props = None
    if name == "purchase":
        amount = draw(st.decimals(min_value=0, max_value=10_000, places=2))
        props = {"amount": float(amount), "currency": draw(st.sampled_from(["USD", "EUR", "CHF"]))}
    event = Event(
        event_id=f"e{draw(st.integers(0, 10**6))}",
        identity=draw(st.sampled_from([f"user-{i}" for i in range(20)] + ["anon:a", "anon:b"])),
        ts=NOW - draw(ages),
        name=name,
        platform=draw(st.sampled_from(["web", "iOS", "android", None, "tv"])),
        props=props,
    )
    return event, amount


def oracle(evs: list[Item], now: float = NOW) -> dict[CellKey, dict[str, Any]]:
    """Each event applied exactly once, with plain sets and Decimals."""
    sums: dict[CellKey, Counter[str]] = defaultdict(Counter)
    sets: dict[CellKey, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for ev, amount in evs:
        for res, horizon in HORIZONS.items():
            start = math.floor(ev.ts / res) * res
            if start < now - horizon:
                continue
            p = platform_label(ev.platform)
            sets[(USERS, res, start)][p].add(ev.identity)
            sums[(EVENTS, res, start)][name_label(ev.name)] += 1
            if ev.name == "purchase":
                assert ev.props is not None and amount is not None
                sets[(CONVERTERS, res, start)][p].add(ev.identity)
                cur = ev.props["currency"]
                cur = cur if cur in KNOWN_CURRENCIES else "other"
                sums[(REVENUE, res, start)][cur] += int(amount * 1_000_000)
    out: dict[CellKey, dict[str, Any]] = {k: dict(v) for k, v in sums.items()}
    for key, by_label in sets.items():
        regs = {}
        for label, ids in by_label.items():
            h = HyperLogLog()
            for i in ids:
                h.add(i)
            regs[label] = bytes(h.registers)
        out[key] = regs
    return out


def snapshot(cells: dict[CellKey, Cell]) -> dict[CellKey, dict[str, Any]]:
    """The kinds this oracle knows; the catalog kinds are in test_catalog_fold.py."""
    return {
        key: {
            label: bytes(v.registers) if isinstance(v, HyperLogLog) else v
            for label, v in cell.values.items()
        }
        for key, cell in cells.items() if key[0] in (USERS, EVENTS, CONVERTERS, REVENUE)
    }


def fold_all(evs: list[Item], now: float = NOW) -> PartitionState:
    state = PartitionState(D)
    for offset, (ev, _) in enumerate(evs):
        state.fold(offset, ev, now)
    return state


@settings(max_examples=60, deadline=None)
@given(st.lists(items(), min_size=1, max_size=80))
def test_fold_matches_the_oracle(evs: list[Item]) -> None:
    state = fold_all(evs)
    assert snapshot(state.cells) == oracle(evs)


def test_horizons_used_by_the_oracle_are_the_plans() -> None:
    plan = PartitionState(D).plan
    assert {r: plan.horizon(r) for r in plan.resolutions} == HORIZONS


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_crash_and_replay_from_an_earlier_offset_counts_each_event_once(data: Any) -> None:
    evs = data.draw(st.lists(items(), min_size=1, max_size=60), label="events")
    n = len(evs)
    cuts = data.draw(st.lists(st.integers(1, n), max_size=8), label="cuts")
    bounds = sorted({0, n, *cuts})
    batches = list(itertools.pairwise(bounds))
    crash = data.draw(st.integers(0, len(batches) - 1), label="crash batch")

    changelog: dict[CellKey, tuple[int, bytes]] = {}
    live = PartitionState(D)
    for i, (lo, hi) in enumerate(batches[: crash + 1]):
        for offset in range(lo, hi):
            live.fold(offset, evs[offset][0], NOW)
        dirty = live.take_dirty()
        if i < crash:
            changelog.update(dirty)
        else:  # crash while writing this batch: only some of its cells got through
            keys = sorted(dirty)
            written = data.draw(st.lists(st.sampled_from(keys), unique=True), label="written") \
                if keys else []
            for key in written:
                changelog[key] = dirty[key]
    committed = data.draw(st.integers(0, batches[crash][0]), label="committed offset")

    restored = PartitionState(D)
    for key, (stamp, blob) in changelog.items():
        restored.load(key, blob)
        assert restored.cells[key].offset == stamp
    for offset in range(committed, n):
        restored.fold(offset, evs[offset][0], NOW)
    expected = oracle(evs)
    assert snapshot(restored.cells) == expected

    # a second full replay (another crash, nothing committed) changes nothing
    restored.take_dirty()
    for offset in range(n):
        restored.fold(offset, evs[offset][0], NOW)
    assert restored.take_dirty() == {}
    assert snapshot(restored.cells) == expected


def _event(i: int, ts: float, name: str = "session_start", **kw: Any) -> Event:
    return Event(f"e{i}", f"user-{i}", ts, name, kw.pop("platform", "web"), props=kw or None)


def test_take_dirty_returns_each_changed_cell_once() -> None:
    state = PartitionState(D)
    assert state.take_dirty() == {}
    state.fold(0, _event(0, NOW - 1), NOW)
    state.fold(1, _event(1, NOW - 2), NOW)   # same buckets as offset 0
    dirty = state.take_dirty()
    assert set(dirty) == set(state.cells)
    # users + events, one bucket per resolution (lifecycle: test_lifecycle_fold.py)
    assert len([k for k in dirty if k[0] in (USERS, EVENTS)]) == 2 * len(HORIZONS)
    for key, (stamp, blob) in dirty.items():
        assert stamp == 1
        assert Cell.decode(blob) == state.cells[key]
    assert state.take_dirty() == {}

    state.fold(1, _event(1, NOW - 2), NOW)   # replay of an applied offset: nothing changes
    assert state.take_dirty() == {}

    far = NOW - 3 * 3600                      # only the 2 h and 1 d buckets reach back this far
    state.fold(2, _event(2, far, "purchase", amount=5.0, currency="USD"), NOW)
    again = state.take_dirty()
    assert {k[1] for k in again} == {7200, DAY}
    assert {k[0] for k in again} - LIFECYCLE == {USERS, EVENTS, CONVERTERS, REVENUE}
    assert all(stamp == 2 for stamp, _ in again.values())
    assert Cell.decode(again[(REVENUE, DAY, int(far // DAY) * DAY)][1]).values == {
        "USD": 5_000_000
    }


def test_events_beyond_every_horizon_make_no_cells() -> None:
    state = PartitionState(D)
    state.fold(0, _event(0, NOW - 31 * DAY - DAY), NOW)
    assert state.cells == {}
    assert state.take_dirty() == {}


def test_expired_drops_old_cells_only() -> None:
    state = PartitionState(D)
    for i, age in enumerate([0, 200, 1000, 5 * 3600, 3 * DAY, 20 * DAY]):
        state.fold(i, _event(i, NOW - age), NOW)
    before = dict(state.cells)
    later = NOW + 3 * DAY
    gone = state.expired(later)
    assert set(gone) == {k for k in before if k[2] < later - HORIZONS[k[1]]}
    assert gone  # the 15 s, 5 min and 2 h buckets are all too old three days later
    assert set(state.cells) == set(before) - set(gone)
    assert all(k[1] == DAY for k in state.cells)
    # expired cells are no longer pending for the changelog
    assert not set(state.take_dirty()) & set(gone)
    assert state.expired(later) == []


def test_encoded_and_key_text() -> None:
    state = PartitionState(D)
    state.fold(5, _event(0, NOW), NOW)
    enc = state.encoded()
    assert set(enc) == set(state.cells)
    assert all(stamp == 5 for stamp, _ in enc.values())
    key = (USERS, 15, 1_700_000_115)
    assert key_text(key) == "users/15/1700000115"
    assert parse_key(key_text(key)) == key


def test_labels_are_bounded() -> None:
    state = PartitionState(D)
    state.fold(0, _event(0, NOW, "made_up", platform="Smart-TV"), NOW)
    state.fold(1, _event(1, NOW, "purchase", platform="IOS", amount=1.25, currency="XYZ"), NOW)
    assert state.cells[(EVENTS, 15, int(NOW // 15) * 15)].values == {"other": 1, "purchase": 1}
    assert set(state.cells[(USERS, 15, int(NOW // 15) * 15)].values) == {"other", "ios"}
    assert state.cells[(REVENUE, 15, int(NOW // 15) * 15)].values == {"other": 1_250_000}


def test_a_huge_valid_amount_does_not_break_the_changelog() -> None:
    state = PartitionState(D)
    state.fold(0, _event(0, NOW, "purchase", amount=1e14, currency="USD"), NOW)
    dirty = state.take_dirty()
    key = (REVENUE, DAY, int(NOW // DAY) * DAY)
    assert Cell.decode(dirty[key][1]).values == {"USD": 10**20}
