"""Realistic, reproducible product traffic, free of Kafka and asyncio.

:class:`TrafficGenerator` is pure: given a clock value and a count it returns ``(key,
value_bytes)`` messages. Everything random comes from one ``random.Random(seed)``, so
the same seed and the same clock values give the same bytes. It models a population of
users (a few thousand, growing by signups) on web / ios / android plus a few on an
unconfigured ``tv`` platform. Everything a user or an anonymous visitor does happens in a
*session* on one device, whose events carry its ``session_id``: a start (or a Segment
page / screen view), the page or screen load, feature use and the API calls behind it,
the checkout funnel with drop-off at each step, purchases, surveys, subscriptions,
signups followed (often) by an activation within minutes; a few events to dozens over
seconds to a quarter of an hour, some a single event. Technical performance comes with
it: ``page_load`` (web pages, app screens) and ``api_request`` events with a log-normal
``duration_ms`` and a heavy tail, HTTP statuses (mostly 2xx, some 4xx, ~0.6 % 5xx) and
client-side failures (``error: true``), ``app_crash`` on ios and android (about 99 % of
the day's users crash-free, old app versions crash more), and now and then a latency
regression: most clock hours have one of 4 to 10 minutes (:meth:`TrafficGenerator.
regressions`) in which the API is several times slower and fails more. Also: refunds
(server-side, no session) in several currencies (including unconfigured CHF), canonical
and Segment *track* payloads, mixed timestamp formats, ~1.5 % of events delivered minutes
late, ~0.5 % duplicates and ~0.5 % bad events covering every dead-letter reason, and every
minute the marketing spend of each ad channel (no user identity). :func:`daily_factor` is
the smooth time-of-day curve senders pace it with (mean 1, never below 0.55).

:meth:`TrafficGenerator.backfill` first gives that population a history: up to 30 days of
valid events in time order, ending at the clock value given, with daily signup cohorts (a
weekly pattern), retention that decays day after day, users who churn, their sessions
(with page loads, API calls and crashes, and one latency regression of an hour or so,
:attr:`TrafficGenerator.history_regression`), purchases, subscriptions started,
upgraded, downgraded and cancelled, and each channel's daily spend. Live traffic then
goes on from that state (churned users rarely come back).
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
from datetime import UTC, datetime, timedelta, timezone
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
TZ_ZONES = tuple(UTC if m == 0 else timezone(timedelta(minutes=m)) for m in TZ_OFFSETS)

# Shares of the spontaneous (not follow-up) slots: bad, duplicate; of the session events
# sent late (1 to 20 minutes after their time; not signups, subscriptions, checkout
# starts); of the events sent as Segment track calls.
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

# Sessions: everything a user or visitor does happens in one, on one device.
#: Main actions of a session after its start (a feature used, another page or screen, a
#: checkout, a survey...): exponential with this mean, at most SESSION_MAX; so a third
#: of the sessions are a start and its page load, some a start alone.
SESSION_ACTIONS = 2.5
SESSION_MAX = 25
#: Share of the main actions that open another page / screen rather than use a feature.
NAVIGATE_SHARE = 0.25
#: The pause before each main action (s): log-normal (median, sigma), at most the max.
SESSION_GAP = (40.0, 1.0)
SESSION_GAP_MAX = 900.0
SESSION_GAP_LOG = math.log(SESSION_GAP[0])
#: Chance of a page / screen load right after the start; of an API call after the start's
#: load, after a feature used, after a navigation.
LOAD_AT_START = 0.7
API_AFTER = {"start": 0.2, "feature": 0.3, "navigate": 0.25}
#: Live: share of the sessions that are anonymous visitors'; chance of a signup in one;
#: chance of a subscription move in a user's session.
ANON_SESSIONS = 0.12
SESSION_SIGNUP = 0.3
SESSION_SUBSCRIPTION = 0.06
#: Live: at most this share of a batch's new events starts a session (the others come from
#: sessions under way, early if none is due): no burst of starts when the traffic begins.
START_CAP = 0.5
#: Live: share of refunds (server-side: no session) among the new events.
LIVE_REFUND_SHARE = 0.0003

# Technical performance: page / screen loads and API calls with their duration (ms).
PAGES = ("/", "/pricing", "/docs", "/dashboard", "/settings", "/reports", "/integrations")
SCREENS = ("Home", "Dashboard", "Search", "Reports", "Settings", "Share", "Inbox")
#: Load time (ms), log-normal: (median, sigma) of a web page, of an app screen.
LOAD_WEB, LOAD_APP = (420.0, 0.55), (260.0, 0.5)
#: The heavy tail: this share of loads and calls takes SLOW_FACTOR times as long.
SLOW_SHARE, SLOW_FACTOR = 0.03, (3.0, 12.0)
#: Web pages: 404 and 5xx shares of the loads; page or screen loads failing in the client
#: (``error: true``).
PAGE_404, PAGE_5XX, LOAD_ERROR = 0.004, 0.002, 0.002
#: The API call behind each feature and a page's data: method, route, median (ms) and
#: the status of a success; log-normal with API_SIGMA.
API_ROUTES = {
    "search": ("GET", "/api/search", 140.0, 200),
    "export": ("POST", "/api/exports", 650.0, 201),
    "share": ("POST", "/api/shares", 210.0, 201),
    "dashboard": ("GET", "/api/dashboards/{id}", 260.0, 200),
    "invite": ("POST", "/api/invites", 230.0, 201),
    "integrations": ("GET", "/api/integrations", 180.0, 200),
    "page": ("GET", "/api/me", 70.0, 200),
    "settings": ("PATCH", "/api/settings", 120.0, 204),
}
API_SIGMA = 0.6
#: Shares of the API calls answered 4xx, 5xx (SERVER_5XX, REGRESSION_5XX in a regression)
#: and failing in the client without a status (``error: true``: timeouts, network).
CLIENT_4XX = 0.03
STATUS_4XX = ((400, 20), (401, 15), (403, 10), (404, 30), (409, 8), (422, 12), (429, 5))
SERVER_5XX, REGRESSION_5XX = 0.006, 0.035
STATUS_5XX = ((500, 40), (502, 20), (503, 25), (504, 15))
NETWORK_ERROR = 0.0015
#: Chance that a session on ios / android crashes (and ends with ``app_crash``), by the
#: app version's place in APP_VERSIONS (newest first); the last one if unknown.
CRASH_CHANCE = (0.0025, 0.005, 0.02)
CRASH_REASONS = ("SIGABRT", "SIGSEGV", "NSInternalInconsistencyException",
                 "NullPointerException", "OutOfMemoryError", "ANR")
#: Live latency regressions: the chance that a clock hour has one, its length (s), how many
#: times slower the API gets (REGRESSION_SLOWED of the calls; page loads half as much).
#: The history has one, longer (HISTORY_REGRESSION), on a weekday afternoon.
REGRESSION_CHANCE = 0.6
REGRESSION_LENGTH = (240.0, 600.0)
REGRESSION_FACTOR = (3.5, 6.0)
REGRESSION_SLOWED = 0.85
HISTORY_REGRESSION = (2700.0, 5400.0)

BAD_KINDS = ("not_json", "not_object", "schema_missing_id", "schema_amount_string",
             "schema_nps_11", "schema_performance", "too_large", "in_future", "too_old")
#: (field, wrong value) of the bad technical events; None: the field is missing.
BAD_PERFORMANCE = (("duration_ms", None), ("duration_ms", -12.5), ("duration_ms", "250"),
                   ("status", 99), ("status", "200"), ("error", "false"), ("session_id", 12345),
                   ("session_id", ""))


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


def _same(msg: Message, _due: float) -> Message:
    """A message held back to be sent late, as it was."""
    return msg


@dataclass(slots=True, eq=False)
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
    in_session: bool = False  # (live) a session of theirs is under way (a hint)


@dataclass(slots=True, eq=False)
class Visitor:
    """Someone not signed up (yet): only an anonymous id."""

    anonymous_id: str
    platform: str
    country: str
    app_version: str | None
    in_funnel: bool = False
    in_session: bool = False


@dataclass(slots=True, eq=False)
class Session:
    """One visit of a user or visitor on one device: its id, and what is still to come:
    ``follow`` (a load or API call right after the last event), then ``plan`` (the main
    actions, last first)."""

    who: User | Visitor
    sid: str
    platform: str
    app_version: str | None
    plan: list[str]
    follow: list[tuple[str, str, float]]  # (kind, page / route key, duration in ms)
    started: bool = False


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
    Sessions under way emit their next event when it is due (with ``now`` as its time,
    give or take clock skew); new sessions fill the rest of the batch. Follow-up events
    (funnel steps, activations) are scheduled at a later event time and emitted by the
    first batch whose ``now`` reaches it, with exactly that timestamp, so a user's steps
    are in order both in event time and in sending order. A late event keeps its time and
    is sent minutes later.
    """

    def __init__(self, seed: int, definitions: Definitions | None = None,
                 users: int = 3000) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        features = tuple(definitions.features) if definitions and definitions.features else ()
        self.features = features or DEFAULT_FEATURES
        self.feature_weights = tuple(
            FEATURE_WEIGHTS[DEFAULT_FEATURES.index(f)] if f in DEFAULT_FEATURES else 5
            for f in self.features)
        self._feature_cum = list(itertools.accumulate(self.feature_weights))
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
        performance = getattr(definitions, "performance", None)
        names = tuple(getattr(performance, "events", None) or ("page_load", "api_request"))
        self.page_load_event = "page_load" if "page_load" in names else names[0]
        self.api_event = "api_request" if "api_request" in names else names[-1]
        self.crash_event: str = getattr(performance, "crash", None) or "app_crash"
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
        # Live sessions under way, by when their next event is due.
        self._open: list[tuple[float, int, Session]] = []
        self._starts = self._start_cap = 0
        #: The history's latency regression (start, end, factor), once :meth:`backfill`
        #: has made one; and the span it covers (no hourly regressions in it).
        self.history_regression: tuple[float, float, float] | None = None
        self._history: tuple[float, float] | None = None
        self._hours: dict[int, tuple[float, float, float] | None] = {}
        for _ in range(users):
            user = self._new_user(self._new_visitor())
            self._add_user(user)
            if self.rng.random() < 0.35:
                plan = _pick(self.rng, PLANS)[0]
                user.plan, user.mrr = plan, self._price(PLAN_PRICE[plan], user.currency)
        for _ in range(300):
            self.visitors.append(self._new_visitor())

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
        self._starts, self._start_cap = 0, max(1, math.ceil((n - len(out)) * START_CAP))
        while len(out) < n:
            msg = self._spontaneous(now)
            if msg is not None:
                out.append(msg)
        self.stats["sent"] += len(out)
        return out

    def regression_at(self, ts: float) -> float:
        """How many times slower the API is at ``ts``: 1.0 outside a latency regression."""
        for start, end, factor in self._regressions_around(ts):
            if start <= ts < end:
                return factor
        return 1.0

    def regressions(self, a: float, b: float) -> list[tuple[float, float, float]]:
        """The latency regressions ``(start, end, factor)`` that overlap ``[a, b)``: the
        history's, and the live traffic's (most clock hours after the history have one)."""
        found = [self.history_regression] if self.history_regression else []
        found += [r for hour in range(int(a // 3600), int(b // 3600) + 1)
                  if (r := self._hour(hour)) is not None]
        return sorted(r for r in found if r[0] < b and r[1] > a)

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
        :func:`daily_factor` favours (each with its page loads and API calls, some
        crashing on ios and android), feature use, checkouts with drop-off, purchases
        and some refunds, surveys, subscriptions started, changed and cancelled (often
        when the user churns). One latency regression of an hour or so, on a weekday
        afternoon, is :attr:`history_regression`. Each channel's spend is reported once a
        day, with no identity.

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

        self._history = (start, now)
        self._hours.clear()
        self.history_regression = self._history_regression(start, now)

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
        """A visitor's first session, or a signup (identify, activation) that starts the
        first session of the day."""
        t = life.first_ts
        who = life.who
        if isinstance(who, Visitor):
            return self._play(self._new_session(who, t), t, hi)
        sess = self._new_session(who, t)
        props = {"method": self.rng.choice(("email", "google", "apple", "github")),
                 "plan": "free"}
        out = [(t, self._valid("signup", t, session=sess, properties=props, segment=False))]
        if self.rng.random() < IDENTIFY_SHARE:
            ts = t + self.rng.uniform(0.1, 2.0)
            out.append((ts, self._identify(who, ts)))
        if self.rng.random() < ACTIVATION_SHARE:
            ts = t + self.rng.uniform(*ACTIVATION_DELAY)
            out.append((ts, self._activation(who, ts, session=sess)))
        out += self._active_day(life, t + self.rng.uniform(5.0, 60.0), hi, life.first_day,
                                sess)
        return out

    def _active_day(self, life: _Life, t: float, hi: float, day: int,
                    sess: Session | None = None) -> list[tuple[float, Message]]:
        """Sessions from ``t`` on (the first one ``sess`` if given), until ``hi``; the
        subscription moves of the day, in the day's last session."""
        sess = sess or self._new_session(life.who, t)
        out = self._play(sess, t, hi)
        extra = (self.rng.random() < 0.4) + (self.rng.random() < 0.15) + (life.weight > 8)
        for _ in range(extra):
            t += self.rng.expovariate(1 / 7200.0)
            if t >= hi:
                break
            sess = self._new_session(life.who, t)
            out += self._play(sess, t, hi)
        user = life.who
        ts = t + self.rng.uniform(30.0, 600.0)
        if isinstance(user, User) and ts < hi:  # (a move is sent if it is made)
            start = SUB_START[1] if day != life.first_day else \
                BASE_SUBSCRIBED if life.base else SUB_START[0]
            move = self._subscription_move(user, start, day == life.last_day, ts, sess)
            if move is not None:
                out.append((ts, move))
        return out

    def _play(self, sess: Session, t: float, hi: float) -> list[tuple[float, Message]]:
        """All the events of ``sess`` from ``t`` on (its checkout until ``hi``)."""
        out: list[tuple[float, Message]] = []
        while True:
            events, gap, _ = self._step(sess, t, hi)
            out += events
            if gap is None:
                return out
            t += gap

    def _checkout(self, sess: Session, t: float,
                  hi: float) -> tuple[list[tuple[float, Message]], float]:
        """The checkout funnel from its first step, with the live traffic's drop-off;
        visitors stop at the cart. A purchase is sometimes refunded hours later. Its
        events, and the time of its last step."""
        who = sess.who
        user = who if isinstance(who, User) else None
        limit = len(self.funnel) - 1 if user is not None else 1
        out: list[tuple[float, Message]] = []
        end = t
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
                    if ts < hi:  # (support refunds it: server-side, no session)
                        out.append((ts, self._valid("refund", ts, user=user, properties={
                            "amount": amount, "currency": user.currency,
                            "order_id": order})))
            out.append((t, self._valid(name, t, session=sess, properties=props)))
            end = t
            if step + 1 > limit or self.rng.random() >= FUNNEL_CONTINUE[step]:
                break
            t += self.rng.uniform(*FUNNEL_PAUSE)
        return out, end

    # -- sessions (history and live) -------------------------------------------------------

    def _new_session(self, who: User | Visitor, t: float, live: bool = False) -> Session:
        """A session of ``who`` starting at ``t``: its device (now and then a user's other
        one), its id, and its plan: main actions, maybe a checkout, a survey, (live) a
        signup or a subscription move, and on ios / android now and then a crash that
        ends it."""
        rng = self.rng
        user = who if isinstance(who, User) else None
        platform = who.platform
        if user is not None and rng.random() < 0.1:  # the same user on another device
            platform = _pick(rng, PLATFORMS)[0]
        app_version = who.app_version if platform == who.platform else None
        if platform == "web":  # a browser library's random id; the apps' start time (ms)
            sid = f"{rng.getrandbits(64):016x}"
        else:
            sid = f"{platform}-{int(t * 1000)}-{rng.getrandbits(16):04x}"
        k = min(int(rng.expovariate(1.0 / SESSION_ACTIONS)), SESSION_MAX)
        plan = ["navigate" if rng.random() < NAVIGATE_SHARE else "feature" for _ in range(k)]
        if rng.random() < SESSION_FUNNEL:
            plan.insert(rng.randint(0, len(plan)), "checkout")
        if user is not None:
            if rng.random() < SESSION_NPS:
                plan.append("nps")
            if rng.random() < SESSION_CSAT:
                plan.append("csat")
            if live and rng.random() < SESSION_SUBSCRIPTION:
                plan.insert(rng.randint(0, len(plan)), "subscription")
        elif live and rng.random() < SESSION_SIGNUP:
            plan.insert(0, "signup")
        if platform in ("ios", "android"):
            versions = [v for v, _ in APP_VERSIONS[platform]]
            place = versions.index(app_version) if app_version in versions else -1
            if rng.random() < CRASH_CHANCE[place]:
                plan.append("crash")
        plan.reverse()  # (popped from the end)
        sess = Session(who, sid, platform, app_version, plan, [])
        if rng.random() < LOAD_AT_START:
            sess.follow.append(("load", self._page(sess), self._load_ms(sess, t)))
        self.stats["sessions"] += 1
        return sess

    def _step(self, sess: Session, ts: float, hi: float | None = None,
              ) -> tuple[list[tuple[float, Message]], float | None, bool]:
        """The next event of ``sess``, at ``ts`` (in the history, where ``hi`` is the end
        of the day, a whole checkout; live, its first step, the others follow), the pause
        before the one after (None: the session is over), and whether it may be
        delivered late."""
        rng = self.rng
        who = sess.who
        late_ok = True
        end = ts
        if not sess.started:
            sess.started = True
            events = [(ts, self._start_event(sess, ts))]
        elif sess.follow:
            kind, what, ms = sess.follow.pop()
            if kind == "load":
                msg = self._valid(self.page_load_event, ts, session=sess,
                                  properties=self._load_props(sess, what, ms))
                if rng.random() < API_AFTER["start"]:
                    sess.follow.append(("api", "page", self._api_ms("page", ts)))
            else:
                msg = self._valid(self.api_event, ts, session=sess,
                                  properties=self._api_props(sess, what, ms, ts))
            events = [(ts, msg)]
        else:
            action = sess.plan.pop()
            if action == "checkout" and hi is not None:
                events, end = self._checkout(sess, ts, hi)
            elif action == "checkout" and not who.in_funnel:
                events, late_ok = [(ts, self._funnel_step(who, 0, ts, sess))], False
            elif action == "navigate":
                page = self._page(sess)
                msg = self._valid(self.page_load_event, ts, session=sess,
                                  properties=self._load_props(sess, page,
                                                              self._load_ms(sess, ts)))
                events = [(ts, msg)]
                if rng.random() < API_AFTER["navigate"]:
                    route = "settings" if page in ("/settings", "Settings") else "page"
                    sess.follow.append(("api", route, self._api_ms(route, ts)))
            elif action in ("nps", "csat"):
                score = self._nps_score() if action == "nps" else self._csat_score()
                events = [(ts, self._valid(f"{action}_submitted", ts, session=sess,
                                           properties={"score": score}))]
            elif action == "subscription":
                events, late_ok = [(ts, self._subscription(sess, ts))], False
            elif action == "signup":
                events, late_ok = [(ts, self._signup(sess, ts))], False
            elif action == "crash":
                events = [(ts, self._crash(sess, ts))]
                sess.plan.clear()
            else:  # a feature used (also a checkout while the last one is under way)
                feature = self._feature() if isinstance(who, User) else self.features[0]
                events = [(ts, self._valid("feature_used", ts, session=sess,
                                           properties={"feature": feature}))]
                if rng.random() < API_AFTER["feature"]:
                    sess.follow.append(("api", feature, self._api_ms(feature, ts)))
        if sess.follow:
            gap: float | None = sess.follow[-1][2] / 1000.0 + rng.uniform(0.02, 0.4)
        elif sess.plan:
            gap = min(rng.lognormvariate(SESSION_GAP_LOG, SESSION_GAP[1]), SESSION_GAP_MAX)
        else:
            gap = None
        if gap is not None:
            gap += end - ts
        return events, gap, late_ok

    def _start_event(self, sess: Session, ts: float) -> Message:
        """A session's first event: ``session_start``, or a Segment page / screen call."""
        if isinstance(sess.who, User) and self.rng.random() < VIEW_SHARE:
            return self._view_at(sess, ts)
        props = {"referrer": self.rng.choice(("direct", "google", "newsletter", "push", "ads"))}
        return self._valid("session_start", ts, session=sess, properties=props)

    def _crash(self, sess: Session, ts: float) -> Message:
        self.stats["crash"] += 1
        return self._valid(self.crash_event, ts, session=sess, properties={
            "reason": self.rng.choice(CRASH_REASONS), "screen": self.rng.choice(SCREENS)})

    # -- technical performance -------------------------------------------------------------

    def _page(self, sess: Session) -> str:
        return self.rng.choice(PAGES if sess.platform == "web" else SCREENS)

    def _tail(self, ms: float) -> float:
        if self.rng.random() < SLOW_SHARE:
            return ms * self.rng.uniform(*SLOW_FACTOR)
        return ms

    def _load_ms(self, sess: Session, ts: float) -> float:
        """How long a page (web) or a screen (apps) takes to load: log-normal, a heavy tail,
        about half the API's slow-down in a regression."""
        median, sigma = LOAD_WEB if sess.platform == "web" else LOAD_APP
        ms = self._tail(median * math.exp(self.rng.gauss(0.0, sigma)))
        factor = self.regression_at(ts)
        if factor > 1.0 and self.rng.random() < REGRESSION_SLOWED:
            ms *= 1.0 + (factor - 1.0) / 2.0
        return ms

    def _api_ms(self, route: str, ts: float) -> float:
        """How long an API call takes: log-normal around its route's median, a heavy
        tail, several times as long in a regression."""
        median = API_ROUTES.get(route, ("", "", 200.0, 200))[2]
        ms = self._tail(median * math.exp(self.rng.gauss(0.0, API_SIGMA)))
        factor = self.regression_at(ts)
        if factor > 1.0 and self.rng.random() < REGRESSION_SLOWED:
            ms *= factor * math.exp(self.rng.gauss(0.0, 0.15))
        return ms

    def _ms(self, sess: Session, ms: float) -> float | int:
        """A duration as the libraries send it: the browser's with a decimal, the apps'
        whole milliseconds."""
        return round(ms, 1) if sess.platform == "web" else round(ms)

    def _load_props(self, sess: Session, page: str, ms: float) -> dict[str, Any]:
        rng = self.rng
        if sess.platform == "web":
            r = rng.random()
            status = 404 if r < PAGE_404 else 500 if r < PAGE_404 + PAGE_5XX else 200
            props: dict[str, Any] = {"page": page, "duration_ms": self._ms(sess, ms),
                                     "status": status}
            if rng.random() < LOAD_ERROR:
                props["error"] = True
            return props
        return {"screen": page, "duration_ms": self._ms(sess, ms),
                "error": rng.random() < LOAD_ERROR}

    def _api_props(self, sess: Session, route: str, ms: float, ts: float) -> dict[str, Any]:
        """An API call's method, route, duration, and status (or ``error: true`` when it
        failed in the client): mostly its success status, some 4xx, rarely 5xx (more in
        a regression, where 504s wait for the gateway's timeout)."""
        rng = self.rng
        method, path, _, ok = API_ROUTES.get(route, ("POST", f"/api/{route}", 200.0, 200))
        regression = self.regression_at(ts) > 1.0
        server = REGRESSION_5XX if regression else SERVER_5XX
        network = NETWORK_ERROR * (4 if regression else 1)
        props: dict[str, Any] = {"method": method, "endpoint": path}
        r = rng.random()
        error = False
        if r < network:
            error, status = True, None
            ms = rng.uniform(2000.0, 30000.0)  # the client gave up, or the network did
        elif r < network + server:
            status = _pick(rng, STATUS_5XX)[0]
            ms = rng.uniform(29000.0, 30500.0) if status == 504 else ms
        elif r < network + server + CLIENT_4XX:
            status = _pick(rng, STATUS_4XX)[0]
            ms *= 0.4
        else:
            status = ok
        props["duration_ms"] = self._ms(sess, ms)
        if status is not None:
            props["status"] = status
        if error or sess.platform != "web":  # the apps' libraries always say
            props["error"] = error
        return props

    # -- latency regressions ---------------------------------------------------------------

    def _history_regression(self, start: float, now: float) -> tuple[float, float, float]:
        """The history's one regression: on a weekday afternoon (UTC) a week or more
        before ``now`` if the history is that long, else in its middle."""
        rng = self.rng
        length = rng.uniform(*HISTORY_REGRESSION)
        days = [d for d in range(int(start // 86400) + 1, int(now // 86400) - 6)
                if _weekday(d) < 5]
        if days:
            at = rng.choice(days) * 86400.0 + rng.uniform(13 * 3600.0, 17 * 3600.0)
        else:
            at = start + (now - start - length) * rng.uniform(0.3, 0.7)
        return at, at + length, rng.uniform(*REGRESSION_FACTOR)

    def _hour(self, hour: int) -> tuple[float, float, float] | None:
        """The live regression in a clock hour, if any: from the seed and the hour alone
        (its own random stream, so the traffic's bytes do not depend on who asked), and
        not in the history (which has its own): cut where the history ends."""
        if hour not in self._hours:
            if len(self._hours) > 1000:
                self._hours.clear()
            rng = random.Random(self.seed * 1_000_003 + hour)
            found = None
            if rng.random() < REGRESSION_CHANCE:
                length = rng.uniform(*REGRESSION_LENGTH)
                at = hour * 3600.0 + rng.uniform(0.0, 3600.0 - length)
                found = (at, at + length, rng.uniform(*REGRESSION_FACTOR))
                if self._history is not None and found[0] < self._history[1] \
                        and found[1] > self._history[0]:
                    end = self._history[1]
                    found = (end, found[1], found[2]) if found[1] > end else None
            self._hours[hour] = found
        return self._hours[hour]

    def _regressions_around(self, ts: float) -> list[tuple[float, float, float]]:
        """The regressions that may hold ``ts``: in the history only its own, after it the
        one of the clock hour of ``ts``."""
        if self._history is not None and self._history[0] <= ts < self._history[1]:
            return [self.history_regression] if self.history_regression else []
        found = self._hour(int(ts // 3600))
        return [found] if found is not None else []

    def _subscription_move(self, user: User, start: float, churning: bool, ts: float,
                           sess: Session | None = None) -> Message | None:
        """A subscription started (chance ``start``), upgraded or downgraded, or
        cancelled (more often on the user's last day before churning), in ``sess``."""
        r = self.rng.random()
        if user.plan is None:
            if r >= start:
                return None
            plan = _pick(self.rng, PAID_PLANS)[0]
            user.plan, user.mrr = plan, self._price(PLAN_PRICE[plan], user.currency)
            self._converted(user)
            return self._valid("subscription_started", ts, user=user, session=sess, properties={
                "plan": plan, "mrr": user.mrr, "currency": user.currency})
        if r < SUB_CANCEL or (churning and r < SUB_CANCEL_ON_CHURN):
            props = {"plan": user.plan, "mrr": user.mrr, "currency": user.currency,
                     "reason": self.rng.choice(("price", "missing_feature", "switched",
                                                "other"))}
            user.plan, user.mrr = None, 0.0
            return self._valid("subscription_cancelled", ts, user=user, session=sess,
                               properties=props)
        if r < SUB_CANCEL + SUB_CHANGE:
            i = PLAN_ORDER.index(user.plan)
            up = i == 0 or (i < len(PLAN_ORDER) - 1 and self.rng.random() < 0.6)
            previous, plan = user.plan, PLAN_ORDER[i + 1 if up else i - 1]
            user.plan, user.mrr = plan, self._price(PLAN_PRICE[plan], user.currency)
            return self._valid("subscription_changed", ts, user=user, session=sess, properties={
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
            zone = self.rng.choice(TZ_ZONES)
            dt = datetime.fromtimestamp(ts, zone)
            text = dt.isoformat(timespec="milliseconds")
            return text.replace("+00:00", "Z") if zone is UTC and kind < 0.4 else text
        if kind < 0.8:
            return round(ts, 3)
        return int(ts * 1000)

    def _now_ts(self, now: float) -> float:
        """``now`` give or take a few seconds (the senders' clocks)."""
        return now - self.rng.uniform(-1.0, 3.0)

    def _message(self, name: str, ts: float, *, user: User | None = None,
                 visitor: Visitor | None = None, session: Session | None = None,
                 properties: dict[str, Any] | None = None,
                 segment: bool | None = None, raw_ts: Any = None) -> tuple[bytes, dict[str, Any]]:
        """Key and payload object for one event of ``user`` (or anonymous ``visitor``), or
        of whoever ``session`` is of, on its device, with its id."""
        who: User | Visitor
        if session is not None:
            who = session.who
            user = who if isinstance(who, User) else None
            platform, app_version = session.platform, session.app_version
        else:
            found = user or visitor
            assert found is not None
            who = found
            platform = who.platform
            if user is not None and self.rng.random() < 0.1:  # the same user, another device
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
            props = properties or {}
            if session is not None:  # not a Segment field: in the properties
                props = {**props, "session_id": session.sid}
            obj.update(timestamp=timestamp, properties=props, context=context)
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
            if session is not None:
                obj["session_id"] = session.sid
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

    # -- live: what happens ------------------------------------------------------------

    def _spontaneous(self, now: float) -> Message | None:
        r = self.rng.random()
        if r < BAD_SHARE:
            return self._bad(now)
        if r < BAD_SHARE + DUPLICATE_SHARE and self._recent:
            self.stats["duplicate"] += 1
            return self.rng.choice(self._recent)
        if r < BAD_SHARE + DUPLICATE_SHARE + LIVE_REFUND_SHARE and self._purchases:
            return self._remember(self._refund(now))
        return self._activity(now)

    def _activity(self, now: float) -> Message | None:
        """The next event of the session whose turn it is (the earliest due; one not due
        yet only while the batch may start no more sessions), else a new session's first.
        Now and then the event is delivered minutes late."""
        if self._open and (self._open[0][0] <= now or self._starts >= self._start_cap):
            due, _, sess = heapq.heappop(self._open)
            if due > now:
                self.stats["early"] += 1
        else:
            sess = self._live_session(now)
            self._starts += 1
        events, gap, late_ok = self._step(sess, self._now_ts(now))
        if gap is None:
            sess.who.in_session = False
        else:
            self._seq += 1
            heapq.heappush(self._open, (now + gap, self._seq, sess))
        msg = events[0][1]
        if late_ok and self.rng.random() < LATE_SHARE:
            self.stats["late"] += 1
            self._schedule(now + self.rng.uniform(60.0, 1200.0), partial(_same, msg))
            return None
        return self._remember(msg)

    def _live_session(self, now: float) -> Session:
        """A new session of a user (weighted by activity; if they are in a session, a
        second pick, who may be too: on another device) or of an anonymous visitor (often
        a new one)."""
        who: User | Visitor
        if self.rng.random() < ANON_SESSIONS:
            visitor = self.rng.choice(self.visitors) if self.visitors else None
            if visitor is None or visitor.in_session or self.rng.random() < 0.3:
                visitor = self._new_visitor()
                self.visitors.append(visitor)
                if len(self.visitors) > 3000:
                    self.visitors.pop(0)
            who = visitor
        else:
            for _ in range(2):
                who = self._some_user()
                if not who.in_session:
                    break
        who.in_session = True
        return self._new_session(who, now, live=True)

    def _feature(self) -> str:
        x = self.rng.random() * self._feature_cum[-1]  # (as choices() with cum_weights)
        return self.features[bisect.bisect(self._feature_cum, x, 0, len(self.features) - 1)]

    def _view_at(self, sess: Session, ts: float) -> Message:
        """A Segment ``page`` call from the web library, or ``screen`` from an app one."""
        user = sess.who
        assert isinstance(user, User)
        page = self.rng.choice(("Home", "Pricing", "Docs", "Dashboard", "Settings"))
        context: dict[str, Any] = {
            "library": {"name": LIBRARIES[sess.platform], "version": "4.4.7"},
            "device": {"type": sess.platform}}
        if sess.app_version:
            context["app"] = {"version": sess.app_version}
        obj = {"type": "page" if sess.platform == "web" else "screen",
               "messageId": self._uuid(), "userId": user.user_id,
               "anonymousId": user.anonymous_id, "name": page,
               "timestamp": self._timestamp(ts, True),
               "properties": {"title": page, "session_id": sess.sid}, "context": context}
        return user.user_id.encode(), orjson.dumps(obj)

    def _funnel_step(self, who: User | Visitor, step: int, ts: float,
                     sess: Session | None = None) -> Message:
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
        if sess is not None and sess.who is not who:  # (the visitor signed up since)
            sess = Session(who, sess.sid, sess.platform, sess.app_version, [], [])
        if sess is not None:
            msg = self._valid(name, ts, session=sess, properties=props)
        else:
            msg = self._valid(name, ts, user=user, visitor=visitor, properties=props)
        # Anonymous visitors never get past the cart: paying needs an account.
        limit = len(self.funnel) - 1 if user is not None else 1
        who.in_funnel = False
        if step + 1 <= limit and self.rng.random() < FUNNEL_CONTINUE[step]:
            who.in_funnel = True
            due = ts + self.rng.uniform(*FUNNEL_PAUSE)
            self._schedule(due, partial(self._funnel_step, who, step + 1, sess=sess))
        return msg

    def _signup(self, sess: Session, ts: float) -> Message:
        """The visitor of ``sess`` signs up: a user from now on, in the same session."""
        visitor = sess.who
        assert isinstance(visitor, Visitor)
        if visitor in self.visitors:
            self.visitors.remove(visitor)
        visitor.in_session = False
        user = self._new_user(visitor)
        user.in_session = True
        self._add_user(user)
        sess.who = user
        props = {"method": self.rng.choice(("email", "google", "apple", "github")),
                 "plan": "free"}
        msg = self._valid("signup", ts, session=sess, properties=props, segment=False)
        if self.rng.random() < IDENTIFY_SHARE:  # the browser library links the visitor
            self._schedule(ts + self.rng.uniform(0.1, 2.0), partial(self._identify, user))
        if self.rng.random() < ACTIVATION_SHARE:
            due = ts + self.rng.uniform(*ACTIVATION_DELAY)
            self._schedule(due, partial(self._activation, user, session=sess))
        return msg

    def _identify(self, user: User, ts: float) -> Message:
        """A Segment ``identify`` call: valid, not an event (counted as ignored)."""
        self.stats["identify"] += 1
        obj = {"type": "identify", "messageId": self._uuid(), "userId": user.user_id,
               "anonymousId": user.anonymous_id, "timestamp": self._timestamp(ts, True),
               "traits": {"plan": user.plan or "free"},
               "context": {"library": {"name": LIBRARIES[user.platform], "version": "4.4.7"}}}
        return user.user_id.encode(), orjson.dumps(obj)

    def _activation(self, user: User, ts: float, session: Session | None = None) -> Message:
        if session is not None and session.who is user:
            return self._valid("activation", ts, session=session,
                               properties={"trigger": "first_dashboard"})
        return self._valid("activation", ts, user=user, properties={"trigger": "first_dashboard"})

    def _subscription(self, sess: Session, ts: float) -> Message:
        """A live subscription move of the user of ``sess``: started, changed, cancelled."""
        user = sess.who
        assert isinstance(user, User)
        if user.plan is None:
            plan = _pick(self.rng, PLANS)[0]
            user.plan, user.mrr = plan, self._price(PLAN_PRICE[plan], user.currency)
            self._converted(user)
            return self._valid("subscription_started", ts, session=sess, properties={
                "plan": plan, "mrr": user.mrr, "currency": user.currency})
        if self.rng.random() < 0.7:
            others = [p for p, _, _ in PLANS if p != user.plan]
            previous, plan = user.plan, self.rng.choice(others)
            user.plan, user.mrr = plan, self._price(PLAN_PRICE[plan], user.currency)
            return self._valid("subscription_changed", ts, session=sess, properties={
                "plan": plan, "previous_plan": previous, "mrr": user.mrr,
                "currency": user.currency})
        props = {"plan": user.plan, "mrr": user.mrr, "currency": user.currency,
                 "reason": self.rng.choice(("price", "missing_feature", "switched", "other"))}
        user.plan, user.mrr = None, 0.0
        return self._valid("subscription_cancelled", ts, session=sess, properties=props)

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

    def _refund(self, now: float) -> Message:
        """Support refunds a recent purchase (server-side: no session)."""
        user, amount, currency, order = self._purchases[
            self.rng.randrange(len(self._purchases))]
        if self.rng.random() < 0.3:  # partial refund
            amount = self._price(amount * self.rng.uniform(0.2, 0.8) / FX.get(currency, 1.0),
                                 currency)
        return self._valid("refund", self._now_ts(now), user=user,
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
        if kind == "schema_performance":  # a technical field of the wrong type or range
            field, wrong = self.rng.choice(BAD_PERFORMANCE)
            props = {"method": "GET", "endpoint": "/api/search", "duration_ms": 120,
                     "status": 200}
            if wrong is None:
                del props[field]
            elif field != "session_id":
                props[field] = wrong
            _, obj = self._message(self.api_event, ts, user=user, segment=False,
                                   properties=props)
            if field == "session_id":
                obj["session_id"] = wrong
            return key, orjson.dumps(obj)
        if kind == "too_large":
            _, obj = self._message("feature_used", ts, user=user, properties={
                "feature": "export", "payload": "x" * (MAX_BYTES + 1000)})
            return key, orjson.dumps(obj)
        if kind == "in_future":
            return self._valid("session_start", now + 3600.0, user=user)
        # too_old: 60 days back, older than the longest window (30d) + 1 day
        return self._valid("session_start", now - 60 * 86400.0, user=user)
