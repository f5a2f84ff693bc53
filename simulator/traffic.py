"""Realistic, reproducible product traffic, free of Kafka and asyncio.

:class:`TrafficGenerator` is pure: given a clock value and a count it returns ``(key,
value_bytes)`` messages. Everything random comes from one ``random.Random(seed)``, so
the same seed and the same clock values give the same bytes. It models a population of
users (a few thousand, growing by signups) on web / ios / android plus a few on an
unconfigured ``tv`` platform: sessions, feature use, signups followed (often) by an
activation within minutes, the checkout funnel with drop-off at each step, purchases and
refunds in several currencies (including unconfigured CHF), subscriptions, NPS and CSAT
surveys, anonymous visitors, canonical and Segment *track* payloads, mixed timestamp
formats, a few late (out-of-order) events, ~0.5 % duplicates and ~0.5 % bad events
covering every dead-letter reason, and every minute the marketing spend of each ad
channel (no user identity). :func:`daily_factor` is the smooth time-of-day curve senders
pace it with (mean 1, never below 0.55).

:meth:`TrafficGenerator.backfill` first gives that population a history: up to 30 days of
valid events in time order, ending at the clock value given, with daily signup cohorts (a
weekly pattern), retention that decays day after day, users who churn, purchases,
subscriptions started, upgraded, downgraded and cancelled, and each channel's daily
spend. Live traffic then goes on from that state (churned users rarely come back).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

import orjson

from leadline.config.definitions import Definitions

Message = tuple[bytes, bytes]

# (value, weight) tables. "tv" and "CHF" are deliberately not in the default config,
# so the `other` label values get traffic too.
PLATFORMS = (("web", 48), ("ios", 26), ("android", 23), ("tv", 3))
COUNTRIES = (  # country, currency, weight
    ("US", "USD", 34), ("GB", "GBP", 13), ("DE", "EUR", 11), ("FR", "EUR", 8),
    ("ES", "EUR", 4), ("NL", "EUR", 4), ("IT", "EUR", 3), ("CA", "USD", 5),
    ("IN", "USD", 5), ("BR", "USD", 4), ("AU", "USD", 3), ("JP", "JPY", 3),
    ("CH", "CHF", 3),
)
# One US dollar in each currency (rounded), to price plans and baskets.
FX = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 150.0, "CHF": 0.88}
ZERO_DECIMAL = {"JPY"}
PLANS = (("free", 0.0, 40), ("starter", 12.0, 30), ("pro", 39.0, 22), ("business", 99.0, 8))
PLAN_PRICE = {name: price for name, price, _ in PLANS}
APP_VERSIONS = {
    "ios": (("5.12.0", 70), ("5.11.2", 25), ("5.9.0", 5)),
    "android": (("5.12.1", 60), ("5.12.0", 30), ("5.8.3", 10)),
    "tv": (("1.3.0", 100),),
}
LIBRARIES = {"web": "analytics.js", "ios": "analytics-ios", "android": "analytics-android",
             "tv": "analytics-tvos"}
DEFAULT_FEATURES = ("search", "export", "share", "dashboard", "invite", "integrations")
FEATURE_WEIGHTS = (30, 10, 12, 28, 6, 5)
TZ_OFFSETS = (0, 0, 60, 120, -300, -240, 330, 540, -480)  # minutes east of UTC

# Shares of the spontaneous (not follow-up) slots.
BAD_SHARE = 0.005
DUPLICATE_SHARE = 0.005
LATE_SHARE = 0.015
SEGMENT_SHARE = 0.3
# Checkout funnel: chance to go on to the next step, and the pause before it (s).
FUNNEL_CONTINUE = (0.42, 0.58, 0.68)
FUNNEL_PAUSE = (2.0, 20.0)
ACTIVATION_SHARE = 0.62
#: Share of session starts sent as a Segment page / screen call instead.
VIEW_SHARE = 0.3
#: Share of signups followed by an identify call from the browser or app library.
IDENTIFY_SHARE = 0.5
ACTIVATION_DELAY = (20.0, 420.0)
MAX_BYTES = 64 * 1024

# Marketing spend: channel and share of the budget; part of google's and meta's is billed
# in EUR. Spend follows new customers at about SPEND_PER_CUSTOMER US dollars each.
SPEND_CHANNELS = (("google", 34), ("meta", 26), ("linkedin", 12), ("tiktok", 10),
                  ("email", 4), ("affiliate", 14))
SPEND_EUR_SHARE = {"google": 0.3, "meta": 0.25}
SPEND_PER_CUSTOMER = 55.0
#: Live traffic reports each channel's spend this often (clock seconds): often enough that
#: CAC over 5 minutes follows the new customers.
SPEND_EVERY = 60.0

# Backfill (history before the live traffic).
BACKFILL_DAYS = 30
#: The oldest backfilled event is this much younger than ``days`` (the worker drops
#: events older than 31 days; the demo takes a while to send them).
BACKFILL_MARGIN = 900.0
#: New users and activity by UTC weekday (Monday first): fewer at the weekend.
WEEKDAY_SIGNUPS = (1.0, 1.08, 1.1, 1.05, 0.95, 0.66, 0.6)
WEEKDAY_ACTIVITY = (1.0, 1.02, 1.02, 1.0, 0.95, 0.8, 0.78)
#: Growth: each day brings this much more new users than the one before.
DAILY_GROWTH = 0.012
#: Share of the population that is the product's established base: users from before the
#: history begins, first seen on its first (partial) day, which the 30d window no longer
#: covers, so they read as returning users. The others sign up during the history.
BASE_SHARE = 0.35
#: Churn hazard on day a >= 1 after first seen: h * a ** -decay, for new users, for
#: anonymous visitors (most of whom never come back) and for the base (low, steady).
CHURN_HAZARD = (0.37, 0.9)
VISITOR_HAZARD = (0.8, 0.6)
BASE_HAZARD = (0.01, 0.0)
#: Chance of being active on a day while not churned: low + spread * uniform(0, 1).
ACTIVITY = (0.35, 0.6)
BASE_ACTIVITY = (0.2, 0.6)
#: Anonymous visitors each day, per new user of the day.
VISITORS_PER_SIGNUP = 0.4
#: Chance per session of a checkout, a survey; per purchase of a same-day refund.
SESSION_FUNNEL = 0.12
SESSION_NPS, SESSION_CSAT = 0.01, 0.015
REFUND_SHARE = 0.04
#: Subscriptions per active day: start (day 0, later), change, cancel; cancel on the last
#: day before churning.
SUB_START = (0.05, 0.015)
#: Share of the base whose subscription the history starts with (its first day).
BASE_SUBSCRIBED = 0.3
SUB_CHANGE, SUB_CANCEL, SUB_CANCEL_ON_CHURN = 0.06, 0.01, 0.45
PAID_PLANS = (("starter", 55), ("pro", 35), ("business", 10))
PLAN_ORDER = ("free", "starter", "pro", "business")
#: Live weight of a churned user, relative to their weight when engaged.
CHURNED_WEIGHT = 0.03

BAD_KINDS = ("not_json", "not_object", "schema_missing_id", "schema_amount_string",
             "schema_nps_11", "too_large", "in_future", "too_old")


def daily_factor(now: float) -> float:
    """Traffic multiplier by UTC time of day: smooth, mean 1, 0.55 at 03:00, 1.45 at 15:00."""
    hour = (now % 86400.0) / 3600.0
    return 1.0 + 0.45 * math.cos(2.0 * math.pi * (hour - 15.0) / 24.0)


def daily_mass(a: float, b: float) -> float:
    """The integral of :func:`daily_factor` over ``[a, b]`` (seconds)."""
    if b <= a:
        return 0.0
    k = 2.0 * math.pi / 86400.0
    phase = 2.0 * math.pi * 15.0 / 24.0
    return (b - a) + 0.45 / k * (math.sin(k * b - phase) - math.sin(k * a - phase))


def _weekday(day: int) -> int:
    """Monday = 0 for a UTC day number (day 0, 1970-01-01, was a Thursday)."""
    return (day + 3) % 7


def _pick(rng: random.Random, table: tuple[tuple[Any, ...], ...]) -> tuple[Any, ...]:
    total = sum(row[-1] for row in table)
    x = rng.random() * total
    for row in table:
        x -= row[-1]
        if x < 0:
            return row
    return table[-1]


@dataclass(slots=True)
class User:
    user_id: str
    anonymous_id: str
    platform: str
    country: str
    currency: str
    app_version: str | None
    plan: str | None = None
    mrr: float = 0.0
    in_funnel: bool = False
    customer: bool = False  # has converted (purchase or subscription) at least once


@dataclass(slots=True)
class Visitor:
    """Someone not signed up (yet): only an anonymous id."""

    anonymous_id: str
    platform: str
    country: str
    app_version: str | None
    in_funnel: bool = False


@dataclass(slots=True)
class _Life:
    """One user's (or visitor's) backfilled lifecycle: first day, daily activity chance,
    last day still engaged (churned after it)."""

    who: User | Visitor
    first_day: int
    first_ts: float
    activity: float
    last_day: int
    weight: float = 1.0
    base: bool = False


class TrafficGenerator:
    """Deterministic product traffic: ``batch(now, n)`` -> ``[(key, value), ...]``.

    The only inputs are the seed and the clock values given to :meth:`batch` (and
    :meth:`backfill`, called before it if at all); call it with increasing ``now``.
    Follow-up events (funnel steps, activations) are
    scheduled at a later event time and emitted by the first batch whose ``now``
    reaches it, with exactly that timestamp, so a user's steps are in order both in
    event time and in sending order.
    """

    def __init__(self, seed: int, definitions: Definitions | None = None,
                 users: int = 3000) -> None:
        self.rng = random.Random(seed)
        features = tuple(definitions.features) if definitions and definitions.features else ()
        self.features = features or DEFAULT_FEATURES
        self.feature_weights = tuple(
            FEATURE_WEIGHTS[DEFAULT_FEATURES.index(f)] if f in DEFAULT_FEATURES else 5
            for f in self.features)
        self.funnel: tuple[str, ...] = (
            "product_viewed", "cart_added", "checkout_started", "purchase")
        if definitions and "checkout" in definitions.funnels:
            steps = tuple(definitions.funnels["checkout"].steps)
            if len(steps) == len(self.funnel):
                self.funnel = steps
        self.spend_event: str = getattr(definitions and definitions.events, "marketing_spend",
                                        "marketing_spend")
        # The configured spend channels this generator knows (all of them if none is).
        configured = getattr(getattr(definitions, "marketing", None), "channels", None) or ()
        self.channels = tuple((c, w) for c, w in SPEND_CHANNELS if c in configured) \
            or SPEND_CHANNELS
        self.users: list[User] = []
        self._weights: list[float] = []
        self._cum_weights: list[float] = []
        self.visitors: list[Visitor] = []
        self._pending: list[tuple[float, int, Callable[[float], Message | None]]] = []
        self._seq = 0
        self._recent: deque[Message] = deque(maxlen=2000)
        self._purchases: deque[tuple[User, float, str, str]] = deque(maxlen=500)
        self.stats: Counter[str] = Counter()
        self._next_spend: float | None = None
        self._new_customers = 0
        for _ in range(users):
            user = self._new_user(self._new_visitor())
            self._add_user(user)
            if self.rng.random() < 0.35:
                plan = _pick(self.rng, PLANS)[0]
                user.plan, user.mrr = plan, self._price(PLAN_PRICE[plan], user.currency)
        for _ in range(300):
            self.visitors.append(self._new_visitor())
        self._actions: tuple[tuple[Callable[[float], Message | None], float], ...] = (
            (self._feature_used, 34.0),
            (self._session_start, 20.0),
            (self._funnel_start, 11.0),
            (self._anonymous, 8.0),
            (self._signup, 0.6),
            (self._subscription, 1.5),
            (self._nps, 1.0),
            (self._csat, 1.5),
            (self._refund, 0.4),
        )
        self._action_cum: list[float] = []
        acc = 0.0
        for _, w in self._actions:
            acc += w
            self._action_cum.append(acc)

    # -- public --------------------------------------------------------------------

    def batch(self, now: float, n: int) -> list[Message]:
        """Every follow-up due by ``now``, each channel's spend once a minute (of clock
        time), then new events up to ``n`` messages in all."""
        out: list[Message] = []
        while self._pending and self._pending[0][0] <= now:
            due, _, build = heapq.heappop(self._pending)
            msg = build(due)
            if msg is not None:
                out.append(self._remember(msg))
        if self._next_spend is None or now >= self._next_spend:
            self._next_spend = now + SPEND_EVERY
            customers, self._new_customers = self._new_customers, 0
            out.extend(m for _, m in self._spend(now - self.rng.uniform(0.0, 3.0),
                                                  max(customers, 1)))
        while len(out) < n:
            msg = self._spontaneous(now)
            if msg is not None:
                out.append(msg)
        self.stats["sent"] += len(out)
        return out

    @property
    def population(self) -> int:
        return len(self.users)

    def backfill(self, now: float, days: int = BACKFILL_DAYS) -> Iterator[Message]:
        """The population's history over the ``days`` days before ``now``, in time order.

        About a third of the population is the established base, first seen on the
        first (partial) day, before the 30d window, with a third of them subscribed. The
        other users (and anonymous visitors, about 0.4 per new user) are first seen on
        one of the days (more on weekdays, slowly growing), with a signup, often an
        activation. From then on each is active on a day with a chance of their own
        until they churn (for new users a hazard that decays with age, so Day-1, Day-7
        and Day-28 retention fall as a real product's do): sessions at the times of day
        :func:`daily_factor` favours, feature use, checkouts with drop-off, purchases and
        some refunds, surveys, subscriptions started, changed and cancelled (often when
        the user churns). Each channel's spend is reported once a day, with no identity.

        Every event is valid, none is a duplicate, and all are younger than ``days`` days
        (by :data:`BACKFILL_MARGIN`) and not after ``now``. Users keep the plans they end
        with, and live traffic favours users still engaged. Call it once, before
        :meth:`batch`; it consumes the generator's randomness like any call.
        """
        if days <= 0:
            return
        start = now - days * 86400.0 + BACKFILL_MARGIN
        first, last = int(start // 86400), int(now // 86400)
        day_range = range(first, last + 1)

        def span(day: int) -> tuple[float, float]:
            return max(start, day * 86400.0), min(now, (day + 1) * 86400.0)

        # Who is first seen on which day: weekday pattern, growth, the part of the day
        # covered (the first and the last day are partial).
        weights = [WEEKDAY_SIGNUPS[_weekday(d)] * (1.0 + DAILY_GROWTH) ** (d - first)
                   * daily_mass(*span(d)) / 86400.0 for d in day_range]
        cum = list(itertools.accumulate(weights))
        lives: list[_Life] = []
        per_day: Counter[int] = Counter()
        for user, weight in zip(self.users, self._weights, strict=True):
            user.plan, user.mrr, user.customer = None, 0.0, False
            if self.rng.random() < BASE_SHARE:
                life = self._life(user, first, span(first), last, BASE_HAZARD, BASE_ACTIVITY)
                life.base = True
            else:
                day = first + bisect.bisect_right(cum, self.rng.random() * cum[-1])
                day = min(day, last)
                per_day[day] += 1
                life = self._life(user, day, span(day), last, CHURN_HAZARD, ACTIVITY)
            life.weight = weight
            lives.append(life)
        for day in day_range:
            for _ in range(round(per_day[day] * VISITORS_PER_SIGNUP)):
                lives.append(self._life(self._new_visitor(), day, span(day), last,
                                        VISITOR_HAZARD, ACTIVITY))
        lives.sort(key=lambda life: life.first_ts)

        heap: list[tuple[float, int, Message]] = []
        sent = 0
        for day in day_range:
            lo, hi = span(day)
            factor = WEEKDAY_ACTIVITY[_weekday(day)]
            self._new_customers = 0
            for life in lives:
                if life.first_day > day:
                    break
                if life.last_day < day:
                    continue
                if life.base and life.first_day == day:
                    # Their history starts here; their conversions are older: not new.
                    customers = self._new_customers
                    events = self._active_day(life, life.first_ts, hi, day)
                    self._new_customers = customers
                elif life.first_day == day:
                    events = self._first_day(life, hi)
                elif self.rng.random() < life.activity * factor:
                    t = self._day_time(day * 86400.0, (day + 1) * 86400.0)
                    events = self._active_day(life, t, hi, day) if t < hi else []
                else:
                    continue
                for ts, msg in events:
                    if ts < now:
                        self._seq += 1
                        heapq.heappush(heap, (ts, self._seq, msg))
            # The day's spend, once per channel, at some time of the (covered) day.
            if hi - lo > 3600.0:
                when = self._day_time(lo + 1800.0, hi)
                for ts, msg in self._spend(when, max(self._new_customers, 1)):
                    self._seq += 1
                    heapq.heappush(heap, (ts, self._seq, msg))
            while heap and (heap[0][0] < hi or day == last):
                sent += 1
                yield heapq.heappop(heap)[2]
        self.stats["backfill"] += sent
        # Live traffic: engaged users as before, churned ones rarely.
        acc = 0.0
        self._cum_weights = []
        by_user = {id(life.who): life for life in lives}
        for user, weight in zip(self.users, self._weights, strict=True):
            life = by_user[id(user)]
            acc += weight * (life.activity if life.last_day >= last else CHURNED_WEIGHT)
            self._cum_weights.append(acc)
        self._new_customers = 0

    # -- backfill: one user's days -------------------------------------------------------

    def _life(self, who: User | Visitor, day: int, span: tuple[float, float], last: int,
              hazard: tuple[float, float], activity: tuple[float, float]) -> _Life:
        """When ``who`` is first seen on ``day``, how active they are, when they churn."""
        engaged = day
        while engaged < last:
            age = engaged - day + 1
            if self.rng.random() < hazard[0] * age ** -hazard[1]:
                break
            engaged += 1
        chance = activity[0] + activity[1] * self.rng.random()
        return _Life(who, day, self._day_time(*span), chance, engaged)

    def _day_time(self, a: float, b: float) -> float:
        """A time in ``[a, b)`` drawn from the time-of-day curve."""
        while True:
            t = self.rng.uniform(a, b)
            if self.rng.random() * 1.45 < daily_factor(t):
                return min(t, math.nextafter(b, a))

    def _first_day(self, life: _Life, hi: float) -> list[tuple[float, Message]]:
        """A visitor's first session, or a signup (identify, activation) and a session."""
        t = life.first_ts
        who = life.who
        if isinstance(who, Visitor):
            return self._session(life, t, hi)
        props = {"method": self.rng.choice(("email", "google", "apple", "github")),
                 "plan": "free"}
        out = [(t, self._valid("signup", t, user=who, properties=props, segment=False))]
        if self.rng.random() < IDENTIFY_SHARE:
            ts = t + self.rng.uniform(0.1, 2.0)
            out.append((ts, self._identify(who, ts)))
        if self.rng.random() < ACTIVATION_SHARE:
            ts = t + self.rng.uniform(*ACTIVATION_DELAY)
            out.append((ts, self._activation(who, ts)))
        out += self._active_day(life, t + self.rng.uniform(5.0, 60.0), hi, life.first_day)
        return out

    def _active_day(self, life: _Life, t: float, hi: float,
                    day: int) -> list[tuple[float, Message]]:
        """Sessions from ``t`` on, until ``hi``; the subscription moves of the day."""
        out = self._session(life, t, hi)
        extra = (self.rng.random() < 0.4) + (self.rng.random() < 0.15) + (life.weight > 8)
        for _ in range(extra):
            t += self.rng.expovariate(1 / 7200.0)
            if t >= hi:
                break
            out += self._session(life, t, hi)
        user = life.who
        ts = t + self.rng.uniform(30.0, 600.0)
        if isinstance(user, User) and ts < hi:  # (a move is sent if it is made)
            start = SUB_START[1] if day != life.first_day else \
                BASE_SUBSCRIBED if life.base else SUB_START[0]
            move = self._subscription_move(user, start, day == life.last_day, ts)
            if move is not None:
                out.append((ts, move))
        return out

    def _session(self, life: _Life, t: float, hi: float) -> list[tuple[float, Message]]:
        """One session from ``t``: a start (or a page / screen view), feature use, now
        and then a checkout or a survey."""
        who = life.who
        user = who if isinstance(who, User) else None
        visitor = who if isinstance(who, Visitor) else None
        out: list[tuple[float, Message]] = []
        if user is not None and self.rng.random() < VIEW_SHARE:
            out.append((t, self._view_at(user, t)))
        else:
            props = {"referrer": self.rng.choice(("direct", "google", "newsletter", "push",
                                                  "ads"))}
            out.append((t, self._valid("session_start", t, user=user, visitor=visitor,
                                       properties=props)))
        for _ in range(min(int(self.rng.expovariate(1 / 2.5)), 8)):
            t += self.rng.uniform(5.0, 120.0)
            feature = self._feature() if user is not None else self.features[0]
            out.append((t, self._valid("feature_used", t, user=user, visitor=visitor,
                                       properties={"feature": feature})))
        if self.rng.random() < SESSION_FUNNEL:
            out += self._checkout(who, t + self.rng.uniform(5.0, 60.0), hi)
        if user is not None:
            for chance, name, score in ((SESSION_NPS, "nps_submitted", self._nps_score),
                                        (SESSION_CSAT, "csat_submitted", self._csat_score)):
                if self.rng.random() < chance:
                    t += self.rng.uniform(5.0, 60.0)
                    out.append((t, self._valid(name, t, user=user,
                                               properties={"score": score()})))
        return out

    def _checkout(self, who: User | Visitor, t: float,
                  hi: float) -> list[tuple[float, Message]]:
        """The checkout funnel from its first step, with the live traffic's drop-off;
        visitors stop at the cart. A purchase is sometimes refunded hours later."""
        user = who if isinstance(who, User) else None
        visitor = who if isinstance(who, Visitor) else None
        limit = len(self.funnel) - 1 if user is not None else 1
        out: list[tuple[float, Message]] = []
        for step, name in enumerate(self.funnel):
            if t >= hi:  # (the purchase of a customer is sent)
                break
            props: dict[str, Any] = {"product_id": f"sku-{self.rng.randint(100, 999)}"}
            if step == len(self.funnel) - 1 and user is not None:
                amount = self._price(math.exp(self.rng.gauss(3.3, 0.7)), user.currency)
                order = f"ord-{self.rng.getrandbits(40):010x}"
                props.update(amount=amount, currency=user.currency, order_id=order)
                self._converted(user)
                if self.rng.random() < REFUND_SHARE:
                    ts = t + self.rng.uniform(3600.0, 6 * 3600.0)
                    if ts < hi:
                        out.append((ts, self._valid("refund", ts, user=user, properties={
                            "amount": amount, "currency": user.currency,
                            "order_id": order})))
            out.append((t, self._valid(name, t, user=user, visitor=visitor,
                                       properties=props)))
            if step + 1 > limit or self.rng.random() >= FUNNEL_CONTINUE[step]:
                break
            t += self.rng.uniform(*FUNNEL_PAUSE)
        return out

    def _subscription_move(self, user: User, start: float, churning: bool,
                           ts: float) -> Message | None:
        """A subscription started (chance ``start``), upgraded or downgraded, or
        cancelled (more often on the user's last day before churning)."""
        r = self.rng.random()
        if user.plan is None:
            if r >= start:
                return None
            plan = _pick(self.rng, PAID_PLANS)[0]
            user.plan, user.mrr = plan, self._price(PLAN_PRICE[plan], user.currency)
            self._converted(user)
            return self._valid("subscription_started", ts, user=user, properties={
                "plan": plan, "mrr": user.mrr, "currency": user.currency})
        if r < SUB_CANCEL or (churning and r < SUB_CANCEL_ON_CHURN):
            props = {"plan": user.plan, "mrr": user.mrr, "currency": user.currency,
                     "reason": self.rng.choice(("price", "missing_feature", "switched",
                                                "other"))}
            user.plan, user.mrr = None, 0.0
            return self._valid("subscription_cancelled", ts, user=user, properties=props)
        if r < SUB_CANCEL + SUB_CHANGE:
            i = PLAN_ORDER.index(user.plan)
            up = i == 0 or (i < len(PLAN_ORDER) - 1 and self.rng.random() < 0.6)
            previous, plan = user.plan, PLAN_ORDER[i + 1 if up else i - 1]
            user.plan, user.mrr = plan, self._price(PLAN_PRICE[plan], user.currency)
            return self._valid("subscription_changed", ts, user=user, properties={
                "plan": plan, "previous_plan": previous, "mrr": user.mrr,
                "currency": user.currency})
        return None

    # -- ids, time, formats ----------------------------------------------------------

    def _uuid(self) -> str:
        """A random (version 4 shaped) UUID drawn from the seeded generator."""
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"

    def _new_visitor(self) -> Visitor:
        platform = _pick(self.rng, PLATFORMS)[0]
        country = _pick(self.rng, COUNTRIES)[0]
        version = _pick(self.rng, APP_VERSIONS[platform])[0] if platform in APP_VERSIONS else None
        return Visitor(self._uuid(), platform, country, version)

    def _new_user(self, visitor: Visitor) -> User:
        currency = next(c for code, c, _ in COUNTRIES if code == visitor.country)
        return User(f"u{self.rng.getrandbits(48):012x}", visitor.anonymous_id,
                    visitor.platform, visitor.country, currency, visitor.app_version)

    def _add_user(self, user: User) -> None:
        # Heavy-tailed activity: a few power users, many occasional ones.
        weight = min(self.rng.paretovariate(1.4), 40.0)
        self.users.append(user)
        self._weights.append(weight)
        self._cum_weights.append((self._cum_weights[-1] if self._cum_weights else 0.0) + weight)

    def _some_user(self) -> User:
        x = self.rng.random() * self._cum_weights[-1]
        return self.users[min(bisect.bisect_right(self._cum_weights, x), len(self.users) - 1)]

    def _price(self, usd: float, currency: str) -> float:
        value = usd * FX.get(currency, 1.0)
        return float(round(value)) if currency in ZERO_DECIMAL else round(value, 2)

    def _timestamp(self, ts: float, segment: bool) -> str | int | float:
        """RFC 3339 (Z or an offset, ms precision) or epoch seconds / milliseconds."""
        kind = self.rng.random()
        if segment or kind < 0.55:
            offset = self.rng.choice(TZ_OFFSETS)
            dt = datetime.fromtimestamp(ts, timezone(timedelta(minutes=offset)))
            text = dt.isoformat(timespec="milliseconds")
            return text.replace("+00:00", "Z") if offset == 0 and kind < 0.4 else text
        if kind < 0.8:
            return round(ts, 3)
        return int(ts * 1000)

    def _now_ts(self, now: float, late_ok: bool = True) -> float:
        """Mostly ``now`` give or take a few seconds; sometimes minutes late."""
        if late_ok and self.rng.random() < LATE_SHARE:
            self.stats["late"] += 1
            return now - self.rng.uniform(60.0, 1200.0)
        return now - self.rng.uniform(-1.0, 3.0)

    def _message(self, name: str, ts: float, *, user: User | None = None,
                 visitor: Visitor | None = None, properties: dict[str, Any] | None = None,
                 segment: bool | None = None, raw_ts: Any = None) -> tuple[bytes, dict[str, Any]]:
        """Key and payload object for one event of ``user`` (or anonymous ``visitor``)."""
        who = user or visitor
        assert who is not None
        platform = who.platform
        if user is not None and self.rng.random() < 0.1:  # the same user on another device
            platform = _pick(self.rng, PLATFORMS)[0]
        app_version = who.app_version if platform == who.platform else None
        if segment is None:
            segment = self.rng.random() < SEGMENT_SHARE
        timestamp = raw_ts if raw_ts is not None else self._timestamp(ts, segment)
        if segment:
            context: dict[str, Any] = {
                "device": {"type": platform},
                "library": {"name": LIBRARIES[platform], "version": "4.4.7"},
                "location": {"country": who.country},
            }
            if app_version:
                context["app"] = {"version": app_version}
            obj: dict[str, Any] = {"type": "track", "messageId": self._uuid(), "event": name}
            if user is not None:
                obj["userId"] = user.user_id
            obj["anonymousId"] = who.anonymous_id
            obj.update(timestamp=timestamp, properties=properties or {}, context=context)
        else:
            obj = {"event_id": self._uuid(), "name": name}
            if user is not None:
                obj["user_id"] = user.user_id
                if self.rng.random() < 0.2:
                    obj["anonymous_id"] = user.anonymous_id
            else:
                obj["anonymous_id"] = who.anonymous_id
            obj.update(timestamp=timestamp, platform=platform, country=who.country)
            if app_version:
                obj["app_version"] = app_version
            if properties:
                obj["properties"] = properties
        key = (user.user_id if user is not None else who.anonymous_id).encode()
        return key, obj

    def _valid(self, name: str, ts: float, **kw: Any) -> Message:
        key, obj = self._message(name, ts, **kw)
        return key, orjson.dumps(obj)

    def _remember(self, msg: Message) -> Message:
        self._recent.append(msg)
        return msg

    def _schedule(self, due: float, build: Callable[[float], Message | None]) -> None:
        self._seq += 1
        heapq.heappush(self._pending, (due, self._seq, build))

    # -- what happens ----------------------------------------------------------------

    def _spontaneous(self, now: float) -> Message | None:
        r = self.rng.random()
        if r < BAD_SHARE:
            return self._bad(now)
        if r < BAD_SHARE + DUPLICATE_SHARE and self._recent:
            self.stats["duplicate"] += 1
            return self.rng.choice(self._recent)
        x = self.rng.random() * self._action_cum[-1]
        action = self._actions[bisect.bisect_right(self._action_cum, x)][0]
        msg = action(now)
        return self._remember(msg) if msg is not None else None

    def _feature(self) -> str:
        return self.rng.choices(self.features, self.feature_weights)[0]

    def _feature_used(self, now: float) -> Message:
        return self._valid("feature_used", self._now_ts(now), user=self._some_user(),
                           properties={"feature": self._feature()})

    def _session_start(self, now: float) -> Message:
        if self.rng.random() < VIEW_SHARE:
            return self._view(now)
        props = {"referrer": self.rng.choice(("direct", "google", "newsletter", "push", "ads"))}
        return self._valid("session_start", self._now_ts(now), user=self._some_user(),
                           properties=props)

    def _view(self, now: float) -> Message:
        user = self._some_user()
        return self._view_at(user, self._now_ts(now))

    def _view_at(self, user: User, ts: float) -> Message:
        """A Segment ``page`` call from the web library, or ``screen`` from an app one."""
        page = self.rng.choice(("Home", "Pricing", "Docs", "Dashboard", "Settings"))
        obj = {"type": "page" if user.platform == "web" else "screen",
               "messageId": self._uuid(), "userId": user.user_id,
               "anonymousId": user.anonymous_id, "name": page,
               "timestamp": self._timestamp(ts, True), "properties": {"title": page},
               "context": {"library": {"name": LIBRARIES[user.platform], "version": "4.4.7"},
                           "device": {"type": user.platform}}}
        return user.user_id.encode(), orjson.dumps(obj)

    def _anonymous(self, now: float) -> Message:
        if self.rng.random() < 0.3 or not self.visitors:
            self.visitors.append(self._new_visitor())
            if len(self.visitors) > 3000:
                self.visitors.pop(0)
        visitor = self.rng.choice(self.visitors)
        kind = self.rng.random()
        if kind < 0.5:
            return self._valid("session_start", self._now_ts(now), visitor=visitor,
                               properties={"referrer": "google"})
        if kind < 0.85 and not visitor.in_funnel:
            return self._funnel_step(visitor, 0, now)
        return self._valid("feature_used", self._now_ts(now), visitor=visitor,
                           properties={"feature": self.features[0]})

    def _funnel_start(self, now: float) -> Message | None:
        user = self._some_user()
        if user.in_funnel:  # one checkout at a time per user, so steps never interleave
            return self._feature_used(now)
        return self._funnel_step(user, 0, now)

    def _funnel_step(self, who: User | Visitor, step: int, ts: float) -> Message:
        user = who if isinstance(who, User) else None
        visitor = who if isinstance(who, Visitor) else None
        name = self.funnel[step]
        sku = f"sku-{self.rng.randint(100, 999)}"
        props: dict[str, Any] = {"product_id": sku}
        last = step == len(self.funnel) - 1
        if last and user is not None:
            amount = self._price(math.exp(self.rng.gauss(3.3, 0.7)), user.currency)
            props.update(amount=amount, currency=user.currency,
                         order_id=f"ord-{self.rng.getrandbits(40):010x}")
            self._purchases.append((user, amount, user.currency, props["order_id"]))
            self._converted(user)
        msg = self._valid(name, ts, user=user, visitor=visitor, properties=props)
        # Anonymous visitors never get past the cart: paying needs an account.
        limit = len(self.funnel) - 1 if user is not None else 1
        who.in_funnel = False
        if step + 1 <= limit and self.rng.random() < FUNNEL_CONTINUE[step]:
            who.in_funnel = True
            due = ts + self.rng.uniform(*FUNNEL_PAUSE)
            self._schedule(due, partial(self._funnel_step, who, step + 1))
        return msg

    def _signup(self, now: float) -> Message:
        visitor = self.visitors.pop(self.rng.randrange(len(self.visitors))) if self.visitors \
            else self._new_visitor()
        user = self._new_user(visitor)
        self._add_user(user)
        ts = self._now_ts(now, late_ok=False)
        props = {"method": self.rng.choice(("email", "google", "apple", "github")),
                 "plan": "free"}
        msg = self._valid("signup", ts, user=user, properties=props, segment=False)
        if self.rng.random() < IDENTIFY_SHARE:  # the browser library links the visitor
            self._schedule(ts + self.rng.uniform(0.1, 2.0), partial(self._identify, user))
        if self.rng.random() < ACTIVATION_SHARE:
            due = ts + self.rng.uniform(*ACTIVATION_DELAY)
            self._schedule(due, partial(self._activation, user))
        return msg

    def _identify(self, user: User, ts: float) -> Message:
        """A Segment ``identify`` call: valid, not an event (counted as ignored)."""
        self.stats["identify"] += 1
        obj = {"type": "identify", "messageId": self._uuid(), "userId": user.user_id,
               "anonymousId": user.anonymous_id, "timestamp": self._timestamp(ts, True),
               "traits": {"plan": user.plan or "free"},
               "context": {"library": {"name": LIBRARIES[user.platform], "version": "4.4.7"}}}
        return user.user_id.encode(), orjson.dumps(obj)

    def _activation(self, user: User, ts: float) -> Message:
        return self._valid("activation", ts, user=user, properties={"trigger": "first_dashboard"})

    def _subscription(self, now: float) -> Message:
        user = self._some_user()
        ts = self._now_ts(now, late_ok=False)
        if user.plan is None:
            plan = _pick(self.rng, PLANS)[0]
            user.plan, user.mrr = plan, self._price(PLAN_PRICE[plan], user.currency)
            self._converted(user)
            return self._valid("subscription_started", ts, user=user, properties={
                "plan": plan, "mrr": user.mrr, "currency": user.currency})
        if self.rng.random() < 0.7:
            others = [p for p, _, _ in PLANS if p != user.plan]
            previous, plan = user.plan, self.rng.choice(others)
            user.plan, user.mrr = plan, self._price(PLAN_PRICE[plan], user.currency)
            return self._valid("subscription_changed", ts, user=user, properties={
                "plan": plan, "previous_plan": previous, "mrr": user.mrr,
                "currency": user.currency})
        props = {"plan": user.plan, "mrr": user.mrr, "currency": user.currency,
                 "reason": self.rng.choice(("price", "missing_feature", "switched", "other"))}
        user.plan, user.mrr = None, 0.0
        return self._valid("subscription_cancelled", ts, user=user, properties=props)

    def _converted(self, user: User) -> None:
        if not user.customer:
            user.customer = True
            self._new_customers += 1

    def _spend(self, ts: float, customers: int) -> list[tuple[float, Message]]:
        """Each channel's spend for a period that brought ``customers`` new customers,
        reported in the minute before ``ts``: no identity, keyed by channel."""
        out = []
        total = sum(w for _, w in self.channels)
        budget = SPEND_PER_CUSTOMER * customers * math.exp(self.rng.gauss(0.0, 0.15))
        for channel, weight in self.channels:
            usd = budget * weight / total * math.exp(self.rng.gauss(0.0, 0.2))
            eur = SPEND_EUR_SHARE.get(channel, 0.0)
            parts = [("USD", usd * (1.0 - eur))] + ([("EUR", usd * eur)] if eur else [])
            for currency, amount in parts:
                when = ts - self.rng.uniform(0.0, 60.0)
                obj = {"event_id": self._uuid(), "name": self.spend_event,
                       "timestamp": self._timestamp(when, False),
                       "properties": {"amount": self._price(amount, currency),
                                      "currency": currency, "channel": channel}}
                out.append((when, (f"spend:{channel}".encode(), orjson.dumps(obj))))
                self.stats["spend"] += 1
        return out

    def _nps_score(self) -> int:
        return self.rng.choices(range(11), (3, 2, 2, 3, 3, 5, 7, 13, 17, 22, 23))[0]

    def _csat_score(self) -> int:
        return self.rng.choices(range(1, 6), (5, 8, 15, 35, 37))[0]

    def _nps(self, now: float) -> Message:
        score = self._nps_score()
        return self._valid("nps_submitted", self._now_ts(now), user=self._some_user(),
                           properties={"score": score})

    def _csat(self, now: float) -> Message:
        score = self._csat_score()
        return self._valid("csat_submitted", self._now_ts(now), user=self._some_user(),
                           properties={"score": score})

    def _refund(self, now: float) -> Message:
        if not self._purchases:
            return self._feature_used(now)
        user, amount, currency, order = self._purchases[
            self.rng.randrange(len(self._purchases))]
        if self.rng.random() < 0.3:  # partial refund
            amount = self._price(amount * self.rng.uniform(0.2, 0.8) / FX.get(currency, 1.0),
                                 currency)
        return self._valid("refund", self._now_ts(now, late_ok=False), user=user,
                           properties={"amount": amount, "currency": currency,
                                       "order_id": order})

    def _bad(self, now: float) -> Message:
        """One event the worker must dead-letter, of a kind picked at random."""
        kind = self.rng.choice(BAD_KINDS)
        self.stats["bad:" + kind] += 1
        user = self._some_user()
        ts = now - self.rng.uniform(0.0, 3.0)
        key = user.user_id.encode()
        if kind == "not_json":
            _, obj = self._message("feature_used", ts, user=user, properties={"feature": "x"})
            text = orjson.dumps(obj)
            return key, self.rng.choice((text[: len(text) // 2], b"hello world",
                                         b"{'single': 'quotes'}", b"\xff\xfe\x00garbage"))
        if kind == "not_object":
            _, obj = self._message("session_start", ts, user=user)
            return key, self.rng.choice((orjson.dumps([obj]), b"42", b'"session_start"'))
        if kind == "schema_missing_id":
            _, obj = self._message("session_start", ts, user=user, segment=False)
            del obj["event_id"]
            return key, orjson.dumps(obj)
        if kind == "schema_amount_string":
            _, obj = self._message("purchase", ts, user=user, segment=False, properties={
                "amount": "19.99", "currency": user.currency})
            return key, orjson.dumps(obj)
        if kind == "schema_nps_11":
            _, obj = self._message("nps_submitted", ts, user=user, properties={"score": 11})
            return key, orjson.dumps(obj)
        if kind == "too_large":
            _, obj = self._message("feature_used", ts, user=user, properties={
                "feature": "export", "payload": "x" * (MAX_BYTES + 1000)})
            return key, orjson.dumps(obj)
        if kind == "in_future":
            return self._valid("session_start", now + 3600.0, user=user)
        # too_old: 60 days back, older than the longest window (30d) + 1 day
        return self._valid("session_start", now - 60 * 86400.0, user=user)
