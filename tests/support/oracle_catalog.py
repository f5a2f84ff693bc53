"""The catalog metrics of SPEC section 3, computed in one batch from the event list.

Written independently of the streaming code (no import from ``aggregators``,
``events`` or ``config``): every metric is computed straight from its definition in
``docs/metrics.md`` over plain records, with sets, Decimals and sorting, and with
algorithms chosen to differ from the incremental ones (e.g. funnels by a scan of the
user's events in time order instead of a greedy search per entry).

Event times are whole milliseconds (every timestamp format used keeps them exact),
and every time a metric is bucketed by (event, first signup, funnel entry, subscription
change) is kept away from every window edge, so any implementation meeting SPEC's
precision rule must agree with "counted iff age <= W" for the whole test.

:func:`generate` builds a log of per-user scenarios (activation before signup and after
the horizon, funnels with out-of-order, repeated and late steps and two funnels sharing
steps, upgrades, downgrades, cancels, re-subscribes, currency and unknown-plan changes,
every NPS score, out-of-range scores, refunds without a purchase, ...), sends it
shuffled with duplicates and mixed keys and formats, and returns the truth.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from tests.support import compare as core_compare
from tests.support import oracle as core_oracle

DAY = 86400
WINDOWS = {"5m": 300, "1h": 3600, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
GRAIN = {"5m": 15, "1h": 300, "24h": 7200, "7d": DAY, "30d": DAY}
MARGIN = 240.0
PLATFORMS = ("web", "ios", "android")
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CAD", "AUD", "BRL", "INR")
PLANS = ("free", "starter", "pro", "business", "enterprise")
FEATURES = ("search", "export", "share", "dashboard", "invite", "integrations")
ACTIVATION_WITHIN = 7 * DAY
TTA_BOUNDS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, DAY, 2 * DAY, 3 * DAY,
              7 * DAY, 14 * DAY, 30 * DAY)
CHECKOUT = ("product_viewed", "cart_added", "checkout_started", "purchase")
#: The test definitions add a second funnel sharing two steps with ``checkout``.
QUICK_BUY = ("product_viewed", "purchase")
FUNNELS = {"checkout": (CHECKOUT, 3600), "quick_buy": (QUICK_BUY, 600)}
SURVEYS = {"nps": ("nps_submitted", 0, 10), "csat": ("csat_submitted", 1, 5)}
SUBSCRIPTION = ("subscription_started", "subscription_changed", "subscription_cancelled")
MOVEMENTS = ("new", "expansion", "contraction", "churn")


def definitions_yaml(bundled: str) -> str:
    """The bundled definitions plus the ``quick_buy`` funnel (for LEADLINE_DEFINITIONS)."""
    steps = ", ".join(QUICK_BUY)
    return bundled.replace(
        "funnels:\n", f"funnels:\n  quick_buy:\n    steps: [{steps}]\n    within: 10m\n", 1)


def safe(age: float) -> bool:
    """An age (s) at which every window certainly counts, or certainly does not count."""
    if age < -200 or age > 31 * DAY - 3600:
        return False
    return all(not (w - GRAIN[k] - MARGIN < age < w + MARGIN) for k, w in WINDOWS.items())


def _label(value: str | None, allowed: Iterable[str]) -> str:
    return value if value is not None and value in allowed else "other"


def _platform(value: str | None) -> str:
    return value.lower() if value is not None and value.lower() in PLATFORMS else "other"


@dataclass
class Record:
    """One valid, first-seen event as the oracle sees it."""

    event_id: str
    identity: str
    ms: int
    name: str
    platform: str | None
    props: dict[str, object] = field(default_factory=dict)


@dataclass
class Truth:
    """Valid, deduplicated events, plus the expected rejections and duplicates."""

    records: list[Record] = field(default_factory=list)
    invalid: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0
    funnels: dict[str, tuple[tuple[str, ...], int]] = field(default_factory=lambda: FUNNELS)

    def expected(self, now: float) -> dict[tuple[str, frozenset], float]:
        """Catalog samples (name, labels) -> value for a scrape at ``now``."""
        out: dict[tuple[str, frozenset], float] = {}
        for name, labels, value in self._samples(now):
            out[(name, frozenset(labels))] = value
        return out

    def parts(self, now: float) -> dict[tuple[str, frozenset], tuple[int, int]]:
        """For ratios of distinct counts: (numerator, denominator) behind each value."""
        out = {}
        for name, labels, value in self._samples(now, parts=True):
            out[(name, frozenset(labels))] = value
        return out

    def _samples(self, now: float, parts: bool = False):  # type: ignore[no-untyped-def]
        now_ms = now * 1000

        def inside(ms: float, window: str) -> bool:
            return now_ms - ms <= WINDOWS[window] * 1000

        by_user: dict[str, list[Record]] = defaultdict(list)
        for r in self.records:
            by_user[r.identity].append(r)
        for evs in by_user.values():
            evs.sort(key=lambda r: (r.ms, r.event_id))

        for window in WINDOWS:
            w = ("window", window)
            recs = [r for r in self.records if inside(r.ms, window)]
            active = {r.identity for r in recs}
            sessions = sum(1 for r in recs if r.name == "session_start")
            signups: dict[str, set[str]] = defaultdict(set)
            refunds: dict[str, Decimal] = defaultdict(Decimal)
            feature_users: dict[str, set[str]] = defaultdict(set)
            scores: dict[str, list[int]] = defaultdict(list)
            for r in recs:
                if r.name == "signup":
                    signups[_platform(r.platform)].add(r.identity)
                    signups["all"].add(r.identity)
                elif r.name == "refund":
                    refunds[_label(str(r.props["currency"]), CURRENCIES)] += Decimal(
                        str(r.props["amount"]))
                elif r.name == "feature_used" and r.props["feature"] in FEATURES:
                    feature_users[str(r.props["feature"])].add(r.identity)
                for survey, (event, _, _) in SURVEYS.items():
                    if r.name == event:
                        scores[survey].append(int(r.props["score"]))  # type: ignore[call-overload]
            for p in (*PLATFORMS, "other", "all"):
                yield "product_signups", {w, ("platform", p)}, len(signups[p])
            for c in (*CURRENCIES, "other"):
                yield "product_refunds", {w, ("currency", c)}, float(refunds[c])
            for f in FEATURES:
                yield "product_feature_users", {w, ("feature", f)}, len(feature_users[f])
            yield "product_sessions_per_user", {w}, (
                (sessions, len(active)) if parts else sessions / len(active) if active else 0.0)
            for survey in SURVEYS:
                yield "product_survey_responses", {w, ("survey", survey)}, len(scores[survey])
            nps = scores["nps"]
            yield "product_nps", {w}, (
                100.0 * (sum(s >= 9 for s in nps) - sum(s <= 6 for s in nps)) / len(nps)
                if nps else 0.0)
            csat = scores["csat"]
            yield "product_csat", {w}, sum(csat) / len(csat) if csat else 0.0

            # activation: users whose first signup is in the window
            signed, activated = 0, 0
            for evs in by_user.values():
                first = _first_signup(evs)
                if first is None or not inside(first, window):
                    continue
                signed += 1
                activated += _time_to_activate(evs, first) is not None
            yield "product_activation_ratio", {w}, activated / signed if signed else 0.0

            # funnels
            for funnel, (steps, within) in self.funnels.items():
                reached: list[set[str]] = [set() for _ in steps]
                for identity, evs in by_user.items():
                    for entry in evs:
                        if entry.name == steps[0] and inside(entry.ms, window):
                            for k in range(_reach(evs, entry.ms, steps, within) + 1):
                                reached[k].add(identity)
                for k, step in enumerate(steps):
                    labels = {("funnel", funnel), ("step", step), w}
                    yield "product_funnel_users", labels, len(reached[k])
                    first_users = len(reached[0])
                    yield "product_funnel_conversion_ratio", labels, (
                        (len(reached[k]), first_users) if parts
                        else len(reached[k]) / first_users if first_users else 0.0)

            # subscriptions
            moves: dict[str, int] = defaultdict(int)
            cancels, active_at_start = 0, 0
            for evs in by_user.values():
                subs = [r for r in evs if r.name in SUBSCRIPTION]
                before: tuple[str, str, int] | None = None
                for r in subs:
                    after = _sub_state(r)
                    if not inside(r.ms, window):
                        before = after  # the state at the window's start, at the end
                        continue
                    if before is not None and after is None:
                        cancels += 1
                    for label, micros in _movement(before, after):
                        moves[label] += micros
                    before = after
                start = [r for r in subs if not inside(r.ms, window)]
                if start and _sub_state(start[-1]) is not None:
                    active_at_start += 1
            for kind in MOVEMENTS:
                for c in (*CURRENCIES, "other"):
                    yield ("product_mrr_movement", {("kind", kind), w, ("currency", c)},
                           moves[f"{kind}:{c}"] / 1_000_000)
            yield "product_subscription_churn_ratio", {w}, (
                cancels / active_at_start if active_at_start else 0.0)

        # time to activate: signups of the longest window
        longest = max(WINDOWS, key=lambda k: WINDOWS[k])
        ttas = []
        for evs in by_user.values():
            first = _first_signup(evs)
            if first is not None and inside(first, longest):
                tta = _time_to_activate(evs, first)
                if tta is not None:
                    ttas.append(tta)
        for bound in (*TTA_BOUNDS, None):
            le = "+Inf" if bound is None else repr(float(bound))
            n = sum(1 for t in ttas if bound is None or t <= bound * 1000)
            yield "product_time_to_activate_seconds_bucket", {("le", le)}, n
        yield "product_time_to_activate_seconds_count", set(), len(ttas)
        yield "product_time_to_activate_seconds_sum", set(), sum(ttas) / 1000

        # current MRR: each user's latest subscription event
        mrr: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for evs in by_user.values():
            subs = [r for r in evs if r.name in SUBSCRIPTION]
            if subs and subs[-1].name != "subscription_cancelled":
                last = subs[-1]
                key = (_label(str(last.props["currency"]), CURRENCIES),
                       _label(str(last.props["plan"]), PLANS))
                mrr[key] += Decimal(str(last.props["mrr"]))
        for c in (*CURRENCIES, "other"):
            for plan in (*PLANS, "other"):
                yield "product_mrr", {("currency", c), ("plan", plan)}, float(mrr[(c, plan)])


def _first_signup(evs: list[Record]) -> int | None:
    return min((r.ms for r in evs if r.name == "signup"), default=None)


def _time_to_activate(evs: list[Record], signup: int) -> int | None:
    """ms from the first signup to the first activation at or after it, if within 7 d."""
    after = [r.ms - signup for r in evs if r.name == "activation" and r.ms >= signup]
    if after and min(after) <= ACTIVATION_WITHIN * 1000:
        return min(after)
    return None


def _reach(evs: list[Record], entry: int, steps: tuple[str, ...], within: int) -> int:
    """Furthest step reached in order from ``entry``: one scan in (time, step) order."""
    index = {s: i for i, s in enumerate(steps)}
    window = sorted((r.ms, index[r.name]) for r in evs
                    if r.name in index and entry <= r.ms <= entry + within * 1000)
    k = 0
    for _, step in window:
        if step == k + 1:
            k += 1
    return k


def _sub_state(r: Record) -> tuple[str, str, int] | None:
    if r.name == "subscription_cancelled":
        return None
    micros = int(Decimal(str(r.props["mrr"])) * 1_000_000)
    return str(r.props["currency"]), str(r.props["plan"]), micros


def _movement(before: tuple[str, str, int] | None,
              after: tuple[str, str, int] | None) -> list[tuple[str, int]]:
    if before is None and after is None:
        return []
    if before is None:
        assert after is not None
        return [(f"new:{_label(after[0], CURRENCIES)}", after[2])]
    if after is None:
        return [(f"churn:{_label(before[0], CURRENCIES)}", before[2])]
    if before[0] != after[0]:  # another currency: down to 0 in one, up from 0 in the other
        return [(f"contraction:{_label(before[0], CURRENCIES)}", before[2]),
                (f"expansion:{_label(after[0], CURRENCIES)}", after[2])]
    diff = after[2] - before[2]
    cur = _label(after[0], CURRENCIES)
    if diff > 0:
        return [(f"expansion:{cur}", diff)]
    return [(f"contraction:{cur}", -diff)] if diff < 0 else []


# --------------------------------------------------------------------------- generation

class _Script:
    """Events of one user, as (offset ms from an anchor, name, props, platform)."""

    def __init__(self, rng: random.Random, identity: str) -> None:
        self.rng = rng
        self.identity = identity
        self.platform = rng.choice((*PLATFORMS, "Web", "tv", None))
        self.steps: list[tuple[int, str, dict[str, object]]] = []

    def at(self, offset_s: float, name: str, **props: object) -> None:
        self.steps.append((int(offset_s * 1000), name, props))


MINUTE, HOUR = 60, 3600


def _activation_script(s: _Script) -> None:
    rng = s.rng
    kind = rng.randrange(7)
    if kind == 0:    # activated within minutes
        s.at(0, "signup")
        s.at(rng.uniform(5, 40 * MINUTE), "activation")
    elif kind == 1:  # activation after the 7 d horizon: not activated
        s.at(0, "signup")
        s.at(7 * DAY + rng.uniform(1, 3 * HOUR), "activation")
    elif kind == 2:  # activation before signup only: not activated
        s.at(0, "activation")
        s.at(rng.uniform(1, 2 * DAY), "signup")
    elif kind == 3:  # activation before signup, then one after it
        s.at(0, "activation")
        s.at(rng.uniform(1, HOUR), "signup")
        s.at(rng.uniform(2 * HOUR, 5 * DAY), "activation")
    elif kind == 4:  # two signups: the first one counts; several activations
        s.at(0, "signup")
        s.at(rng.uniform(1, 3 * DAY), "signup")
        s.at(rng.uniform(6 * DAY, 6.9 * DAY), "activation")
        s.at(rng.uniform(7.1 * DAY, 8 * DAY), "activation")
    elif kind == 5:  # signed up, never activated
        s.at(0, "signup")
    else:            # activation without any signup
        s.at(0, "activation")
        s.at(rng.uniform(1, HOUR), "activation")


def _funnel_script(s: _Script) -> None:
    rng = s.rng
    view, cart, start, buy = CHECKOUT
    kind = rng.randrange(7)

    def purchase(t: float) -> None:
        s.at(t, buy, amount=round(rng.uniform(1, 300), 2),
             currency=rng.choice(("USD", "EUR", "CHF")))

    if kind == 0:    # the whole funnel in order, in time
        s.at(0, view)
        s.at(rng.uniform(1, 5 * MINUTE), cart)
        s.at(rng.uniform(6 * MINUTE, 20 * MINUTE), start)
        purchase(rng.uniform(21 * MINUTE, 55 * MINUTE))
    elif kind == 1:  # steps out of order in time: cart before the view
        s.at(rng.uniform(1, 5 * MINUTE), cart)
        s.at(6 * MINUTE, view)
        s.at(rng.uniform(7 * MINUTE, 20 * MINUTE), start)
        purchase(rng.uniform(21 * MINUTE, 50 * MINUTE))
    elif kind == 2:  # the purchase after the conversion window
        s.at(0, view)
        s.at(rng.uniform(1, 10 * MINUTE), cart)
        s.at(rng.uniform(11 * MINUTE, 30 * MINUTE), start)
        purchase(rng.uniform(61 * MINUTE, 3 * HOUR))
    elif kind == 3:  # repeated steps
        s.at(0, view)
        s.at(30, view)
        s.at(rng.uniform(60, 120), cart)
        s.at(rng.uniform(121, 200), view)
        s.at(rng.uniform(201, 400), cart)
        s.at(rng.uniform(401, 900), start)
        if rng.random() < 0.5:
            purchase(rng.uniform(901, 3500))
    elif kind == 4:  # a quick buy (both funnels), then a second entry much later
        s.at(0, view)
        purchase(rng.uniform(5, 9 * MINUTE))
        s.at(rng.uniform(1 * DAY, 20 * DAY), view)
        s.at(rng.uniform(20 * DAY + 1, 20 * DAY + 600), cart)
    elif kind == 5:  # a second view late enough to be its own entry for the purchase
        s.at(0, view)
        s.at(rng.uniform(50 * MINUTE, 55 * MINUTE), view)
        s.at(rng.uniform(56 * MINUTE, 58 * MINUTE), cart)
        s.at(rng.uniform(59 * MINUTE, 62 * MINUTE), start)
        purchase(rng.uniform(63 * MINUTE, 64 * MINUTE))
    else:            # steps at the same millisecond
        s.at(0, view)
        s.at(0, cart)
        s.at(0, start)
        purchase(rng.uniform(0, 2))


def _subscription_script(s: _Script) -> None:
    rng = s.rng
    cur = rng.choice(("USD", "EUR", "GBP", "CHF"))

    def sub(t: float, name: str, plan: str, mrr: float, currency: str = cur) -> None:
        s.at(t, name, plan=plan, mrr=mrr, currency=currency)

    kind = rng.randrange(7)
    if kind == 0:    # upgrade, downgrade
        sub(0, "subscription_started", "starter", 12.0)
        sub(rng.uniform(HOUR, 3 * DAY), "subscription_changed", "pro", 39.0)
        sub(rng.uniform(4 * DAY, 9 * DAY), "subscription_changed", "starter", 12.5)
    elif kind == 1:  # cancel, re-subscribe
        sub(0, "subscription_started", "pro", 39.0)
        sub(rng.uniform(HOUR, 2 * DAY), "subscription_cancelled", "pro", 39.0)
        sub(rng.uniform(3 * DAY, 12 * DAY), "subscription_started", "business", 99.0)
    elif kind == 2:  # currency change, and an unknown plan
        sub(0, "subscription_started", "starter", 12.0, "USD")
        sub(rng.uniform(HOUR, 5 * DAY), "subscription_changed", "legacy", 11.0, "EUR")
    elif kind == 3:  # a cancel with no subscription, and a change without a start
        sub(0, "subscription_cancelled", "pro", 39.0)
        sub(rng.uniform(10, 2 * DAY), "subscription_changed", "enterprise", 499.99)
    elif kind == 4:  # plan change at the same MRR, then cancel
        sub(0, "subscription_started", "free", 0.0)
        sub(rng.uniform(60, DAY), "subscription_changed", "starter", 0.0)
        sub(rng.uniform(DAY + 60, 3 * DAY), "subscription_cancelled", "starter", 0.0)
    elif kind == 5:  # started and still active
        sub(0, "subscription_started", rng.choice(PLANS), round(rng.uniform(1, 200), 2))
    else:            # many changes within a day
        sub(0, "subscription_started", "starter", 12.0)
        for i in range(1, 5):
            sub(i * rng.uniform(600, 3000), "subscription_changed", rng.choice(PLANS),
                round(rng.uniform(5, 80), 2))


def _misc_script(s: _Script) -> None:
    rng = s.rng
    for _ in range(rng.randint(1, 6)):
        t = rng.uniform(0, 5 * DAY)
        pick = rng.random()
        if pick < 0.45:
            s.at(t, "session_start")
        elif pick < 0.65:
            s.at(t, "feature_used", feature=rng.choice((*FEATURES, "beta_thing")))
        elif pick < 0.75:
            s.at(t, "refund", amount=round(rng.uniform(0.5, 99), 2),
                 currency=rng.choice(("USD", "EUR", "JPY", "SEK")))
        elif pick < 0.87:
            s.at(t, "nps_submitted", score=rng.choice((0, 6, 7, 8, 9, 10, rng.randrange(11))))
        else:
            s.at(t, "csat_submitted", score=rng.randint(1, 5))


SCRIPTS = (_activation_script, _funnel_script, _subscription_script, _misc_script)


def _anchor_ages(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.15:
        return rng.uniform(0, 250)
    if pick < 0.35:
        return rng.uniform(0, 3600)
    if pick < 0.6:
        return rng.uniform(0, DAY)
    return rng.uniform(0, 30 * DAY)


def _timestamp(ms: int, rng: random.Random) -> object:
    style = rng.randrange(4)
    if style == 0:
        return round(ms / 1000, 3)
    if style == 1:
        return ms
    tz = UTC if style == 2 else timezone(timedelta(hours=-5))
    text = datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if style == 2 else text


def _payload(r: Record, rng: random.Random) -> bytes:
    anonymous = r.identity.startswith("anon:")
    if rng.random() < 0.3:  # Segment / RudderStack track payload
        obj: dict[str, object] = {"type": "track", "messageId": r.event_id, "event": r.name,
                                  "timestamp": _timestamp(r.ms, rng), "properties": r.props}
        obj["anonymousId" if anonymous else "userId"] = r.identity.removeprefix("anon:")
        if r.platform is not None:
            obj["context"] = {"device": {"type": r.platform}}
    else:
        obj = {"event_id": r.event_id, "name": r.name, "timestamp": _timestamp(r.ms, rng)}
        obj["anonymous_id" if anonymous else "user_id"] = r.identity.removeprefix("anon:")
        if r.platform is not None:
            obj["platform"] = r.platform
        if r.props:
            obj["properties"] = r.props
    return json.dumps(obj).encode()


def generate(now: float, seed: int = 1, users: int = 1600
             ) -> tuple[list[tuple[bytes | None, bytes]], Truth]:
    """Messages (key, value) to publish, shuffled, and the truth they must produce."""
    rng = random.Random(seed)
    truth = Truth()
    messages: list[tuple[bytes | None, bytes]] = []
    now_ms = int(now * 1000)
    n = 0
    for u in range(users):
        identity = f"anon:visitor-{seed}-{u}" if u % 11 == 0 else f"cat-{seed}-{u}"
        while True:
            script = _Script(rng, identity)
            SCRIPTS[u % len(SCRIPTS)](script)
            if rng.random() < 0.5:
                _misc_script(script)
            anchor = now_ms - int(_anchor_ages(rng) * 1000)
            times = [anchor + off for off, _, _ in script.steps]
            if all(safe((now_ms - t) / 1000) for t in times):
                break
        for t, (_, name, props) in zip(times, script.steps, strict=True):
            n += 1
            platform = script.platform if rng.random() < 0.9 else rng.choice(PLATFORMS)
            record = Record(f"cat-{seed}-{n}", identity, t, name, platform, dict(props))
            truth.records.append(record)
            value = _payload(record, rng)
            style = rng.random()
            key = (identity.encode() if style < 0.6 else None if style < 0.8
                   else f"k{rng.randrange(10**6)}".encode())
            messages.append((key, value))
            if rng.random() < 0.03:  # a duplicate, keyed differently half of the time
                messages.append((key if rng.random() < 0.5 else f"dup{n}".encode(), value))
                truth.duplicates += 1
    for j, (name, score) in enumerate((("nps_submitted", 11), ("nps_submitted", -1),
                                       ("csat_submitted", 0), ("csat_submitted", 6),
                                       ("nps_submitted", 7.5), ("csat_submitted", "5"))):
        bad = {"event_id": f"bad-score-{seed}-{j}", "name": name, "user_id": f"cat-{seed}-0",
               "timestamp": now_ms - 1000, "properties": {"score": score}}
        messages.append((None, json.dumps(bad).encode()))
        truth.invalid["schema"] += 1
    rng.shuffle(messages)
    return messages, truth


# --------------------------------------------------------------------------- comparison

DISTINCT = {"product_signups", "product_funnel_users", "product_feature_users"}
DISTINCT_RATIOS = {"product_funnel_conversion_ratio", "product_sessions_per_user"}


def _distinct_range(n: float) -> tuple[float, float]:
    slack = core_compare.distinct_slack(n)
    return max(n - slack, 0.0), n + slack


def mismatches(samples: dict[tuple[str, frozenset], float], truth: Truth,
               now: float) -> list[str]:
    """Every catalog sample the scrape gets wrong: exact, except distinct counts beyond
    1,000 identities (2 %) and ratios with such a count inside (the range those allow)."""
    bad = []
    parts = truth.parts(now)
    for key, want in truth.expected(now).items():
        name, labels = key
        got = samples.get(key)
        where = f"{name}{dict(sorted(labels))}"
        if got is None:
            bad.append(f"{where}: missing (want {want})")
        elif name in DISTINCT:
            lo, hi = _distinct_range(want)
            if not lo <= got <= hi:
                bad.append(f"{where}: got {got}, want {want} (+-2%)")
        elif name in DISTINCT_RATIOS:
            num, den = parts[key]
            if name == "product_sessions_per_user":  # sessions are exact, users a sketch
                num_lo = num_hi = float(num)
            else:
                num_lo, num_hi = _distinct_range(num)
            den_lo, den_hi = _distinct_range(den)
            lo = num_lo / den_hi if den_hi else 0.0
            hi = num_hi / den_lo if den_lo else (0.0 if not den else float("inf"))
            if not (lo - 1e-9 <= got <= hi + 1e-9):
                bad.append(f"{where}: got {got}, want {want} in [{lo:.4f}, {hi:.4f}]")
        elif got != want:
            bad.append(f"{where}: got {got!r}, want {want!r} (exact)")
    return bad


# --------------------------------------------------------------------------- the whole catalog

def core_truth(truth: Truth) -> core_oracle.Truth:
    """The same records as the core oracle's events (active users, events, revenue,
    conversions, ARPU, stickiness), so one log checks every metric of SPEC section 3."""
    out = core_oracle.Truth(duplicates=truth.duplicates)
    out.invalid.update(truth.invalid)
    for r in truth.records:
        money = r.name == "purchase"
        out.events.append({
            "identity": r.identity, "ts": r.ms / 1000, "name": r.name,
            "platform": _platform(r.platform) if r.platform else None,
            "amount": str(r.props["amount"]) if money else None,
            "currency": str(r.props["currency"]).upper() if money else None})
    return out


def whole_mismatches(samples: dict[tuple[str, frozenset], float], truth: Truth,
                     now: float) -> list[str]:
    """Every sample of the core and the catalog the scrape gets wrong."""
    return core_compare.mismatches(samples, core_truth(truth), now) + mismatches(
        samples, truth, now)
