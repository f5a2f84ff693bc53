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
covering every dead-letter reason. :func:`daily_factor` is the smooth time-of-day curve
senders pace it with (mean 1, never below 0.55).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import Counter, deque
from collections.abc import Callable
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

BAD_KINDS = ("not_json", "not_object", "schema_missing_id", "schema_amount_string",
             "schema_nps_11", "too_large", "in_future", "too_old")


def daily_factor(now: float) -> float:
    """Traffic multiplier by UTC time of day: smooth, mean 1, 0.55 at 03:00, 1.45 at 15:00."""
    hour = (now % 86400.0) / 3600.0
    return 1.0 + 0.45 * math.cos(2.0 * math.pi * (hour - 15.0) / 24.0)


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


@dataclass(slots=True)
class Visitor:
    """Someone not signed up (yet): only an anonymous id."""

    anonymous_id: str
    platform: str
    country: str
    app_version: str | None
    in_funnel: bool = False


class TrafficGenerator:
    """Deterministic product traffic: ``batch(now, n)`` -> ``[(key, value), ...]``.

    The only inputs are the seed and the clock values given to :meth:`batch`; call it
    with increasing ``now``. Follow-up events (funnel steps, activations) are
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
        self.users: list[User] = []
        self._cum_weights: list[float] = []
        self.visitors: list[Visitor] = []
        self._pending: list[tuple[float, int, Callable[[float], Message | None]]] = []
        self._seq = 0
        self._recent: deque[Message] = deque(maxlen=2000)
        self._purchases: deque[tuple[User, float, str, str]] = deque(maxlen=500)
        self.stats: Counter[str] = Counter()
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
        """Every follow-up due by ``now``, then new events up to ``n`` messages in all."""
        out: list[Message] = []
        while self._pending and self._pending[0][0] <= now:
            due, _, build = heapq.heappop(self._pending)
            msg = build(due)
            if msg is not None:
                out.append(self._remember(msg))
        while len(out) < n:
            msg = self._spontaneous(now)
            if msg is not None:
                out.append(msg)
        self.stats["sent"] += len(out)
        return out

    @property
    def population(self) -> int:
        return len(self.users)

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
        """A Segment ``page`` call from the web library, or ``screen`` from an app one."""
        user = self._some_user()
        ts = self._now_ts(now)
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

    def _nps(self, now: float) -> Message:
        score = self.rng.choices(range(11), (3, 2, 2, 3, 3, 5, 7, 13, 17, 22, 23))[0]
        return self._valid("nps_submitted", self._now_ts(now), user=self._some_user(),
                           properties={"score": score})

    def _csat(self, now: float) -> Message:
        score = self.rng.choices(range(1, 6), (5, 8, 15, 35, 37))[0]
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
