"""The lifecycle metrics of SPEC section 3b (issue 15), computed in one batch from the log.

Written independently of the streaming code (no import from ``aggregators``, ``events``
or ``config``): every value comes straight from the lifecycle contract's definitions
over plain records, with sets, Decimals, Fractions and sorting. The algorithms differ
from an incremental fold on purpose: a user's first-seen time and platform are the
head of their events sorted by (time, platform label), retention scans each cohort
member's sorted days, churn intersects two plain sets, subscriptions replay each user's
history in (time, event id) order.

Times
-----
Event times are whole milliseconds (every timestamp format used keeps them exact).
Every event time keeps away from every window edge (age W - grain - margin .. W +
margin, for each window W, and for 2 W of each churn window: the previous period), so
any implementation meeting SPEC's precision rule agrees with "counted iff age <= W" (and
"in the previous period iff W < age <= 2 W") for the whole test. Every event time also
keeps :data:`MIDNIGHT` away from 00:00 UTC, so its UTC day, which decides retention, is
never in doubt.

Ages stay below 30 days except for the *veterans*: users first seen 30 d + 1 h .. 30 d +
8 h ago (well inside the worker's 31-day ``too_old`` limit). Without them every event
would be in the 30d window, so nobody would be returning in it, no subscription would be
active at its start, product_subscription_churn_ratio{window="30d"} would always be 0
and product_ltv and product_net_revenue_retention_ratio{window="30d"} could never have a
sample. ``generate(..., veterans=False)`` leaves them out.

:func:`generate` returns two shuffled lists of (key, value) messages (the second one,
*late*, is sent once the first is processed: earlier events that move a user's first
seen time, platform, cohort or first conversion, and re-deliveries) and the truth.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

DAY = 86400
DAY_MS = DAY * 1000
HOUR = 3600
WINDOWS = {"5m": 300, "1h": 3600, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
GRAIN = {"5m": 15, "1h": 300, "24h": 7200, "7d": DAY, "30d": DAY}
MARGIN = 240.0
#: Every event time keeps this far (s) from 00:00 UTC.
MIDNIGHT = 600
#: How far ahead of ``now`` an event may be (the worker rejects beyond 5 minutes).
FUTURE = 200.0
#: The ages (s) of the veterans' first events; every other event is younger than 29 d
#: (too_old is 31 days).
VETERAN_AGES = (30 * DAY + HOUR, 30 * DAY + 8 * HOUR)
PLATFORMS = ("web", "ios", "android")
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CAD", "AUD", "BRL", "INR")
PLANS = ("free", "starter", "pro", "business", "enterprise")
CHANNELS = ("google", "meta", "linkedin", "tiktok", "email", "affiliate")
RETENTION_DAYS = (1, 7, 28)
CHURN_WINDOWS = ("24h", "7d")
NRR_WINDOWS = ("7d", "30d")
LTV_CHURN_WINDOW = "30d"
SPEND = "marketing_spend"
CONVERSIONS = ("purchase", "subscription_started")
SUBSCRIPTION = ("subscription_started", "subscription_changed", "subscription_cancelled")
MOVEMENTS = ("new", "expansion", "contraction", "churn")
#: The currency whose subscriptions all start inside the 7d window: NRR has no sample.
FRESH_CURRENCY = "CAD"

LIFECYCLE = frozenset({
    "product_new_users", "product_returning_users", "product_retention_ratio",
    "product_retention_cohort_users", "product_user_churn_ratio", "product_new_customers",
    "product_marketing_spend", "product_cac", "product_ltv",
    "product_net_revenue_retention_ratio",
})
#: The subscription gauges LTV and NRR are built from, checked along with them.
INPUTS = frozenset({"product_mrr", "product_mrr_movement", "product_subscription_churn_ratio"})
RATIOS = frozenset({
    "product_retention_ratio", "product_user_churn_ratio", "product_cac", "product_ltv",
    "product_net_revenue_retention_ratio", "product_subscription_churn_ratio",
})
REL_TOLERANCE = 1e-9

Key = tuple[str, frozenset[tuple[str, str]]]
Message = tuple[bytes | None, bytes]


def platform_label(raw: str | None) -> str:
    """web / ios / android in any case, anything else and none -> ``other``."""
    return raw.lower() if raw is not None and raw.lower() in PLATFORMS else "other"


def currency_label(raw: str) -> str:
    return raw.upper() if raw.upper() in CURRENCIES else "other"


def _label(value: str | None, allowed: Iterable[str]) -> str:
    return value if value is not None and value in allowed else "other"


def safe(ms: int, now: float) -> bool:
    """An event time whose window membership, previous-period membership and UTC day
    are certain for ``now`` and any scrape a few minutes from it."""
    age = now - ms / 1000
    if age < -FUTURE or age > VETERAN_AGES[1]:
        return False
    for window, length in WINDOWS.items():
        g = GRAIN[window]
        if length - g - MARGIN < age < length + MARGIN:
            return False
        if window in CHURN_WINDOWS and 2 * length - g - MARGIN < age < 2 * length + MARGIN:
            return False
    tod = ms % DAY_MS
    return MIDNIGHT * 1000 <= tod <= DAY_MS - MIDNIGHT * 1000


@dataclass
class Record:
    """One valid, deduplicated activity event (anything but marketing spend)."""

    event_id: str
    identity: str
    ms: int
    name: str
    platform: str | None
    props: dict[str, object] = field(default_factory=dict)
    late: bool = False
    #: The name on the wire, when an alias ("Order Completed") stands for ``name``.
    alias: str | None = None


@dataclass
class Spend:
    """One valid, deduplicated ``marketing_spend`` event."""

    event_id: str
    ms: int
    amount: str          # decimal text, as sent
    currency: str        # as sent (any case)
    channel: str | None
    identity: str | None = None  # user_id, or "anon:" + anonymous_id, or none
    late: bool = False


_SubState = tuple[str, str, int] | None  # (currency upper case, plan, mrr micros)


def _micros(value: object) -> int:
    return int(Decimal(str(value)) * 1_000_000)


def _sub_state(r: Record) -> _SubState:
    if r.name == "subscription_cancelled":
        return None
    return (str(r.props["currency"]).upper(), str(r.props["plan"]),
            _micros(r.props["mrr"]))


def _transition(before: _SubState, after: _SubState) -> list[tuple[str, str, int]]:
    """(movement kind, currency label, micros) of one change of subscription."""
    if before is None:
        return [] if after is None else [("new", currency_label(after[0]), after[2])]
    if after is None:
        return [("churn", currency_label(before[0]), before[2])]
    if before[0] != after[0]:
        return [("contraction", currency_label(before[0]), before[2]),
                ("expansion", currency_label(after[0]), after[2])]
    diff = after[2] - before[2]
    if diff > 0:
        return [("expansion", currency_label(after[0]), diff)]
    return [("contraction", currency_label(after[0]), -diff)] if diff < 0 else []


@dataclass
class Truth:
    """The valid, deduplicated events of both lists, and what was sent besides."""

    records: list[Record] = field(default_factory=list)
    spends: list[Spend] = field(default_factory=list)
    invalid: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: Duplicate messages (copies of a valid event) in the first and in the late list.
    duplicates_first: int = 0
    duplicates_late: int = 0
    messages_first: int = 0
    messages_late: int = 0

    # ------------------------------------------------------------------ bookkeeping

    @property
    def duplicates(self) -> int:
        return self.duplicates_first + self.duplicates_late

    @property
    def events_first(self) -> int:
        """Valid distinct events of the first list (processed once it is in)."""
        return (sum(not r.late for r in self.records)
                + sum(not s.late for s in self.spends))

    @property
    def events_total(self) -> int:
        """Valid distinct events of both lists."""
        return len(self.records) + len(self.spends)

    def first_only(self) -> Truth:
        """The truth once only the first list is in (late events left out)."""
        return Truth(records=[r for r in self.records if not r.late],
                     spends=[s for s in self.spends if not s.late],
                     invalid=defaultdict(int, self.invalid),
                     duplicates_first=self.duplicates_first,
                     messages_first=self.messages_first)

    # ------------------------------------------------------------------ metrics

    def expected(self, now: float) -> dict[Key, float]:
        """Every lifecycle sample (and the subscription inputs) that must exist at
        ``now``: (name, labels) -> value."""
        return self._compute(now)[0]

    def absent(self, now: float) -> set[Key]:
        """The (name, labels) of CAC, LTV and NRR series that must have NO sample."""
        return self._compute(now)[1]

    def _compute(self, now: float) -> tuple[dict[Key, float], set[Key]]:
        present: dict[Key, float] = {}
        missing: set[Key] = set()
        now_ms = now * 1000.0

        def put(metric: str, value: float | Fraction | Decimal | int | None,
                **labels: str) -> None:
            key = (metric, frozenset(labels.items()))
            if value is None:
                missing.add(key)
            else:
                present[key] = float(value)

        def inside(ms: int, window: str) -> bool:
            return now_ms - ms <= WINDOWS[window] * 1000

        def previous(ms: int, window: str) -> bool:
            length = WINDOWS[window] * 1000
            return length < now_ms - ms <= 2 * length

        # each user's activity, in (time, platform label) order: the head is first seen
        history: dict[str, list[Record]] = defaultdict(list)
        for r in self.records:
            history[r.identity].append(r)
        for evs in history.values():
            evs.sort(key=lambda r: (r.ms, platform_label(r.platform), r.event_id))
        subs = {u: sorted((r for r in evs if r.name in SUBSCRIPTION),
                          key=lambda r: (r.ms, r.event_id))
                for u, evs in history.items()}

        # ---- per window: new, returning, customers, spend, CAC, movements
        moves: dict[str, dict[tuple[str, str], int]] = {}
        sub_churn: dict[str, Fraction] = {}
        for window in WINDOWS:
            new: Counter[str] = Counter()
            returning = customers = 0
            for evs in history.values():
                head = evs[0]
                first_in = inside(head.ms, window)
                if first_in:
                    new[platform_label(head.platform)] += 1
                    new["all"] += 1
                elif any(inside(r.ms, window) for r in evs):
                    returning += 1
                conversion = next((r.ms for r in evs if r.name in CONVERSIONS), None)
                if conversion is not None and inside(conversion, window):
                    customers += 1
            for p in (*PLATFORMS, "other", "all"):
                put("product_new_users", new[p], window=window, platform=p)
            put("product_returning_users", returning, window=window)
            put("product_new_customers", customers, window=window)

            spent: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
            spend_events = 0
            for s in self.spends:
                if inside(s.ms, window):
                    spend_events += 1
                    spent[(currency_label(s.currency), _label(s.channel, CHANNELS))] += \
                        Decimal(s.amount)
            put("product_events", spend_events, window=window, name=SPEND)
            for c in (*CURRENCIES, "other"):
                for ch in (*CHANNELS, "other"):
                    put("product_marketing_spend", spent[(c, ch)], window=window, currency=c,
                        channel=ch)
                total = sum((v for (cur, _), v in spent.items() if cur == c), Decimal(0))
                put("product_cac", Fraction(total) / customers if customers else None,
                    window=window, currency=c)

            # subscriptions: replay each user's history from the state at the window start
            moved: dict[tuple[str, str], int] = defaultdict(int)
            cancels = active_at_start = 0
            for history_subs in subs.values():
                state: _SubState = None
                for r in history_subs:
                    after = _sub_state(r)
                    if not inside(r.ms, window):
                        state = after
                        continue
                    if state is not None and after is None:
                        cancels += 1
                    for kind, cur, micros in _transition(state, after):
                        moved[(kind, cur)] += micros
                    state = after
                outside = [r for r in history_subs if not inside(r.ms, window)]
                if outside and _sub_state(outside[-1]) is not None:
                    active_at_start += 1
            moves[window] = moved
            sub_churn[window] = (Fraction(cancels, active_at_start) if active_at_start
                                 else Fraction(0))
            for kind in MOVEMENTS:
                for c in (*CURRENCIES, "other"):
                    put("product_mrr_movement", Fraction(moved[(kind, c)], 1_000_000),
                        kind=kind, window=window, currency=c)
            put("product_subscription_churn_ratio", sub_churn[window], window=window)

        # ---- retention: the cohort of day D, retained if active on day D + N
        today = int(now // DAY)
        for n in RETENTION_DAYS:
            cohort_day = today - n - 1
            cohort = [evs for evs in history.values() if evs[0].ms // DAY_MS == cohort_day]
            retained = sum(1 for evs in cohort
                           if (cohort_day + n) in {r.ms // DAY_MS for r in evs})
            put("product_retention_cohort_users", len(cohort), day=str(n))
            put("product_retention_ratio",
                Fraction(retained, len(cohort)) if cohort else 0, day=str(n))

        # ---- user churn: active in the previous period, not in the window
        for window in CHURN_WINDOWS:
            before = {u for u, evs in history.items() if any(previous(r.ms, window)
                                                              for r in evs)}
            current = {u for u, evs in history.items() if any(inside(r.ms, window)
                                                               for r in evs)}
            put("product_user_churn_ratio",
                Fraction(len(before - current), len(before)) if before else 0, window=window)

        # ---- MRR now (each user's latest state), LTV, NRR
        mrr: dict[tuple[str, str], int] = defaultdict(int)
        active: Counter[str] = Counter()
        for history_subs in subs.values():
            if history_subs:
                last = _sub_state(history_subs[-1])
                if last is not None:
                    mrr[(currency_label(last[0]), _label(last[1], PLANS))] += last[2]
                    active[currency_label(last[0])] += 1
        for c in (*CURRENCIES, "other"):
            for plan in (*PLANS, "other"):
                put("product_mrr", Fraction(mrr[(c, plan)], 1_000_000), currency=c, plan=plan)
        churn30 = sub_churn[LTV_CHURN_WINDOW]
        for c in (*CURRENCIES, "other"):
            total_mrr = sum(v for (cur, _), v in mrr.items() if cur == c)
            ltv = (Fraction(total_mrr, 1_000_000 * active[c]) / churn30
                   if active[c] and churn30 else None)
            put("product_ltv", ltv, currency=c)
            for window in NRR_WINDOWS:
                m = moves[window]
                up, down, lost = m[("expansion", c)], m[("contraction", c)], m[("churn", c)]
                start = total_mrr - m[("new", c)] - up + down + lost
                put("product_net_revenue_retention_ratio",
                    1 + Fraction(up - down - lost, start) if start > 0 else None,
                    window=window, currency=c)
        return present, missing


# --------------------------------------------------------------------------- comparison

def _close(got: float, want: float) -> bool:
    return abs(got - want) <= REL_TOLERANCE * max(abs(want), abs(got), 1e-300) or got == want


def mismatches(samples: dict[Key, float], truth: Truth, now: float) -> list[str]:
    """Every lifecycle sample the scrape gets wrong: missing, wrong (ratios within a
    relative 1e-9, counts and sums exactly) or present where there must be none."""
    bad = []
    expected = truth.expected(now)
    absent = truth.absent(now)

    def where(key: Key) -> str:
        return f"{key[0]}{dict(sorted(key[1]))}"

    for key, want in expected.items():
        got = samples.get(key)
        if got is None:
            bad.append(f"{where(key)}: missing (want {want!r})")
        elif key[0] in RATIOS:
            if not _close(got, want):
                bad.append(f"{where(key)}: got {got!r}, want {want!r} (rel 1e-9)")
        elif got != want:
            bad.append(f"{where(key)}: got {got!r}, want {want!r} (exact)")
    for key in sorted(absent, key=where):
        if key in samples:
            bad.append(f"{where(key)}: got {samples[key]!r}, want no sample")
    for key in sorted(samples, key=where):
        if key[0] in LIFECYCLE | INPUTS and key not in expected and key not in absent:
            bad.append(f"{where(key)}: got {samples[key]!r}, want no such series")
    return bad


# --------------------------------------------------------------------------- generation

MINUTE = 60
#: Activity names, weighted; ``button_clicked`` is unknown (``other``) but activity.
ACTIVITY = (("session_start", 5), ("page_view", 2), ("screen_view", 1), ("feature_used", 1),
            ("product_viewed", 1), ("button_clicked", 1))
USER_PLATFORMS = ("web", "ios", "android", "web", "ios", "Web", "IOS", "tv", None)
SUB_CURRENCIES = ("USD", "USD", "USD", "EUR", "EUR", "GBP", "CHF", "SEK")
SPEND_CURRENCIES = ("USD",) * 8 + ("EUR",) * 3 + ("GBP", "GBP", "usd", "eur", "JPY", "CHF",
                                                  "SEK")
SPEND_CHANNELS = (*CHANNELS, *CHANNELS, "podcast", "tv", "newsletter", None, None, None)


def _retention_p(days_after: int) -> float:
    """Chance that a user is active N days after their first day: a realistic decay."""
    return 0.6 * (days_after + 1) ** -0.6


class _Builder:
    def __init__(self, now: float, seed: int, edges: bool) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.now_ms = int(now * 1000)
        self.today = int(now // DAY)
        self.seed = seed
        self.edges = edges
        self.truth = Truth()
        self.n = 0

    # ---- times

    def ok(self, ms: int) -> bool:
        return safe(ms, self.now)

    def at_age(self, lo: float, hi: float, tries: int = 80) -> int | None:
        """A safe time with an age (s) in [lo, hi]."""
        for _ in range(tries):
            ms = self.now_ms - int(self.rng.uniform(lo, hi) * 1000)
            if self.ok(ms):
                return ms
        return None

    def on_day(self, day: int, lo: int | None = None, hi: int | None = None,
               tries: int = 80) -> int | None:
        """A safe time on UTC day ``day``, strictly between ``lo`` and ``hi`` (ms)."""
        start = max(day * DAY_MS, (lo + 1) if lo is not None else 0)
        end = min((day + 1) * DAY_MS - 1, (hi - 1) if hi is not None else 1 << 62,
                  self.now_ms + int(FUTURE * 1000))
        if start > end:
            return None
        for _ in range(tries):
            ms = self.rng.randint(start, end)
            if self.ok(ms):
                return ms
        return None

    def conversion_ok(self, ms: int) -> bool:
        """Edges: no conversion in the last hour (CAC has no sample there)."""
        return not self.edges or self.now_ms - ms > (WINDOWS["1h"] + 2 * MARGIN) * 1000

    # ---- records

    def next_id(self, prefix: str = "lc") -> str:
        self.n += 1
        return f"{prefix}-{self.seed}-{self.n}"

    def add(self, identity: str, ms: int, name: str, platform: str | None,
            late: bool = False, **props: object) -> Record:
        alias = None
        if name == "purchase" and self.rng.random() < 0.3:
            alias = "Order Completed"
        r = Record(self.next_id(), identity, ms, name, platform, dict(props), late, alias)
        self.truth.records.append(r)
        return r

    def activity(self, identity: str, ms: int, platform: str | None,
                 late: bool = False) -> Record:
        names, weights = zip(*ACTIVITY, strict=True)
        name = self.rng.choices(names, weights)[0]
        props: dict[str, object] = {}
        if name == "feature_used":
            props["feature"] = self.rng.choice(("search", "export", "share", "beta_thing"))
        return self.add(identity, ms, name, platform, late, **props)

    def purchase(self, identity: str, ms: int, platform: str | None,
                 late: bool = False) -> Record:
        return self.add(identity, ms, "purchase", platform, late,
                        amount=round(self.rng.uniform(1, 400), 2),
                        currency=self.rng.choice(("USD", "EUR", "GBP", "CHF")))


def _other_platform(label: str, rng: random.Random) -> str | None:
    """A raw platform whose label is not ``label``."""
    return rng.choice([p for p in ("web", "ios", "android", "tv", "Android") if
                       platform_label(p) != label])


def _smaller_platform(label: str) -> str:
    """A raw platform whose label sorts before ``label`` (after it for ``android``)."""
    order = ("android", "ios", "other", "web")
    raw = {"android": "android", "ios": "iOS", "other": "tv", "web": "web"}
    i = order.index(label)
    return raw[order[i - 1]] if i > 0 else raw["web"]


def _user(b: _Builder, identity: str, kind: str, buyer: bool | None = None) -> list[Record]:
    """One user's history in the first list (``kind``: veteran, live, hour, regular)."""
    rng = b.rng
    platform = rng.choice(USER_PLATFORMS)
    first: int | None = None
    if kind == "veteran":
        first = b.at_age(*VETERAN_AGES)
        if first is None:
            return []
    elif kind == "live":
        first = b.at_age(-FUTURE + 20, 40)
    elif kind == "hour":
        first = b.at_age(600, 3000)
    if first is None:
        for _ in range(40):
            k = rng.randrange(30)
            if b.edges and k == 8:
                continue
            first = b.on_day(b.today - k)
            if first is not None:
                break
    if first is None:
        return []
    mine: list[Record] = [b.activity(identity, first, platform)]
    if rng.random() < 0.05:  # a tie at the first millisecond on another platform
        mine.append(b.activity(identity, first, _other_platform(platform_label(platform), rng)))

    def pick_platform() -> str | None:
        return platform if rng.random() < 0.9 else rng.choice(PLATFORMS)

    first_day = first // DAY_MS
    # the first day, then returns that decay with the days since
    for _ in range(rng.randrange(3)):
        t = b.on_day(first_day, lo=first)
        if t is not None:
            mine.append(b.activity(identity, t, pick_platform()))
    engagement = rng.choice((0.4, 1.0, 1.0, 1.6))
    for j in range(1, b.today - first_day + 1):
        if rng.random() < min(0.95, engagement * _retention_p(j)):
            for _ in range(rng.choice((1, 1, 2))):
                t = b.on_day(first_day + j, lo=first)
                if t is not None:
                    mine.append(b.activity(identity, t, pick_platform()))
    times = sorted(r.ms for r in mine)

    # purchases: the first one is the user's first conversion unless a subscription starts
    if buyer is None:
        buyer = rng.random() < (0.6 if kind == "live" else 0.25)
    if buyer:
        for i in range(rng.choice((1, 1, 2, 3))):
            base = first if i == 0 and kind == "live" else rng.choice(times)
            top = min(base + 5 * MINUTE * 1000, b.now_ms + int(FUTURE * 1000) - 5000)
            for _ in range(20):
                t = rng.randint(base, max(base, top))
                if t <= top and b.ok(t) and b.conversion_ok(t):
                    mine.append(b.purchase(identity, t, pick_platform()))
                    break
    return mine


def _subscriptions(b: _Builder, identity: str, mine: list[Record], kind: str) -> None:
    """A subscription script after the user's first event."""
    rng = b.rng
    first = min(r.ms for r in mine)
    platform = mine[0].platform
    cur = rng.choice(SUB_CURRENCIES)
    t = first

    def step(name: str, plan: str, mrr: float, currency: str | None = None,
             lo_s: float = 60, hi_s: float = 4 * DAY, at: int | None = None) -> bool:
        nonlocal t
        if at is None:
            for _ in range(40):
                cand = t + int(rng.uniform(lo_s, hi_s) * 1000)
                if cand <= b.now_ms and b.ok(cand):
                    break
            else:
                return False
        else:
            cand = at
        if name == "subscription_started" and not b.conversion_ok(cand):
            return False
        t = cand
        mine.append(b.add(identity, t, name, platform, plan=plan, mrr=mrr,
                          currency=currency or cur))
        return True

    cancels = not b.edges
    if kind == "veteran":  # active at the start of every window; maybe cancelled since
        step("subscription_started", rng.choice(PLANS[1:]), round(rng.uniform(9, 300), 2),
             at=first)
        if rng.random() < 0.5:
            step("subscription_changed", "business", 99.0, lo_s=DAY, hi_s=20 * DAY)
        if cancels and rng.random() < 0.45:
            step("subscription_cancelled", "pro", 39.0, lo_s=HOUR, hi_s=25 * DAY)
        return
    script = rng.randrange(7)
    if script == 0:    # upgrade, downgrade
        if step("subscription_started", "starter", 12.0):
            step("subscription_changed", "pro", 39.0, hi_s=3 * DAY)
            step("subscription_changed", "starter", 12.5, lo_s=DAY, hi_s=6 * DAY)
    elif script == 1:  # cancel, re-subscribe
        if step("subscription_started", "pro", 39.0):
            if cancels:
                step("subscription_cancelled", "pro", 39.0, hi_s=2 * DAY)
            step("subscription_started", "business", 99.0, lo_s=DAY, hi_s=8 * DAY)
    elif script == 2:  # currency change, and a plan not configured
        if step("subscription_started", "starter", 12.0, "USD"):
            step("subscription_changed", "legacy", 11.0, "EUR", hi_s=5 * DAY)
    elif script == 3:  # a cancel with no subscription, a change without a start
        if cancels:
            step("subscription_cancelled", "pro", 39.0, lo_s=10, hi_s=DAY)
        step("subscription_changed", "enterprise", 499.99, lo_s=10, hi_s=2 * DAY)
    elif script == 4:  # free plan at 0 MRR, then cancel
        if step("subscription_started", "free", 0.0):
            step("subscription_changed", "starter", 0.0, hi_s=DAY)
            if cancels:
                step("subscription_cancelled", "starter", 0.0, lo_s=DAY, hi_s=3 * DAY)
    elif script == 5:  # started and still active
        step("subscription_started", rng.choice(PLANS), round(rng.uniform(1, 200), 2))
    else:              # several changes, other-currency pair
        if step("subscription_started", "starter", 12.0, "CHF"):
            for _ in range(3):
                step("subscription_changed", rng.choice(PLANS), round(rng.uniform(5, 80), 2),
                     rng.choice(("CHF", "SEK")), lo_s=600, hi_s=HOUR)


def _fresh_subscriber(b: _Builder, identity: str, mine: list[Record]) -> None:
    """FRESH_CURRENCY: started inside the 7d window, nothing else (NRR start = 0)."""
    for _ in range(40):
        t = b.at_age(2 * HOUR, 5 * DAY)
        if t is not None and t > min(r.ms for r in mine) and b.conversion_ok(t):
            mine.append(b.add(identity, t, "subscription_started", mine[0].platform,
                              plan=b.rng.choice(("starter", "pro")),
                              mrr=round(b.rng.uniform(10, 90), 2), currency=FRESH_CURRENCY))
            return


def _late(b: _Builder, identity: str, mine: list[Record]) -> None:
    """A late event for this user, delivered after the first list: earlier than all of
    theirs (moving first seen, its platform or cohort), before their first conversion,
    or a subscription change between two others."""
    rng = b.rng
    head = min(mine, key=lambda r: (r.ms, platform_label(r.platform), r.event_id))
    f, label, day = head.ms, platform_label(head.platform), head.ms // DAY_MS
    kind = rng.choice(("same_day", "same_day", "platform", "platform", "tie", "cohort",
                       "cohort", "cohort", "conversion", "subscription"))
    t: int | None = None
    platform = head.platform
    if kind == "same_day":  # earlier on the same day, same platform
        t = b.on_day(day, hi=f)
    elif kind == "platform":  # earlier (that day or the day before), another platform
        t = b.on_day(day - rng.randrange(2), hi=f)
        platform = _other_platform(label, rng)
    elif kind == "tie":  # the same millisecond: the smaller platform label wins
        t = f
        platform = _smaller_platform(label)
    elif kind == "cohort":  # into an older day: into or out of a retention cohort
        k = b.today - day
        target = {1: 2, 7: 8, 28: 29, 2: 3, 8: 9}.get(k, k + rng.randint(1, 4))
        if target <= 29:
            t = b.on_day(b.today - target, hi=f)
        platform = rng.choice((head.platform, "android", None))
    elif kind == "conversion":  # a purchase before the user's first conversion
        conversions = [r.ms for r in mine if r.name in CONVERSIONS]
        hi = min(conversions) if conversions else b.now_ms
        t = b.at_age((b.now_ms - hi) / 1000 + 1, (b.now_ms - f) / 1000 + DAY)
        if t is not None and not (t < hi and b.conversion_ok(t)):
            t = None
    else:  # a subscription change between two others
        subs = sorted((r for r in mine if r.name in SUBSCRIPTION), key=lambda r: r.ms)
        pairs = [(x, y) for x, y in pairwise(subs)
                 if x.name != "subscription_cancelled" and y.ms - x.ms > 4000
                 and x.props["currency"] != FRESH_CURRENCY]
        if pairs:
            x, y = rng.choice(pairs)
            t = b.on_day(x.ms // DAY_MS, lo=x.ms, hi=min(y.ms, (x.ms // DAY_MS + 1) * DAY_MS))
            if t is not None:
                b.add(identity, t, "subscription_changed", head.platform, late=True,
                      plan="pro", mrr=round(rng.uniform(20, 60), 2),
                      currency=x.props["currency"])
        return
    if t is None or (b.edges and t < f and t // DAY_MS == b.today - 8):
        return  # edges: nobody's first seen moves onto day today - 8
    if kind == "conversion":
        b.purchase(identity, t, platform, late=True)
    else:
        b.activity(identity, t, platform, late=True)


def _spends(b: _Builder, identities: list[str], count: int) -> None:
    rng = b.rng
    for i in range(count):
        pick = rng.random()
        t = (b.at_age(-FUTURE + 20, 40) if pick < 0.1 else b.at_age(600, 3000) if pick < 0.25
             else b.at_age(0, DAY) if pick < 0.45 else b.at_age(0, 29 * DAY))
        if t is None:
            continue
        currency = rng.choice(SPEND_CURRENCIES)
        amount = (str(rng.randrange(100, 90000)) if currency == "JPY"
                  else f"{rng.uniform(1, 800):.2f}")
        who = rng.random()
        identity = (None if who < 0.8 else f"anon:ads-bot-{b.seed}-{i % 3}" if who < 0.9
                    else rng.choice(identities))
        b.truth.spends.append(Spend(b.next_id("spend"), t, amount, currency,
                                    rng.choice(SPEND_CHANNELS), identity,
                                    late=rng.random() < 0.06))


# --------------------------------------------------------------------------- wire format

def _timestamp(ms: int, rng: random.Random) -> object:
    style = rng.randrange(4)
    if style == 0:
        return round(ms / 1000, 3)
    if style == 1:
        return ms
    tz = UTC if style == 2 else timezone(timedelta(hours=-5))
    text = datetime.fromtimestamp(ms / 1000, tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if style == 2 else text


def _segment_context(platform: str | None, rng: random.Random) -> dict[str, object] | None:
    """A Segment context from which the decoder derives ``platform``'s label."""
    if platform is None:
        return None if rng.random() < 0.5 else {"library": {"name": "analytics-python"}}
    low = platform.lower()
    pick = rng.random()
    if low in ("ios", "android") and pick < 0.4:
        return {"os": {"name": "iOS" if low == "ios" else "Android"}}
    if low == "web" and pick < 0.4:
        return {"library": {"name": "analytics.js", "version": "4.1.0"}}
    return {"device": {"type": platform}}


def _identity_fields(identity: str | None, segment: bool) -> dict[str, object]:
    if identity is None:
        return {}
    if identity.startswith("anon:"):
        return {"anonymousId" if segment else "anonymous_id": identity.removeprefix("anon:")}
    return {"userId" if segment else "user_id": identity}


def _record_payload(r: Record, rng: random.Random) -> bytes:
    obj: dict[str, object]
    if rng.random() < 0.3:  # Segment / RudderStack
        if r.name in ("page_view", "screen_view") and not r.props:
            obj = {"type": "page" if r.name == "page_view" else "screen",
                   "messageId": r.event_id}
        else:
            obj = {"type": "track", "messageId": r.event_id, "event": r.alias or r.name,
                   "properties": r.props}
        obj["timestamp"] = _timestamp(r.ms, rng)
        obj |= _identity_fields(r.identity, True)
        context = _segment_context(r.platform, rng)
        if context is not None and rng.random() < 0.85:
            obj["context"] = context
        elif r.platform is not None:
            obj["platform"] = r.platform
    else:
        obj = {"event_id": r.event_id, "name": r.name, "timestamp": _timestamp(r.ms, rng)}
        obj |= _identity_fields(r.identity, False)
        if r.platform is not None:
            obj["platform"] = r.platform
        if r.props:
            obj["properties"] = r.props
    return json.dumps(obj).encode()


def _spend_payload(s: Spend, rng: random.Random) -> bytes:
    props: dict[str, object] = {"amount": json.loads(s.amount), "currency": s.currency}
    if s.channel is not None:
        props["channel"] = s.channel
    segment = rng.random() < 0.3
    obj: dict[str, object]
    if segment:
        obj = {"type": "track", "messageId": s.event_id, "event": SPEND,
               "timestamp": _timestamp(s.ms, rng), "properties": props,
               "context": {"library": {"name": "ads-sync"}}}
    else:
        obj = {"event_id": s.event_id, "name": SPEND, "timestamp": _timestamp(s.ms, rng),
               "properties": props}
    obj |= _identity_fields(s.identity, segment)
    return json.dumps(obj).encode()


def _invalid(b: _Builder) -> list[bytes]:
    """Schema rejections: spend needs an amount and a currency; other events an identity."""
    t = b.at_age(600, 3000) or b.now_ms
    bad = [
        {"event_id": f"bad-lc-{b.seed}-0", "name": "session_start", "timestamp": t},
        {"event_id": f"bad-lc-{b.seed}-1", "name": SPEND, "timestamp": t,
         "properties": {"amount": "12.50", "currency": "USD"}},
        {"event_id": f"bad-lc-{b.seed}-2", "name": SPEND, "timestamp": t,
         "properties": {"amount": 12.5}},
        {"event_id": f"bad-lc-{b.seed}-3", "name": SPEND, "timestamp": t,
         "properties": {"amount": -3, "currency": "USD", "channel": "google"}},
        {"event_id": f"bad-lc-{b.seed}-4", "name": SPEND, "timestamp": t,
         "properties": {"currency": "EUR", "channel": "meta"}},
    ]
    b.truth.invalid["schema"] += len(bad)
    return [json.dumps(x).encode() for x in bad]


# --------------------------------------------------------------------------- generate

def generate(now: float, seed: int = 1, users: int = 2000, edges: bool = False,
             veterans: bool = True) -> tuple[list[Message], list[Message], Truth]:
    """(first list, late list, truth): messages (key, value) shuffled within each list.

    About 2,000 users make ~12,500 messages first and ~300 late. Send the late list
    once the first one is processed (``truth.first_only()`` is the state in between).
    ``edges=True``: no user first seen on day today - 8 (the day-7 cohort is empty), no
    conversion in the last hour (no CAC sample for 5m and 1h, though there is spend), no
    cancellation (no subscription churn, so no LTV sample). In both: :data:`FRESH_CURRENCY`
    has MRR but a start MRR of 0 (no NRR sample), and several currencies have no
    subscription at all. ``veterans=False``: every age below 29 days (see above).
    """
    b = _Builder(now, seed, edges)
    rng = b.rng
    identities: list[str] = []
    fresh = 0
    for u in range(users):
        identity = f"anon:lcv-{seed}-{u}" if u % 9 == 4 else f"lc-{seed}-{u}"
        pick = rng.random()
        kind = ("veteran" if veterans and pick < 0.04 else "live" if pick < 0.07
                else "hour" if pick < 0.11 else "regular")
        buyer = None
        if u < 3:
            kind = "veteran" if veterans else "regular"  # a veteran subscriber at least
        elif u < 6:
            kind, buyer = "live", not edges  # new customers in the 5m window
        mine = _user(b, identity, kind, buyer)
        if not mine:
            continue
        identities.append(identity)
        if kind == "veteran" and (u < 3 or rng.random() < 0.5):
            _subscriptions(b, identity, mine, kind)
            if u == 0 and not edges and not any(r.name == "subscription_cancelled"
                                                for r in mine):
                _subscriptions_cancel(b, identity, mine)
        elif fresh < 4 and kind == "regular" and rng.random() < 0.02:
            _fresh_subscriber(b, identity, mine)
            fresh += 1
        elif kind != "live" and rng.random() < 0.12:
            _subscriptions(b, identity, mine, kind)
        if kind != "veteran" and rng.random() < 0.09:
            _late(b, identity, mine)
    _spends(b, identities, max(40, users // 5))

    first: list[Message] = []
    late: list[Message] = []
    truth = b.truth
    items: list[Record | Spend] = [*truth.records, *truth.spends]
    for item in items:
        is_spend = isinstance(item, Spend)
        value = (_spend_payload(item, rng) if isinstance(item, Spend)
                 else _record_payload(item, rng))
        ident = item.identity
        style = rng.random()
        key = (ident.encode() if ident is not None and style < 0.6
               else None if style < 0.8 or is_spend else f"k{rng.randrange(10**6)}".encode())
        target = late if item.late else first
        target.append((key, value))
        if rng.random() < 0.03:  # a duplicate, keyed differently half of the time
            target.append((key if rng.random() < 0.5 else f"dup-{item.event_id}".encode(),
                           value))
            if item.late:
                truth.duplicates_late += 1
            else:
                truth.duplicates_first += 1
        elif not item.late and rng.random() < 0.01:  # re-delivered with the late ones
            late.append((None if rng.random() < 0.5 else key, value))
            truth.duplicates_late += 1
    first.extend((None, v) for v in _invalid(b))
    rng.shuffle(first)
    rng.shuffle(late)
    truth.messages_first, truth.messages_late = len(first), len(late)
    return first, late, truth


def _subscriptions_cancel(b: _Builder, identity: str, mine: list[Record]) -> None:
    """A cancel of a veteran's subscription inside the 30d window (LTV has a sample)."""
    last = max((r for r in mine if r.name in SUBSCRIPTION), key=lambda r: r.ms)
    for _ in range(80):
        t = b.at_age(2 * DAY, 20 * DAY)
        if t is not None and t > last.ms:
            b.add(identity, t, "subscription_cancelled", mine[0].platform, plan="pro",
                  mrr=39.0, currency=str(last.props["currency"]))
            return
