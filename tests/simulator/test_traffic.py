"""The traffic generator alone: deterministic, complete, ordered, with its share of bad events."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import orjson
import pytest

from leadline.config import load_definitions
from leadline.events.decoder import Decoder
from leadline.events.model import Event, Ignored
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
    spend = 0
    for _, key, r in decoded:
        if isinstance(r, Event) and r.name == "marketing_spend":  # no identity: by channel
            assert r.identity == "" and key.decode() == f"spend:{r.props['channel']}"
            spend += 1
        elif isinstance(r, Event):
            assert key.decode() == r.identity.removeprefix("anon:")
    assert spend


def test_live_spend_every_minute_per_channel_without_identity(decoded) -> None:
    channels = set(load_definitions().marketing.channels)
    spend = [(now, r) for now, _, r in decoded
             if isinstance(r, Event) and r.name == "marketing_spend"]
    ticks = sorted({round(now) for now, _ in spend})
    assert len(ticks) == 8, ticks  # 480 s: at the start, then every 60 s
    assert {r.props["channel"] for _, r in spend} == channels
    assert all(r.props["amount"] > 0 and r.props["currency"] in ("USD", "EUR")
               for _, r in spend)


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


# -- the backfill: 30 days of history before the live traffic --------------------------------

NOW = T0  # 16:00 UTC
DAY = 86400


def day_of(ts: float) -> int:
    return int(ts // DAY)


@pytest.fixture(scope="module")
def history() -> tuple[TrafficGenerator, list[tuple[bytes, bytes]],
                       list[Event | Ignored | Rejection]]:
    """The 30-day backfill ending at NOW (~110k messages), decoded as the worker would
    decode them at NOW, and the generator that made it."""
    definitions = load_definitions()
    gen = TrafficGenerator(7, definitions)
    messages = list(gen.backfill(NOW, 30))
    decoder = Decoder(definitions)
    return gen, messages, [decoder.decode(value, NOW) for _, value in messages]


@pytest.fixture(scope="module")
def activity(history) -> tuple[dict[str, float], dict[int, set[str]]]:
    """First-seen time of each identity, and who is active on each UTC day, as the
    lifecycle contract defines them (any event but marketing_spend is activity)."""
    _, _, results = history
    first: dict[str, float] = {}
    days: dict[int, set[str]] = defaultdict(set)
    for r in results:
        if isinstance(r, Event) and r.name != "marketing_spend":
            first[r.identity] = min(first.get(r.identity, r.ts), r.ts)
            days[day_of(r.ts)].add(r.identity)
    return first, days


def cohorts(first: dict[str, float]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    for user, ts in first.items():
        out[day_of(ts)].add(user)
    return out


def test_backfill_is_valid_in_time_order_and_younger_than_30_days(history) -> None:
    _, messages, results = history
    assert 50_000 < len(messages) < 200_000  # enough history, quick to send (~15 s)
    rejected = Counter(r.reason for r in results if isinstance(r, Rejection))
    assert not rejected, rejected  # the DLQ gets only what live traffic means to send
    events = [r for r in results if isinstance(r, Event)]
    assert len(events) + sum(isinstance(r, Ignored) for r in results) == len(messages)
    assert len({e.event_id for e in events}) == len(events)  # no duplicates either
    times = [e.ts for e in events]
    assert all(b > a - 0.002 for a, b in itertools.pairwise(times))  # (ms rounding)
    assert NOW - min(times) < 30 * DAY and max(times) < NOW
    assert 29 * DAY < max(times) - min(times) < 30 * DAY
    assert NOW - max(times) < 300  # history runs up to now
    names = Counter(e.name for e in events)
    assert set(load_definitions().known_names) - {"page_view", "screen_view"} <= set(names)


def test_backfill_is_deterministic_and_optional() -> None:
    a = list(TrafficGenerator(3, load_definitions()).backfill(NOW, 2))
    b = list(TrafficGenerator(3, load_definitions()).backfill(NOW, 2))
    assert a == b and len(a) > 1000
    assert list(TrafficGenerator(3, load_definitions()).backfill(NOW, 0)) == []


def test_a_cohort_of_new_users_every_day_fewer_at_weekends(activity) -> None:
    first, _ = activity
    by_day = cohorts(first)
    today = day_of(NOW)
    # the first (partial) day holds the established base, the last one is today so far
    assert sorted(by_day) == list(range(today - 30, today + 1))
    base = len(by_day[today - 30])
    full = {d: len(by_day[d]) for d in range(today - 29, today)}
    assert all(30 <= n < base / 3 for n in full.values()), full
    weekend = [n for d, n in full.items() if (d + 3) % 7 >= 5]  # day 0 was a Thursday
    weekday = [n for d, n in full.items() if (d + 3) % 7 < 5]
    assert sum(weekend) / len(weekend) < 0.8 * sum(weekday) / len(weekday)


def test_cohorts_decay_day_after_day(activity) -> None:
    first, days = activity
    by_day = cohorts(first)
    today = day_of(NOW)
    pooled = {}
    for n in (1, 3, 7, 14, 28):
        cohort = retained = 0
        for d in range(today - 29, today - n):  # new-user cohorts whose day n is over
            users = by_day[d]
            active = len(users & days[d + n])
            assert active < len(users), (d, n)  # later days of a cohort: fewer than day 0
            cohort, retained = cohort + len(users), retained + active
        pooled[n] = retained / cohort
    assert 0.25 < pooled[1] < 0.5, pooled
    assert 0.1 < pooled[7] < 0.3, pooled
    assert pooled[28] < 0.2, pooled
    assert pooled[1] > pooled[3] > pooled[7] > pooled[14], pooled
    # What product_retention_ratio{day} shows at NOW: D = today - N - 1, retained on D + N.
    for n in (1, 7, 28):
        users = by_day[today - n - 1]
        assert len(users) >= 30 and 0 < len(users & days[today - 1]) < len(users)


def test_users_churn_and_the_base_reads_as_returning(activity) -> None:
    first, days = activity
    today = day_of(NOW)
    # The established base is first seen before the 30d window (its first bucket starts
    # before NOW - 30d), and is most of the active users on a day.
    yesterday = days[today - 1]
    base = {u for u in yesterday if first[u] < (today - 29) * DAY}
    assert 0.3 < len(base) / len(yesterday) < 0.8
    # Churn: of last week's active users, a realistic share is gone this week.
    def active(a: float, b: float) -> set[str]:
        return set().union(*(days[d] for d in range(day_of(a), day_of(b))))
    prev, cur = active(NOW - 14 * DAY, NOW - 7 * DAY), active(NOW - 7 * DAY, NOW)
    assert 0.1 < len(prev - cur) / len(prev) < 0.6
    # Stickiness (yesterday's users / the 30 days' users) like a real product's.
    month = active(NOW - 30 * DAY, NOW)
    assert 0.1 < len(yesterday) / len(month) < 0.4
    # Daily active users stay in a band (a weekly pattern, no launch ramp).
    dau = [len(days[d]) for d in range(today - 28, today)]
    assert max(dau) < 2 * min(dau), dau


def test_spend_every_day_per_channel_with_no_identity(history) -> None:
    _, messages, results = history
    channels = set(load_definitions().marketing.channels)
    today = day_of(NOW)
    spend: dict[int, set[str]] = defaultdict(set)
    for (key, value), r in zip(messages, results, strict=True):
        if isinstance(r, Event) and r.name == "marketing_spend":
            obj = orjson.loads(value)
            assert not {"user_id", "anonymous_id", "userId", "anonymousId"} & set(obj), obj
            assert r.identity == "" and key == f"spend:{r.props['channel']}".encode()
            assert r.props["amount"] > 0 and r.props["currency"] in ("USD", "EUR")
            spend[day_of(r.ts)].add(r.props["channel"])
    assert all(spend[d] == channels for d in range(today - 29, today + 1)), spend


def test_purchases_and_subscription_moves_are_consistent(history) -> None:
    _, _, results = history
    events = [r for r in results if isinstance(r, Event)]
    names = Counter(e.name for e in events)
    assert names["purchase"] > 200 and names["refund"] > 0
    plans: dict[str, str | None] = {}
    moves: Counter[str] = Counter()
    order = ("free", "starter", "pro", "business")
    for e in events:
        if e.name == "subscription_started":
            assert plans.get(e.identity) is None
            plans[e.identity] = e.props["plan"]
            moves["started"] += 1
        elif e.name == "subscription_changed":
            assert plans[e.identity] is not None
            up = order.index(e.props["plan"]) > order.index(plans[e.identity])
            moves["upgrade" if up else "downgrade"] += 1
            plans[e.identity] = e.props["plan"]
        elif e.name == "subscription_cancelled":
            assert plans[e.identity] == e.props["plan"]
            plans[e.identity] = None
            moves["cancelled"] += 1
    assert all(moves[m] >= 20 for m in ("started", "upgrade", "downgrade", "cancelled")), moves
    assert moves["upgrade"] > moves["downgrade"]


def test_live_traffic_goes_on_from_the_history(history, activity) -> None:
    gen, _, _ = history
    first, days = activity
    today = day_of(NOW)
    recent = set().union(*(days[d] for d in range(today - 7, today + 1)))
    decoder = Decoder(load_definitions())
    users: Counter[str] = Counter()
    for i in range(300):  # 30 s of live traffic after the history
        now = NOW + 60 + i * TICK
        for _, value in gen.batch(now, int(RATE * TICK)):
            r = decoder.decode(value, now)
            if isinstance(r, Event) and r.identity in first:
                users[r.identity] += 1
    # Live traffic is of the same users; those gone for a week (most of them churned)
    # rarely come back.
    signed_up = [u for u in first if not u.startswith("anon:")]
    gone = [u for u in signed_up if u not in recent]
    share = len(gone) / len(signed_up)
    assert 0.25 < share < 0.6
    assert sum(users.values()) > 1000
    assert sum(users[u] for u in gone) / sum(users.values()) < share / 4
