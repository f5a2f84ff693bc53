"""The traffic generator alone: deterministic, complete, ordered, with its share of bad events."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import orjson
import pytest

from leadline.config import load_definitions
from leadline.events.decoder import Decoder
from leadline.events.model import Event
from leadline.events.rejection import Reason, Rejection
from leadline.simulator.traffic import TrafficGenerator, daily_factor

T0 = 1_764_000_000.0  # a fixed clock: the generator only knows the times it is given
RATE = 100  # events per simulated second
TICK = 0.1


def simulate(seed: int, seconds: float, start: float = T0) -> list[tuple[float, bytes, bytes]]:
    """(clock, key, value) for ``seconds`` of simulated time at RATE events/s."""
    gen = TrafficGenerator(seed, load_definitions())
    out = []
    for i in range(round(seconds / TICK)):
        now = start + (i + 1) * TICK
        out.extend((now, key, value) for key, value in gen.batch(now, int(RATE * TICK)))
    return out


@pytest.fixture(scope="module")
def decoded() -> list[tuple[float, bytes, Event | Rejection]]:
    """Eight simulated minutes (48k messages), decoded as the worker would at send time."""
    decoder = Decoder(load_definitions())
    return [(now, key, decoder.decode(value, now)) for now, key, value in simulate(7, 480)]


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a, b, c = simulate(3, 20), simulate(3, 20), simulate(4, 20)
    assert a == b
    assert a != c


def test_every_standard_event_name_appears(decoded) -> None:
    definitions = load_definitions()
    names = Counter(r.name for _, _, r in decoded if isinstance(r, Event))
    assert set(definitions.known_names) <= set(names), set(definitions.known_names) - set(names)
    features = Counter(r.props["feature"] for _, _, r in decoded
                       if isinstance(r, Event) and r.name == "feature_used")
    assert set(features) == set(definitions.features)


def test_mix_of_platforms_currencies_formats_and_identities(decoded) -> None:
    events = [r for _, _, r in decoded if isinstance(r, Event)]
    platforms = Counter(e.platform for e in events)
    assert {"web", "ios", "android", "tv"} <= set(platforms)
    assert platforms["tv"] < platforms["android"] < platforms["web"]
    currencies = Counter(e.props["currency"] for e in events if e.name == "purchase")
    assert {"USD", "EUR", "GBP", "JPY", "CHF"} <= set(currencies)
    assert currencies["CHF"] + currencies["JPY"] < currencies["USD"]
    for e in events:
        if e.name in ("purchase", "refund"):
            assert round(e.props["amount"], 2) == e.props["amount"]
        if e.name.startswith("subscription_"):
            assert e.props["plan"] in ("free", "starter", "pro", "business")
            assert e.props["mrr"] >= 0
    assert any(e.identity.startswith("anon:") for e in events)
    now = T0 + 480
    late = [e for e in events if e.ts < now - 660]  # minutes older than the clock at the end
    assert late, "some late events"
    shapes = Counter()
    for _, _, value in simulate(5, 30):
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError:  # the generator's deliberately bad messages
            continue
        if isinstance(obj, dict):
            shapes["segment" if "messageId" in obj else "canonical"] += 1
            ts = obj.get("timestamp")
            shapes["rfc3339" if isinstance(ts, str) else
                   "epoch_ms" if isinstance(ts, int) else "epoch_s"] += 1
    assert all(shapes[k] > 50 for k in ("segment", "canonical", "rfc3339", "epoch_ms",
                                        "epoch_s")), shapes


def test_keys_are_user_ids(decoded) -> None:
    for _, key, r in decoded:
        if isinstance(r, Event):
            assert key.decode() == r.identity.removeprefix("anon:")


def test_funnel_steps_of_a_user_arrive_in_order(decoded) -> None:
    steps = list(load_definitions().funnels["checkout"].steps)
    seen: set[str] = set()
    by_user: dict[str, list[Event]] = defaultdict(list)
    for _, _, r in decoded:
        if isinstance(r, Event) and r.name in steps and r.event_id not in seen:
            seen.add(r.event_id)
            by_user[r.identity].append(r)
    reached = Counter()
    for events in by_user.values():
        position = -1
        last_ts = 0.0
        for e in events:  # sending order
            index = steps.index(e.name)
            assert index in (0, position + 1), [x.name for x in events]
            if index:
                assert e.ts > last_ts  # seconds after the previous step
                assert e.ts - last_ts < 60
            position, last_ts = index, e.ts
            reached[e.name] += 1
    # drop-off at every step
    counts = [reached[s] for s in steps]
    assert counts == sorted(counts, reverse=True) and counts[-1] > 0
    assert all(a > b for a, b in itertools.pairwise(counts))


def test_signups_are_often_followed_by_activation_within_minutes(decoded) -> None:
    signed = {r.identity: r.ts for _, _, r in decoded
              if isinstance(r, Event) and r.name == "signup"}
    activated = {r.identity: r.ts for _, _, r in decoded
                 if isinstance(r, Event) and r.name == "activation"}
    assert activated and set(activated) <= set(signed)
    assert all(0 < activated[u] - signed[u] <= 600 for u in activated)
    early = [u for u, ts in signed.items() if ts < T0 + 60]  # their activation had time
    share = sum(u in activated for u in early) / len(early)
    assert 0.4 < share < 0.85


def test_bad_events_cover_every_reason_at_about_half_a_percent(decoded) -> None:
    reasons = Counter(r.reason for _, _, r in decoded if isinstance(r, Rejection))
    assert set(reasons) == set(Reason)
    share = sum(reasons.values()) / len(decoded)
    assert 0.003 < share < 0.008, share


def test_duplicates_resend_the_same_event_id_about_half_a_percent(decoded) -> None:
    ids = Counter(r.event_id for _, _, r in decoded if isinstance(r, Event))
    repeats = sum(n - 1 for n in ids.values())
    assert 0.003 < repeats / len(decoded) < 0.008


def test_daily_factor_is_smooth_and_never_zero() -> None:
    values = [daily_factor(T0 + m * 60) for m in range(24 * 60)]
    assert min(values) > 0.5 and max(values) < 1.5
    assert abs(sum(values) / len(values) - 1) < 0.01
    assert max(abs(a - b) for a, b in itertools.pairwise(values)) < 0.01
