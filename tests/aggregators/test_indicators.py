"""Indicators.compute over PartitionState cells versus an independent batch oracle.

The oracle applies SPEC section 3 directly: an event is in window W iff the start of
its bucket, floor(ts / g) * g with g = resolution_for(W), is >= now - W.
"""

from __future__ import annotations

import math
import random
import zlib
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import pytest

from leadline.aggregators.buckets import resolution_for
from leadline.aggregators.cells import Cell
from leadline.aggregators.indicators import Indicators, Sample
from leadline.aggregators.kinds import CellKey
from leadline.aggregators.partition import PartitionState
from leadline.config.definitions import load_definitions
from leadline.events.model import Event

D = load_definitions()
NOW = 1_700_000_123.456
DAY = 86400
WINDOWS = {"5m": 300, "1h": 3600, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
PLATFORMS = ("web", "ios", "android", "other")
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CAD", "AUD", "BRL", "INR", "other")
KNOWN = (
    "signup", "activation", "session_start", "feature_used", "product_viewed", "cart_added",
    "checkout_started", "purchase", "refund", "subscription_started", "subscription_changed",
    "subscription_cancelled", "nps_submitted", "csat_submitted", "page_view", "screen_view",
    "marketing_spend", "page_load", "api_request", "app_crash",
)
NAMES = (*KNOWN, "other")
PARTITIONS = 4
USERS_PER_PLATFORM = 2500

# raw platform strings a producer may send -> expected label
RAW_PLATFORMS: dict[str, list[str | None]] = {
    "web": ["web", "Web", "WEB"],
    "ios": ["ios", "iOS"],
    "android": ["android", "Android"],
    "other": [None, "tv", "desktop"],
}
NAME_WEIGHTS = [
    ("session_start", 35), ("purchase", 20), ("feature_used", 10), ("signup", 8),
    ("product_viewed", 10), ("cart_added", 5), ("mystery_event", 7), ("x:custom.ev", 5),
]
PAY_CURRENCIES = ["USD", "USD", "EUR", "JPY", "CHF"]  # CHF is not configured -> other


def _age(rng: random.Random) -> float:
    if rng.random() < 0.03:
        return -rng.uniform(0, 299)  # slightly ahead: allowed by the decoder
    return math.exp(rng.uniform(0, math.log(40 * DAY)))  # log-uniform, 1 s .. 40 d


def generate() -> list[tuple[Event, Decimal | None, str]]:
    """(event, exact amount, expected platform label)."""
    rng = random.Random(20240501)
    names, weights = zip(*NAME_WEIGHTS, strict=True)
    out = []
    n = 0
    for label, raws in RAW_PLATFORMS.items():
        for u in range(USERS_PER_PLATFORM):
            identity = f"{label}-user-{u}" if u % 5 else f"anon:{label}-{u}"
            for _ in range(rng.randint(1, 4)):
                plat_label, raw = label, rng.choice(raws)
                if rng.random() < 0.15:  # the same user on another platform now and then
                    plat_label = rng.choice(PLATFORMS)
                    raw = rng.choice(RAW_PLATFORMS[plat_label])
                name = rng.choices(names, weights)[0]
                amount = None
                props = None
                if name == "purchase":
                    amount = Decimal(rng.randint(0, 50_000)) / 100
                    props = {"amount": float(amount), "currency": rng.choice(PAY_CURRENCIES)}
                n += 1
                out.append((Event(f"ev-{n}", identity, NOW - _age(rng), name, raw, props=props),
                            amount, plat_label))
    # events right at every window edge
    for w in WINDOWS.values():
        g = resolution_for(w)
        edge = math.ceil((NOW - w) / g) * g
        for i, ts in enumerate([edge, edge + 0.001, edge - 0.001, NOW - w, NOW - w + g,
                                NOW - w - 1e-6]):
            n += 1
            amount = Decimal("1.11")
            props = {"amount": 1.11, "currency": "EUR"}
            out.append((Event(f"edge-{n}", f"edge-user-{w}-{i}", ts, "purchase", "web",
                              props=props), amount, "web"))
    return out


def counted(ts: float, window: int) -> bool:
    g = resolution_for(window)
    return math.floor(ts / g) * g >= NOW - window


def batch_oracle(evs: list[tuple[Event, Decimal | None, str]]) -> dict[str, Any]:
    active: dict[tuple[str, str], set[str]] = defaultdict(set)
    converters: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_name: Counter[tuple[str, str]] = Counter()
    conversions: Counter[str] = Counter()
    revenue: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for ev, amount, plat in evs:
        for window, length in WINDOWS.items():
            if not counted(ev.ts, length):
                continue
            for p in (plat, "all"):
                active[(window, p)].add(ev.identity)
            by_name[(window, ev.name if ev.name in KNOWN else "other")] += 1
            if ev.name == "purchase":
                conversions[window] += 1
                for p in (plat, "all"):
                    converters[(window, p)].add(ev.identity)
                assert ev.props is not None and amount is not None
                cur = ev.props["currency"]
                revenue[(window, cur if cur in CURRENCIES else "other")] += amount
    return {"active": active, "converters": converters, "by_name": by_name,
            "conversions": conversions, "revenue": revenue}


def fold_partitions(evs: list[tuple[Event, Decimal | None, str]]) -> list[PartitionState]:
    states = [PartitionState(D) for _ in range(PARTITIONS)]
    offsets = [0] * PARTITIONS
    order = list(range(len(evs)))
    random.Random(7).shuffle(order)  # arrival order is not event-time order
    for i in order:
        ev = evs[i][0]
        p = zlib.crc32(ev.identity.encode()) % PARTITIONS
        states[p].fold(offsets[p], ev, NOW)
        offsets[p] += 1
    return states


@pytest.fixture(scope="module")
def scenario() -> dict[str, Any]:
    evs = generate()
    states = fold_partitions(evs)
    cells: list[tuple[CellKey, Cell]] = []
    for state in states:  # through the changelog encoding, as the serving view sees them
        cells += [(key, Cell.decode(blob)) for key, (_, blob) in state.take_dirty().items()]
    samples = Indicators(D).compute(cells, NOW)
    by_key = {(s.metric, s.labels): s.value for s in samples}
    assert len(by_key) == len(samples), "duplicate series"
    return {"evs": evs, "cells": cells, "samples": samples, "by_key": by_key,
            "oracle": batch_oracle(evs)}


def _close(actual: float, expected: float, rel: float) -> bool:
    return abs(actual - expected) <= rel * expected + 1e-9 if expected else actual == 0


def test_the_scenario_is_meaningful(scenario: dict[str, Any]) -> None:
    active = scenario["oracle"]["active"]
    for p in PLATFORMS:
        assert len(active[("30d", p)]) >= 2000
        assert len(active[("5m", p)]) >= 500
    for window in WINDOWS:  # "all" is a union: a sum would be more than 2 % off
        total = sum(len(active[(window, p)]) for p in PLATFORMS)
        assert len(active[(window, "all")]) < 0.97 * total
    assert {k[0] for k, _ in scenario["cells"]} >= {"users", "converters", "events", "revenue"}


def test_product_events_exact(scenario: dict[str, Any]) -> None:
    by_key, oracle = scenario["by_key"], scenario["oracle"]
    for window in WINDOWS:
        for name in NAMES:
            got = by_key[("product_events", (("window", window), ("name", name)))]
            assert got == oracle["by_name"][(window, name)], (window, name)
    assert oracle["by_name"][("30d", "other")] > 0


def test_product_conversions_exact(scenario: dict[str, Any]) -> None:
    for window in WINDOWS:
        got = scenario["by_key"][("product_conversions", (("window", window),))]
        assert got == scenario["oracle"]["conversions"][window]


def test_product_revenue_exact(scenario: dict[str, Any]) -> None:
    revenue = scenario["oracle"]["revenue"]
    for window in WINDOWS:
        for cur in CURRENCIES:
            got = scenario["by_key"][("product_revenue", (("window", window), ("currency", cur)))]
            assert got == float(revenue[(window, cur)]), (window, cur)
    assert revenue[("5m", "other")] > 0 and revenue[("30d", "JPY")] > 0


def test_product_active_users_within_two_percent(scenario: dict[str, Any]) -> None:
    active = scenario["oracle"]["active"]
    for window in WINDOWS:
        for p in (*PLATFORMS, "all"):
            labels = (("window", window), ("platform", p))
            got = scenario["by_key"][("product_active_users", labels)]
            want = len(active[(window, p)])
            assert _close(got, want, 0.02), (window, p, got, want)


def test_conversion_ratio_within_three_percent(scenario: dict[str, Any]) -> None:
    oracle = scenario["oracle"]
    for window in WINDOWS:
        for p in (*PLATFORMS, "all"):
            got = scenario["by_key"][
                ("product_conversion_ratio", (("window", window), ("platform", p)))
            ]
            want = len(oracle["converters"][(window, p)]) / len(oracle["active"][(window, p)])
            assert _close(got, want, 0.03), (window, p, got, want)


def test_arpu_within_three_percent(scenario: dict[str, Any]) -> None:
    oracle = scenario["oracle"]
    for window in WINDOWS:
        users = len(oracle["active"][(window, "all")])
        for cur in CURRENCIES:
            got = scenario["by_key"][("product_arpu", (("window", window), ("currency", cur)))]
            want = float(oracle["revenue"][(window, cur)]) / users
            assert _close(got, want, 0.03), (window, cur, got, want)


def test_stickiness_within_three_percent(scenario: dict[str, Any]) -> None:
    active = scenario["oracle"]["active"]
    for p in (*PLATFORMS, "all"):
        got = scenario["by_key"][("product_stickiness_ratio", (("platform", p),))]
        want = len(active[("24h", p)]) / len(active[("30d", p)])
        assert _close(got, want, 0.03), (p, got, want)


def test_exactly_the_expected_series(scenario: dict[str, Any]) -> None:
    expected: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for w in WINDOWS:
        for p in (*PLATFORMS, "all"):
            expected.add(("product_active_users", (("window", w), ("platform", p))))
            expected.add(("product_conversion_ratio", (("window", w), ("platform", p))))
        for n in NAMES:
            expected.add(("product_events", (("window", w), ("name", n))))
        expected.add(("product_conversions", (("window", w),)))
        for c in CURRENCIES:
            expected.add(("product_revenue", (("window", w), ("currency", c))))
            expected.add(("product_arpu", (("window", w), ("currency", c))))
    for p in (*PLATFORMS, "all"):
        expected.add(("product_stickiness_ratio", (("platform", p),)))
    metrics = {m for m, _ in expected}  # catalog metrics: tests/aggregators/test_catalog_fold.py
    assert {k for k in scenario["by_key"] if k[0] in metrics} == expected


def test_cell_order_does_not_matter(scenario: dict[str, Any]) -> None:
    cells = list(reversed(scenario["cells"]))
    assert Indicators(D).compute(cells, NOW) == scenario["samples"]


def test_empty_state_gives_zeros_not_nan() -> None:
    samples = Indicators(D).compute([], NOW)
    assert samples
    # no crash is 100 % crash-free (SPEC 3b)
    assert all(isinstance(s, Sample) and s.value == (s.metric == "product_crash_free_users_ratio")
               for s in samples)
