"""The traffic generator alone: deterministic, complete, ordered, with its share of bad events."""

from __future__ import annotations

import itertools
import math
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


def simulate(seed: int, seconds: float, start: float = T0, rate: int = RATE,
             gen: TrafficGenerator | None = None) -> list[tuple[float, bytes, bytes]]:
    """(clock, key, value) for ``seconds`` of simulated time at ``rate`` events/s."""
    gen = gen or TrafficGenerator(seed, load_definitions())
    out = []
    for i in range(round(seconds / TICK)):
        now = start + (i + 1) * TICK
        out.extend((now, key, value) for key, value in gen.batch(now, round(rate * TICK)))
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
    # Some events arrive minutes after their time (late: sent out of order); ~1.5 % are
    # held back 1 to 20 minutes, so in 8 minutes a part of them is sent.
    late = [now - r.ts for now, _, r in decoded if isinstance(r, Event) and r.ts < now - 60]
    assert 0.001 < len(late) / len(decoded) < 0.015, len(late)
    assert max(late) > 300
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


# -- sessions and technical performance --------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    """The contract's quantile: the value of rank floor(q * (n - 1)) in sorted order."""
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def sessions_of(events: list[Event]) -> dict[tuple[str, str], list[Event]]:
    """Events by session: (identity, session_id), as the contract defines a session."""
    out: dict[tuple[str, str], list[Event]] = defaultdict(list)
    for e in events:
        if e.session_id is not None:
            out[(e.identity, e.session_id)].append(e)
    return out


def check_sessions(events: list[Event]) -> dict[tuple[str, str], list[Event]]:
    """Everything but spend and (server-side) refunds happens in a session, of one device."""
    outside = Counter(e.name for e in events if e.session_id is None)
    assert set(outside) <= {"marketing_spend", "refund"}, outside
    sessions = sessions_of(events)
    assert all(isinstance(sid, str) and 1 <= len(sid) <= 128 for _, sid in sessions)
    assert all(len({e.platform for e in s}) == 1 for s in sessions.values())
    return sessions


def check_performance_fields(events: list[Event]) -> None:
    """page_load and api_request: the fields the contract requires, valid."""
    perf = [e for e in events if e.name in ("page_load", "api_request")]
    assert perf
    for e in perf:
        ms = e.props["duration_ms"]
        assert isinstance(ms, int | float) and not isinstance(ms, bool)
        assert math.isfinite(ms) and ms >= 0, e
        status = e.props.get("status")
        assert status is None or (type(status) is int and 100 <= status <= 599), e
        assert e.props.get("error") in (None, True, False), e
        if e.name == "api_request":  # a status, or a failure in the client
            assert status is not None or e.props["error"] is True, e
    web = [e for e in perf if e.name == "page_load" and e.platform == "web"]
    assert web and all("status" in e.props for e in web)  # the page's own HTTP status


def failed(e: Event) -> bool:
    """The contract's error: status >= 500 or error == true."""
    return e.props.get("status", 0) >= 500 or e.props.get("error") is True


def crash_free(events: list[Event]) -> float:
    """Crashes only on ios / android; the share of their users without one."""
    crashes = [e for e in events if e.name == "app_crash"]
    assert {e.platform for e in crashes} <= {"ios", "android"}
    mobile = {e.identity for e in events if e.platform in ("ios", "android")}
    return 1 - len({e.identity for e in crashes}) / len(mobile)


def test_live_activity_happens_in_sessions(decoded) -> None:
    events = [r for _, _, r in decoded if isinstance(r, Event)]
    sessions = check_sessions(events)
    assert len(sessions) > 5000  # 8 minutes at 100 events/s
    sizes = [len(s) for s in sessions.values()]
    durations = [max(e.ts for e in s) - min(e.ts for e in s) for s in sessions.values()]
    assert 0.03 < sizes.count(1) / len(sizes) < 0.25  # a start and nothing else
    assert sum(n >= 5 for n in sizes) / len(sizes) > 0.15
    assert max(sizes) >= 15
    assert 15 < quantile(durations, 0.5) < 180, quantile(durations, 0.5)
    assert sum(d >= 180 for d in durations) > 100  # minutes long (in 8 minutes of traffic)
    # A visitor who signs up goes on in the same session, as a user.
    signups = [e for e in events if e.name == "signup"]
    anonymous = {sid for (who, sid) in sessions if who.startswith("anon:")}
    assert sum(e.session_id in anonymous for e in signups) > len(signups) / 2


def test_live_page_loads_api_calls_and_errors(decoded) -> None:
    events = [r for _, _, r in decoded if isinstance(r, Event)]
    check_performance_fields(events)
    loads = [e.props["duration_ms"] for e in events if e.name == "page_load"]
    calls = [e for e in events if e.name == "api_request"]
    assert len(loads) > 5000 and len(calls) > 3000
    # Log-normal around a few hundred ms, with a heavy tail.
    assert 200 < quantile(loads, 0.5) < 600
    assert 2.5 * quantile(loads, 0.5) < quantile(loads, 0.95) < quantile(loads, 0.99) / 2
    statuses = Counter(e.props.get("status") for e in calls)
    assert sum(n for s, n in statuses.items() if s in (200, 201, 204)) / len(calls) > 0.93
    assert 0.01 < sum(n for s, n in statuses.items() if s and 400 <= s < 500) / len(calls) < 0.06
    five = sum(n for s, n in statuses.items() if s and s >= 500) / len(calls)
    assert 0.002 < five < 0.012, five  # no regression in these 8 minutes
    assert sum(failed(e) for e in calls) / len(calls) < 0.015


def test_live_crashes_on_mobile_most_users_crash_free(decoded) -> None:
    events = [r for _, _, r in decoded if isinstance(r, Event)]
    assert sum(e.name == "app_crash" for e in events) >= 5
    assert 0.98 < crash_free(events) < 0.999, crash_free(events)


def test_live_latency_regression_every_hour_or_so() -> None:
    gen = TrafficGenerator(7, load_definitions())
    found = gen.regressions(T0, T0 + 48 * 3600)
    assert 15 <= len(found) <= 45, len(found)
    assert all(240 <= end - start <= 600 and 3 <= factor <= 6 for start, end, factor in found)
    assert len({int(start // 3600) for start, _, _ in found}) == len(found)  # one an hour
    start, end, factor = found[0]
    assert gen.regression_at(start - 1) == 1.0 == gen.regression_at(end + 1)
    assert gen.regression_at((start + end) / 2) == factor
    # Ten minutes before it, then through it, at 40 events/s.
    decoder = Decoder(load_definitions())
    calls = [r for now, _, value in simulate(7, end - start + 660, start - 600, 40, gen)
             if isinstance(r := decoder.decode(value, now), Event) and r.name == "api_request"]
    before = [e for e in calls if start - 480 <= e.ts < start]  # (after the first 2 minutes)
    during = [e for e in calls if start + 5 <= e.ts < end]
    assert len(before) > 1000 and len(during) > 500
    p95_before = quantile([e.props["duration_ms"] for e in before], 0.95)
    p95_during = quantile([e.props["duration_ms"] for e in during], 0.95)
    assert p95_during > 2.5 * p95_before, (p95_before, p95_during)
    five_before = sum(e.props.get("status", 0) >= 500 for e in before) / len(before)
    five_during = sum(e.props.get("status", 0) >= 500 for e in during) / len(during)
    assert five_before < 0.015 and 0.015 < five_during < 0.08, (five_before, five_during)


def test_live_traffic_decodes_but_for_its_bad_events() -> None:
    """Every valid message passes the decoder (session_id, duration_ms, status, error
    included); the rejections are the deliberately bad ones, one each."""
    gen = TrafficGenerator(11, load_definitions())
    decoder = Decoder(load_definitions())
    rejected = [r for now, _, value in simulate(11, 120, gen=gen)
                if isinstance(r := decoder.decode(value, now), Rejection)]
    bad = {k: n for k, n in gen.stats.items() if k.startswith("bad:")}
    assert len(rejected) == sum(bad.values()) and bad["bad:schema_performance"] > 0
    fields = ("duration_ms", "status", "error", "session_id")
    technical = [r for r in rejected if any(f in r.error for f in fields)]
    assert len(technical) == bad["bad:schema_performance"], [r.error for r in technical]
    assert all(r.reason == Reason.SCHEMA for r in technical)


# -- the backfill: 30 days of history before the live traffic --------------------------------

NOW = T0  # 16:00 UTC
DAY = 86400


def day_of(ts: float) -> int:
    return int(ts // DAY)


@pytest.fixture(scope="module")
def history() -> tuple[TrafficGenerator, list[tuple[bytes, bytes]],
                       list[Event | Ignored | Rejection]]:
    """The 30-day backfill ending at NOW (~160k messages), decoded as the worker would
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
    assert 50_000 < len(messages) < 200_000  # enough history, quick to send (~10 s)
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


def test_history_happens_in_sessions_minutes_long(history) -> None:
    _, _, results = history
    events = [r for r in results if isinstance(r, Event)]
    sessions = check_sessions(events)
    sizes = [len(s) for s in sessions.values()]
    durations = [max(e.ts for e in s) - min(e.ts for e in s) for s in sessions.values()]
    assert 0.03 < sizes.count(1) / len(sizes) < 0.2  # a start alone
    assert sum(n >= 5 for n in sizes) / len(sizes) > 0.25  # several events
    assert max(sizes) >= 20  # to dozens
    assert 40 < quantile(durations, 0.5) < 300, quantile(durations, 0.5)
    assert 180 < quantile(durations, 0.9) < 900, quantile(durations, 0.9)
    assert max(durations) > 900
    today = day_of(NOW)
    by_day = Counter(day_of(min(e.ts for e in s)) for s in sessions.values())
    assert all(by_day[d] > 500 for d in range(today - 29, today))


def test_history_page_loads_api_calls_and_errors(history) -> None:
    gen, _, results = history
    events = [r for r in results if isinstance(r, Event)]
    check_performance_fields(events)
    start, end, _ = gen.history_regression
    loads = [e.props["duration_ms"] for e in events if e.name == "page_load"]
    calls = [e for e in events if e.name == "api_request" and not start <= e.ts < end]
    assert 200 < quantile(loads, 0.5) < 600
    assert 2.5 * quantile(loads, 0.5) < quantile(loads, 0.95) < quantile(loads, 0.99) / 2
    durations = [e.props["duration_ms"] for e in calls]
    assert 80 < quantile(durations, 0.5) < 300 and quantile(durations, 0.99) > 1000
    # The apps send whole milliseconds, the browser fractions.
    assert all(type(e.props["duration_ms"]) is int for e in events
               if e.name == "page_load" and e.platform in ("ios", "android"))
    five = sum(e.props.get("status", 0) >= 500 for e in calls) / len(calls)
    assert 0.003 < five < 0.01, five
    assert 0.004 < sum(failed(e) for e in calls) / len(calls) < 0.015


def test_history_has_one_latency_regression(history) -> None:
    gen, _, results = history
    start, end, factor = gen.history_regression
    assert start > NOW - 29 * DAY and end < NOW - 6 * DAY
    assert 45 * 60 <= end - start <= 90 * 60 and 3 <= factor <= 6
    assert gen.regressions(NOW - 30 * DAY, NOW) == [gen.history_regression]
    assert gen.regression_at(start - 3600) == 1.0 == gen.regression_at(NOW - 60)

    def p95(name: str, during: bool) -> float:
        # the same time of day on the other days, or that day's regression
        values = [r.props["duration_ms"] for r in results
                  if isinstance(r, Event) and r.name == name
                  and (start <= r.ts < end) == during
                  and start % DAY <= r.ts % DAY < end % DAY]
        assert len(values) > 30
        return quantile(values, 0.95)

    assert p95("api_request", True) > 2.5 * p95("api_request", False)
    assert p95("page_load", True) > 1.5 * p95("page_load", False)


def test_history_crashes_on_mobile_most_users_crash_free(history) -> None:
    _, _, results = history
    events = [r for r in results if isinstance(r, Event)]
    today = day_of(NOW)
    assert sum(e.name == "app_crash" for e in events) > 30
    shares = [crash_free([e for e in events if day_of(e.ts) == d])
              for d in range(today - 29, today)]
    assert min(shares) > 0.96 and 0.98 < sum(shares) / len(shares) < 0.999, shares
    assert crash_free(events) < min(shares)  # over 30 days more users crash than in a day


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
