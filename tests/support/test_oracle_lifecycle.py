"""The lifecycle oracle itself: hand-computed cases (a few users, explicit times), and
the properties its generated log must have (safe times, late events that really move
something, the edge cases of each variant, messages that say what the truth says)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

import pytest

from tests.support import oracle_catalog as oc
from tests.support import oracle_lifecycle as ol
from tests.support.oracle_lifecycle import Record, Spend, Truth

DAY, HOUR = ol.DAY, ol.HOUR
#: Noon UTC: every hand-made time below is far from midnight and from every window edge.
NOW = 20_000 * DAY + 12 * HOUR
NOW_MS = NOW * 1000
TODAY = 20_000
_ids = iter(range(10**9))
Corpus = tuple[list[ol.Message], list[ol.Message], Truth]


def k(metric: str, **labels: str) -> ol.Key:
    return (metric, frozenset(labels.items()))


def ago(seconds: float) -> int:
    return NOW_MS - int(seconds * 1000)


def on(day: int, hour: float) -> int:
    """A time on UTC day ``TODAY + day`` (day <= 0) at ``hour``."""
    return (TODAY + day) * ol.DAY_MS + int(hour * HOUR * 1000)


def rec(identity: str, ms: int, name: str = "session_start", platform: str | None = "web",
        late: bool = False, **props: object) -> Record:
    return Record(f"e{next(_ids)}", identity, ms, name, platform, dict(props), late)


def sub(identity: str, ms: int, name: str, mrr: float = 0.0, currency: str = "USD",
        plan: str = "pro") -> Record:
    return rec(identity, ms, name, "web", plan=plan, mrr=mrr, currency=currency)


# --------------------------------------------------------------------------- new users

def test_new_users_by_platform_of_the_first_event_and_ties() -> None:
    truth = Truth(records=[
        # u1: two events at the same millisecond: the smaller label (ios < web) is first
        rec("u1", ago(30), platform="web"), rec("u1", ago(30), platform="iOS"),
        # u2: first seen 2 h ago on an unknown platform, back 10 s ago on the web
        rec("u2", ago(2 * HOUR), platform="tv"), rec("u2", ago(10), platform="web"),
        # u3: first seen 3 days ago, any case of a known platform
        rec("u3", ago(3 * DAY), platform="Android"),
        # u4: a tie between other (tv) and web: other < web
        rec("u4", ago(20 * DAY), platform="web"), rec("u4", ago(20 * DAY), platform="tv"),
    ], spends=[  # spend makes no one new or active, with or without an identity
        Spend("s1", ago(20), "10.00", "USD", "google", identity="u5"),
        Spend("s2", ago(20), "10.00", "USD", None, identity="u1"),
    ])
    got = truth.expected(NOW)

    def new(window: str) -> dict[str, float]:
        return {p: got[k("product_new_users", window=window, platform=p)]
                for p in ("web", "ios", "android", "other", "all")}

    assert new("5m") == {"web": 0, "ios": 1, "android": 0, "other": 0, "all": 1}
    assert new("1h") == new("5m")
    assert new("24h") == {"web": 0, "ios": 1, "android": 0, "other": 1, "all": 2}
    assert new("7d") == {"web": 0, "ios": 1, "android": 1, "other": 1, "all": 3}
    assert new("30d") == {"web": 0, "ios": 1, "android": 1, "other": 2, "all": 4}
    returning = {w: got[k("product_returning_users", window=w)] for w in ol.WINDOWS}
    assert returning == {"5m": 1, "1h": 1, "24h": 0, "7d": 0, "30d": 0}


def test_a_late_first_event_moves_platform_cohort_and_retention() -> None:
    first = [
        rec("u", on(-1, 10), platform="web"), rec("u", on(0, 11), platform="web"),
        rec("v", on(-2, 15), platform="ios"), rec("v", on(-1, 16), platform="ios"),
        rec("w", on(-2, 13), platform="ios"),
        rec("x", ago(2 * HOUR), platform="web"),
    ]
    late = [
        rec("u", on(-2, 9), platform="android", late=True),  # into the day-1 cohort
        rec("x", ago(30 * HOUR), platform="tv", late=True),  # out of the 24h window
    ]
    truth = Truth(records=first + late)
    before, after = truth.first_only().expected(NOW), truth.expected(NOW)
    cohort = k("product_retention_cohort_users", day="1")
    ratio = k("product_retention_ratio", day="1")
    # before: the day-1 cohort (day today - 2) is v (back yesterday) and w (never back)
    assert (before[cohort], before[ratio]) == (2, 0.5)
    # after: u joined it, and was back yesterday
    assert (after[cohort], after[ratio]) == (3, pytest.approx(2 / 3))
    # u's first platform moved from web to android
    assert before[k("product_new_users", window="7d", platform="web")] == 2
    assert after[k("product_new_users", window="7d", platform="web")] == 0
    assert after[k("product_new_users", window="7d", platform="android")] == 1
    assert after[k("product_new_users", window="7d", platform="other")] == 1
    # x: new in 24h until the late event, then returning
    assert before[k("product_new_users", window="24h", platform="all")] == 1
    assert after[k("product_new_users", window="24h", platform="all")] == 0
    assert before[k("product_returning_users", window="24h")] == 2  # u, v (yesterday 16:00)
    assert after[k("product_returning_users", window="24h")] == 3   # u, v, x
    # a late event moving v to an older day takes v out of the cohort
    out = Truth(records=[*first, rec("v", on(-3, 15), late=True)])
    assert out.expected(NOW)[cohort] == 1 and out.expected(NOW)[ratio] == 0.0


# --------------------------------------------------------------------------- retention

def test_retention_cohorts_and_an_empty_one() -> None:
    truth = Truth(records=[
        # day-1 cohort (today - 2): a retained yesterday, b only today, c never back
        rec("a", on(-2, 8)), rec("a", on(-1, 20)),
        rec("b", on(-2, 9)), rec("b", on(0, 9)),
        rec("c", on(-2, 23)),
        # d was first seen the day before (today - 3): not in the cohort though active
        rec("d", on(-3, 8)), rec("d", on(-2, 8)), rec("d", on(-1, 8)),
        # day-28 cohort (today - 29): e is back on day 28 (yesterday), f on day 27
        rec("e", on(-29, 18)), rec("e", on(-1, 1)),
        rec("f", on(-29, 19)), rec("f", on(-2, 1)),
        # nobody first seen on today - 8: the day-7 cohort is empty
        rec("g", on(-7, 12)), rec("g", on(-1, 12)),
    ])
    got = truth.expected(NOW)
    cohort = {n: got[k("product_retention_cohort_users", day=n)] for n in ("1", "7", "28")}
    ratio = {n: got[k("product_retention_ratio", day=n)] for n in ("1", "7", "28")}
    assert cohort == {"1": 3, "7": 0, "28": 2}
    assert ratio == {"1": pytest.approx(1 / 3), "7": 0.0, "28": 0.5}
    assert k("product_retention_ratio", day="7") not in truth.absent(NOW)


# --------------------------------------------------------------------------- churn

def test_user_churn_of_the_previous_period() -> None:
    truth = Truth(records=[
        rec("a", ago(30 * HOUR)), rec("a", ago(HOUR)),      # prev and now: stays
        rec("b", ago(40 * HOUR)),                           # prev only: churned
        rec("c", ago(47 * HOUR)), rec("c", ago(60 * HOUR)),  # prev (and before): churned
        rec("d", ago(2 * HOUR)),                            # new: not in prev
        rec("e", ago(50 * HOUR)),                           # before prev: not counted
        rec("f", ago(10 * DAY)), rec("f", ago(3 * DAY)),    # 7d: stays
        rec("g", ago(13 * DAY)),                            # 7d: churned
    ])
    got = truth.expected(NOW)
    assert got[k("product_user_churn_ratio", window="24h")] == pytest.approx(2 / 3)
    # 7d: prev = (7 d, 14 d] ago: f, g; now: a, b, c, d, e, f
    assert got[k("product_user_churn_ratio", window="7d")] == 0.5
    assert k("product_user_churn_ratio", window="1h") not in got
    nobody_before = Truth(records=[rec("a", ago(HOUR))])
    assert nobody_before.expected(NOW)[k("product_user_churn_ratio", window="24h")] == 0.0


# --------------------------------------------------------------------------- money

def _money_truth(*, cancel: bool = True, buyer_now: bool = True) -> Truth:
    records = [
        # A: veteran subscription (before the 30d window), upgraded 10 days ago
        rec("A", ago(30 * DAY + 2 * HOUR)),
        sub("A", ago(30 * DAY + 2 * HOUR), "subscription_started", 40.0),
        sub("A", ago(10 * DAY), "subscription_changed", 60.0),
        # B: veteran subscription, cancelled 3 days ago (if ``cancel``)
        sub("B", ago(30 * DAY + 3 * HOUR), "subscription_started", 20.0),
        # F: veteran subscription, cancelled 15 days ago (if ``cancel``)
        sub("F", ago(30 * DAY + 4 * HOUR), "subscription_started", 15.0, plan="starter"),
        # C: a new EUR subscription
        sub("C", ago(2 * DAY), "subscription_started", 10.0, "EUR", "starter"),
        # G: EUR subscription 20 days ago, down 5 three days ago
        sub("G", ago(20 * DAY), "subscription_started", 30.0, "EUR"),
        sub("G", ago(3 * DAY), "subscription_changed", 25.0, "EUR"),
        # D: first conversion 10 days ago, bought again 2 hours ago
        rec("D", ago(10 * DAY), "purchase", amount=5.0, currency="USD"),
        rec("D", ago(2 * HOUR), "purchase", amount=5.0, currency="USD"),
    ]
    if cancel:
        records.append(sub("B", ago(3 * DAY), "subscription_cancelled", 20.0))
        records.append(sub("F", ago(15 * DAY), "subscription_cancelled", 15.0))
    if buyer_now:
        records.append(rec("E", ago(20), "purchase", amount=9.99, currency="EUR"))
    return Truth(records=records, spends=[
        Spend("s1", ago(30), "100.00", "USD", "google"),
        Spend("s2", ago(2 * HOUR), "50.50", "usd", "podcast", identity="D"),
        Spend("s3", ago(25), "20", "EUR", None, identity="anon:bot"),
        Spend("s4", ago(20 * DAY), "0.25", "CHF", "meta"),
    ])


def test_spend_customers_and_cac() -> None:
    truth = _money_truth()
    got, absent = truth.expected(NOW), truth.absent(NOW)
    customers = {w: got[k("product_new_customers", window=w)] for w in ol.WINDOWS}
    # A, B and F first converted before the 30d window, D and G 10 and 20 days ago
    assert customers == {"5m": 1, "1h": 1, "24h": 1, "7d": 2, "30d": 4}
    spend = k("product_marketing_spend", window="24h", currency="USD", channel="other")
    assert got[spend] == 50.5  # lower-case usd, a channel not configured
    assert got[k("product_marketing_spend", window="5m", currency="EUR", channel="other")] == 20
    assert got[k("product_marketing_spend", window="30d", currency="other", channel="meta")] \
        == 0.25
    assert got[k("product_marketing_spend", window="5m", currency="JPY", channel="email")] == 0
    assert got[k("product_events", window="5m", name="marketing_spend")] == 2
    assert got[k("product_events", window="30d", name="marketing_spend")] == 4
    assert got[k("product_cac", window="5m", currency="USD")] == 100.0
    assert got[k("product_cac", window="24h", currency="USD")] == 150.5
    assert got[k("product_cac", window="7d", currency="USD")] == 75.25
    assert got[k("product_cac", window="30d", currency="other")] == 0.0625
    assert got[k("product_cac", window="5m", currency="JPY")] == 0.0  # no spend: a value
    assert not {key for key in absent if key[0] == "product_cac"}
    # spend by identities makes no one a user
    assert got[k("product_new_users", window="5m", platform="all")] == 1

    no_buyer = _money_truth(buyer_now=False)
    got, absent = no_buyer.expected(NOW), no_buyer.absent(NOW)
    assert got[k("product_new_customers", window="5m")] == 0
    for window in ("5m", "1h", "24h"):
        for c in (*ol.CURRENCIES, "other"):
            assert k("product_cac", window=window, currency=c) in absent
            assert k("product_cac", window=window, currency=c) not in got
    assert got[k("product_cac", window="7d", currency="USD")] == 150.5


def test_mrr_ltv_and_nrr() -> None:
    truth = _money_truth()
    got, absent = truth.expected(NOW), truth.absent(NOW)
    assert got[k("product_mrr", currency="USD", plan="pro")] == 60.0
    assert got[k("product_mrr", currency="USD", plan="starter")] == 0.0
    assert got[k("product_mrr", currency="EUR", plan="starter")] == 10.0
    assert got[k("product_mrr", currency="EUR", plan="pro")] == 25.0
    # 30d: at the start A, B, F; cancelled B, F. 7d: at the start A, B, G; cancelled B
    assert got[k("product_subscription_churn_ratio", window="30d")] == pytest.approx(2 / 3)
    assert got[k("product_subscription_churn_ratio", window="7d")] == pytest.approx(1 / 3)
    assert got[k("product_mrr_movement", kind="expansion", window="30d", currency="USD")] == 20
    assert got[k("product_mrr_movement", kind="churn", window="30d", currency="USD")] == 35
    assert got[k("product_mrr_movement", kind="churn", window="7d", currency="USD")] == 20
    assert got[k("product_mrr_movement", kind="contraction", window="7d", currency="EUR")] == 5
    assert got[k("product_mrr_movement", kind="new", window="30d", currency="EUR")] == 40
    assert got[k("product_ltv", currency="USD")] == pytest.approx(90.0)   # 60 / 1 / (2/3)
    assert got[k("product_ltv", currency="EUR")] == pytest.approx(26.25)  # 35 / 2 / (2/3)
    assert k("product_ltv", currency="GBP") in absent                     # no subscription
    # USD 30d: start 75 (A 40, B 20, F 15); +20 expansion -35 churn -> 0.8
    nrr = "product_net_revenue_retention_ratio"
    assert got[k(nrr, window="30d", currency="USD")] == pytest.approx(0.8)
    # USD 7d: start 80 (A 60, B 20); -20 churn -> 0.75
    assert got[k(nrr, window="7d", currency="USD")] == 0.75
    # EUR 7d: start 30 (G); -5 contraction -> 5/6; 30d: both started inside, start 0
    assert got[k(nrr, window="7d", currency="EUR")] == pytest.approx(5 / 6)
    assert k(nrr, window="30d", currency="EUR") in absent
    assert k(nrr, window="30d", currency="EUR") not in got
    for window in ol.NRR_WINDOWS:
        assert k(nrr, window=window, currency="GBP") in absent

    no_churn = _money_truth(cancel=False)
    got, absent = no_churn.expected(NOW), no_churn.absent(NOW)
    assert got[k("product_subscription_churn_ratio", window="30d")] == 0.0
    assert {c for (name, labels) in absent if name == "product_ltv"
            for _, c in labels} == {*ol.CURRENCIES, "other"}
    assert not [key for key in got if key[0] == "product_ltv"]


# --------------------------------------------------------------------------- comparison

def test_mismatches_reports_missing_wrong_and_unexpected_samples() -> None:
    truth = _money_truth(buyer_now=False)
    samples = dict(truth.expected(NOW))
    assert ol.mismatches(samples, truth, NOW) == []
    ratio = k("product_ltv", currency="USD")
    samples[ratio] *= 1 + 1e-12  # float noise in a ratio is fine
    assert ol.mismatches(samples, truth, NOW) == []
    samples[ratio] *= 1 + 1e-6
    count = k("product_new_users", window="7d", platform="all")
    samples[count] += 1
    spend = k("product_marketing_spend", window="24h", currency="USD", channel="other")
    samples[spend] += 1e-9  # sums are exact
    del samples[k("product_retention_cohort_users", day="7")]
    samples[k("product_cac", window="5m", currency="USD")] = 0.0          # must be absent
    samples[k("product_cac", window="5m", currency="XYZ")] = 1.0          # no such series
    samples[k("product_active_users", window="5m", platform="web")] = 3  # not ours
    bad = ol.mismatches(samples, truth, NOW)
    assert len(bad) == 6, bad
    assert any(b.startswith("product_ltv") and "rel 1e-9" in b for b in bad)
    assert any(b.startswith("product_new_users") and "exact" in b for b in bad)
    assert any(b.startswith("product_marketing_spend") for b in bad)
    assert any("missing" in b and "retention_cohort" in b for b in bad)
    assert any("want no sample" in b and "'USD'" in b for b in bad)
    assert any("no such series" in b and "XYZ" in b for b in bad)


# --------------------------------------------------------------------------- the log

def _decode(value: bytes) -> tuple[str, str | None, str, int, str]:
    """(event id, identity, name, ms, platform label) of one message, by the contract's
    rules for the formats the generator uses."""
    obj = json.loads(value)
    segment = "messageId" in obj
    if segment:
        event_id = obj["messageId"]
        name = {"page": "page_view", "screen": "screen_view"}.get(obj["type"]) or obj["event"]
        name = "purchase" if name == "Order Completed" else name
        user, anon = obj.get("userId"), obj.get("anonymousId")
        context = obj.get("context", {})
        raw = obj.get("platform") or context.get("device", {}).get("type")
        if raw is None and "os" in context:
            raw = context["os"]["name"].lower()
        if raw is None and context.get("library", {}).get("name") == "analytics.js":
            raw = "web"
    else:
        event_id, name = obj["event_id"], obj["name"]
        user, anon, raw = obj.get("user_id"), obj.get("anonymous_id"), obj.get("platform")
    identity = user if user is not None else f"anon:{anon}" if anon is not None else None
    ts = obj["timestamp"]
    if isinstance(ts, str):
        ms = round(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)
    else:
        ms = ts if ts > 1e11 else round(ts * 1000)
    return event_id, identity, name, ms, ol.platform_label(raw)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return ol.generate(NOW, seed=7)


@pytest.fixture(scope="module")
def edges() -> Corpus:
    return ol.generate(NOW, seed=8, edges=True)


def test_messages_say_what_the_truth_says(corpus: Corpus) -> None:
    first, late, truth = corpus
    records = {r.event_id: r for r in truth.records}
    spends = {s.event_id: s for s in truth.spends}
    seen: Counter[str] = Counter()
    invalid = 0
    for batch, is_late in ((first, False), (late, True)):
        for _, value in batch:
            event_id, identity, name, ms, label = _decode(value)
            if event_id.startswith("bad-"):
                invalid += 1
                continue
            seen[event_id] += 1
            if name == ol.SPEND:
                s = spends[event_id]
                assert (identity, ms) == (s.identity, s.ms)
                if seen[event_id] == 1:
                    assert s.late == is_late
            else:
                r = records[event_id]
                assert (identity, name, ms, label) == (
                    r.identity, r.name, r.ms, ol.platform_label(r.platform))
                if seen[event_id] == 1:
                    assert r.late == is_late, event_id
    assert set(seen) == set(records) | set(spends)
    assert sum(seen.values()) - len(seen) == truth.duplicates
    assert invalid == truth.invalid["schema"] == 5
    assert len(first) == truth.messages_first and len(late) == truth.messages_late
    assert truth.events_total == len(records) + len(spends)


def test_the_log_has_the_shape_asked_for(corpus: Corpus) -> None:
    first, late, truth = corpus
    users = {r.identity for r in truth.records}
    assert 1500 <= len(users) <= 3000
    assert 8000 <= len(first) <= 20000
    assert len(late) >= 100
    assert all(ol.safe(r.ms, NOW) for r in truth.records)
    assert all(ol.safe(s.ms, NOW) for s in truth.spends)
    ages = [NOW - r.ms / 1000 for r in truth.records]
    assert max(a for a in ages if a < 30 * DAY) < 29 * DAY
    assert 0 < sum(a > 30 * DAY for a in ages) < 0.05 * len(ages)  # the veterans
    assert all(a < 31 * DAY - 12 * HOUR for a in ages)
    # first seen on each of the last 30 UTC days
    heads: dict[str, Record] = {}
    for r in sorted(truth.records, key=lambda r: (r.ms, ol.platform_label(r.platform))):
        heads.setdefault(r.identity, r)
    days = Counter(TODAY - h.ms // ol.DAY_MS for h in heads.values())
    assert all(days[d] >= 10 for d in range(30)), days
    # duplicates ~3 %, some keyed differently; unkeyed and mis-keyed messages
    assert 0.02 < truth.duplicates / (len(first) + len(late)) < 0.045
    by_value = Counter(v for _, v in first)
    assert sum(n - 1 for n in by_value.values()) == truth.duplicates_first
    keys = Counter("none" if key is None else "user" if key.decode() in users else "other"
                   for key, _ in first)
    assert min(keys.values()) > 0.1 * len(first)
    # both wire formats, aliases, page and screen calls
    text = b"\n".join(v for _, v in first)
    for needle in (b'"messageId"', b'"event_id"', b'"Order Completed"', b'"type": "page"',
                   b'"type": "screen"', b'"os": {"name": "iOS"}', b"analytics.js",
                   b"Z\"", b"-05:00"):
        assert needle in text, needle
    # spend: mostly without identity, channels configured, not configured and absent
    spends = truth.spends
    assert sum(s.identity is None for s in spends) > 0.7 * len(spends)
    assert any(s.identity in users for s in spends)
    channels = Counter(ol._label(s.channel, ol.CHANNELS) if s.channel else "absent"
                       for s in spends)
    assert channels["other"] > 0 and channels["absent"] > 0 and channels["google"] > 0
    assert any(s.currency.islower() for s in spends)
    assert any(s.late for s in spends)
    assert {r.name for r in truth.records} >= {*ol.SUBSCRIPTION, "purchase"}


def test_late_events_really_move_things(corpus: Corpus) -> None:
    _, _, truth = corpus
    before, after = truth.first_only(), truth

    def heads(t: Truth) -> dict[str, tuple[int, str]]:
        out: dict[str, tuple[int, str]] = {}
        for r in t.records:
            head = (r.ms, ol.platform_label(r.platform))
            out[r.identity] = min(out.get(r.identity, head), head)
        return out

    old, new = heads(before), heads(after)
    moved = [u for u in old if new[u] != old[u]]
    assert all(new[u] <= old[u] for u in old)
    assert sum(new[u][1] != old[u][1] for u in moved) >= 5        # platform moved
    assert sum(new[u][0] // ol.DAY_MS != old[u][0] // ol.DAY_MS for u in moved) >= 10
    assert sum(new[u][0] == old[u][0] for u in moved) >= 1         # a tie won
    # the cohorts and new customers change with them
    b, a = before.expected(NOW), after.expected(NOW)
    changed = {key[0] for key in a if a[key] != b.get(key)}
    assert {"product_new_users", "product_retention_cohort_users",
            "product_new_customers"} <= changed


def test_main_variant_has_every_money_sample(corpus: Corpus) -> None:
    _, _, truth = corpus
    got, absent = truth.expected(NOW), truth.absent(NOW)
    assert not [key for key in absent if key[0] == "product_cac"]
    assert all(got[k("product_new_customers", window=w)] > 0 for w in ol.WINDOWS)
    assert got[k("product_subscription_churn_ratio", window="30d")] > 0
    assert got[k("product_returning_users", window="30d")] > 0
    for c in ("USD", "EUR", "GBP", "other", ol.FRESH_CURRENCY):
        assert k("product_ltv", currency=c) in got
    for w in ol.NRR_WINDOWS:
        assert k("product_net_revenue_retention_ratio", window=w, currency="USD") in got
        fresh = k("product_net_revenue_retention_ratio", window=w, currency=ol.FRESH_CURRENCY)
        assert fresh in absent
    assert got[k("product_mrr", currency=ol.FRESH_CURRENCY, plan="pro")] + got[
        k("product_mrr", currency=ol.FRESH_CURRENCY, plan="starter")] > 0
    for n in ("1", "7", "28"):
        assert got[k("product_retention_cohort_users", day=n)] > 0
        assert 0 < got[k("product_retention_ratio", day=n)] < 1
    assert 0 < got[k("product_user_churn_ratio", window="24h")] < 1


def test_edges_variant(edges: Corpus) -> None:
    _, _, truth = edges
    got, absent = truth.expected(NOW), truth.absent(NOW)
    assert got[k("product_retention_cohort_users", day="7")] == 0
    assert got[k("product_retention_ratio", day="7")] == 0.0
    assert got[k("product_retention_cohort_users", day="1")] > 0
    for window in ("5m", "1h"):
        assert got[k("product_new_customers", window=window)] == 0
        assert got[k("product_events", window=window, name="marketing_spend")] > 0
        for c in (*ol.CURRENCIES, "other"):
            assert k("product_cac", window=window, currency=c) in absent
    assert k("product_cac", window="24h", currency="USD") in got
    assert got[k("product_subscription_churn_ratio", window="30d")] == 0.0
    assert not [key for key in got if key[0] == "product_ltv"]
    assert got[k("product_mrr", currency="USD", plan="pro")] > 0
    for w in ol.NRR_WINDOWS:
        assert k("product_net_revenue_retention_ratio", window=w,
                 currency=ol.FRESH_CURRENCY) in absent
    assert all(r.name != "subscription_cancelled" for r in truth.records)


@pytest.mark.parametrize("tod", [0.3 * HOUR, 12 * HOUR, 23.7 * HOUR])
@pytest.mark.parametrize("variant", [False, True])
def test_expectations_hold_for_a_scrape_minutes_away(tod: float, variant: bool) -> None:
    now = 20_100 * DAY + tod
    _, _, truth = ol.generate(now, seed=3, users=600, edges=variant)
    want = truth.expected(now), truth.absent(now)
    for drift in (-180.0, 120.0, 180.0):
        assert (truth.expected(now + drift), truth.absent(now + drift)) == want, drift


def test_subscription_inputs_equal_the_catalog_oracle(corpus: Corpus) -> None:
    _, _, truth = corpus
    subs = [oc.Record(r.event_id, r.identity, r.ms, r.name, r.platform, r.props)
            for r in truth.records if r.name in ol.SUBSCRIPTION]
    theirs = oc.Truth(records=subs).expected(NOW)
    mine = truth.expected(NOW)
    names = ("product_mrr", "product_mrr_movement", "product_subscription_churn_ratio")
    keys = {key for key in theirs if key[0] in names}
    assert keys == {key for key in mine if key[0] in names}
    assert {key: mine[key] for key in keys} == {key: theirs[key] for key in keys}
