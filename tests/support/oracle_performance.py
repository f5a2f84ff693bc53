"""The sessions and technical-performance metrics of SPEC section 3b (issue 16), computed
in one batch from the log.

Written independently of the streaming code (no import from ``aggregators``, ``events``
or ``config``): every value comes straight from the contract's definitions over plain
records, with sets, Fractions and sorting. A session is the (identity, session_id) pair
of its events, its first and last time the min and max of their times; a quantile is the
value at rank floor(q * (n - 1)) of the sorted values; the error ratio and crash-free
users are counted from plain sets per window and platform.

Times
-----
Event times are whole milliseconds (every timestamp format used keeps them exact). Every
event time keeps away from every window edge (age W - grain - margin .. W + margin, for
each window W), so any implementation meeting SPEC's precision rule agrees with "counted
iff age <= W" for the whole test and any scrape a few minutes from ``now``. Every age is
below 29 days (the worker's ``too_old`` limit is 31). With the 5m window's grain of 15 s
and the margin of 240 s, an event in the 5m window is at most 45 s old (or up to 200 s
ahead), and one out of it at least 540 s old.

The log
-------
About 700 users (fewer than 1,000 identities in all, so every distinct count the
crash-free ratio divides by is exact) with sessions over the last 29 days: single-event
sessions (duration 0), short ones, long ones (hours to days), sessions whose first event
is in one window and last in a younger one, session ids that several users share (each
user's is a session of its own), ids that would collide if a worker joined identity and
session id with a separator, 128-character and non-ASCII ids, session ids top-level, in
``properties`` and both (the top-level one wins) and in Segment calls' properties.
``page_load`` and ``api_request`` carry log-normal latencies with a heavy tail and some
0 ms, statuses 1xx..5xx (or none) and ``error`` true/false (or none); both regress in the
last hour. ``app_crash`` comes on every platform label, some users crash twice, some on
two platforms. ``api_request`` never happens in the 5m window, so its response-time
quantiles have no sample there. Duplicates (~3 %), unkeyed and mis-keyed messages, and
``schema`` rejections for every malformed performance field and session id.

:func:`generate` returns two shuffled lists of (key, value) messages (the second one,
*late*, is sent once the first is processed: events that move a session's first event
into an older window, extend its last, land in the middle or on the first millisecond,
late page loads, API calls and crashes, whole late sessions, and re-deliveries) and the
truth.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

DAY = 86400
HOUR = 3600
MINUTE = 60
WINDOWS = {"5m": 300, "1h": 3600, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
GRAIN = {"5m": 15, "1h": 300, "24h": 7200, "7d": DAY, "30d": DAY}
MARGIN = 240.0
#: How far ahead of ``now`` an event may be (the worker rejects beyond 5 minutes).
FUTURE = 200.0
#: The oldest event age (s): below 29 days.
MAX_AGE = 29 * DAY - 600
#: Ages (s) of each window that are in it and in no younger one, every one safe.
ZONES = {"5m": (-FUTURE + 20, 40.0), "1h": (600.0, 3000.0), "24h": (3900.0, 78000.0),
         "7d": (86700.0, 518000.0), "30d": (605100.0, float(MAX_AGE))}
ORDER = tuple(WINDOWS)  # youngest first
PLATFORMS = ("web", "ios", "android")
PLATFORM_LABELS = (*PLATFORMS, "other", "all")
PERF_EVENTS = ("page_load", "api_request")
CRASH = "app_crash"
SPEND = "marketing_spend"
SESSION_QUANTILES = ("0.5", "0.9", "0.99")
RESPONSE_QUANTILES = ("0.5", "0.95", "0.99")
#: The quantile bound: within 2 % (relative) of the exact rank value; 0 exactly.
QUANTILE_TOLERANCE = 0.02
REL_TOLERANCE = 1e-9
#: SPEC v2: distinct counts are exact up to this many identities.
EXACT_DISTINCT = 1000

SESSIONS = "product_sessions"
DURATION = "product_session_duration_seconds"
RESPONSE = "product_response_time_seconds"
ERRORS = "product_request_error_ratio"
CRASH_FREE = "product_crash_free_users_ratio"
PERFORMANCE = frozenset({SESSIONS, DURATION, RESPONSE, ERRORS, CRASH_FREE})
QUANTILES = frozenset({DURATION, RESPONSE})
RATIOS = frozenset({ERRORS, CRASH_FREE})

Key = tuple[str, frozenset[tuple[str, str]]]
Message = tuple[bytes | None, bytes]
Value = float | int | Fraction


def platform_label(raw: str | None) -> str:
    """web / ios / android in any case, anything else and none -> ``other``."""
    return raw.lower() if raw is not None and raw.lower() in PLATFORMS else "other"


def safe(ms: int, now: float) -> bool:
    """An event time whose window membership is certain for ``now`` and any scrape a few
    minutes from it."""
    age = now - ms / 1000
    if age < -FUTURE or age > MAX_AGE:
        return False
    return all(not (length - GRAIN[w] - MARGIN < age < length + MARGIN)
               for w, length in WINDOWS.items())


def youngest_window(ms: int, now: float) -> str | None:
    """The shortest window holding ``ms`` at ``now`` (None: older than every window)."""
    age = now - ms / 1000
    return next((w for w in ORDER if age <= WINDOWS[w]), None)


def rank_value(values: list[Fraction], q: str) -> Fraction:
    """The value of rank floor(q * (n - 1)) (0-based) in sorted order: DDSketch's lower
    quantile, with q * (n - 1) computed in floating point as the sketch computes it."""
    return _at_rank(sorted(values), q)


def _at_rank(ordered: list[Fraction], q: str) -> Fraction:
    return ordered[math.floor(float(q) * (len(ordered) - 1))]


def _number(value: object) -> int | float:
    assert isinstance(value, int | float) and not isinstance(value, bool)
    return value


def _seconds(duration_ms: int | float) -> Fraction:
    return Fraction(duration_ms) / 1000


def is_error(props: dict[str, object]) -> bool:
    """Status >= 500 or error == true (status and error are valid or absent here)."""
    status = props.get("status")
    return (isinstance(status, int) and not isinstance(status, bool) and status >= 500) \
        or props.get("error") is True


@dataclass
class Record:
    """One valid, deduplicated event: activity (with or without a session) or spend."""

    event_id: str
    identity: str | None  # None: a spend without identity
    ms: int
    name: str
    platform: str | None = None
    session: str | None = None
    props: dict[str, object] = field(default_factory=dict)
    late: bool = False

    @property
    def activity(self) -> bool:
        """Makes its user active, may carry a session (anything but marketing spend)."""
        return self.name != SPEND and self.identity is not None


@dataclass
class Truth:
    """The valid, deduplicated events of both lists, and what was sent besides."""

    records: list[Record] = field(default_factory=list)
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
        return sum(not r.late for r in self.records)

    @property
    def events_total(self) -> int:
        """Valid distinct events of both lists."""
        return len(self.records)

    def first_only(self) -> Truth:
        """The truth once only the first list is in (late events left out)."""
        return Truth(records=[r for r in self.records if not r.late],
                     invalid=defaultdict(int, self.invalid),
                     duplicates_first=self.duplicates_first,
                     messages_first=self.messages_first)

    def sessions(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(identity, session_id) -> (first ms, last ms)."""
        spans: dict[tuple[str, str], list[int]] = defaultdict(list)
        for r in self.records:
            if r.activity and r.session is not None:
                assert r.identity is not None
                spans[(r.identity, r.session)].append(r.ms)
        return {key: (min(times), max(times)) for key, times in spans.items()}

    def active_users(self, now: float) -> dict[tuple[str, str], int]:
        """(window, platform) -> distinct active users (the crash-free denominator)."""
        return {key: len(users) for key, users in self._users(now, crashed=False).items()}

    def _users(self, now: float, crashed: bool) -> dict[tuple[str, str], set[str]]:
        out: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in self.records:
            if not r.activity or (crashed and r.name != CRASH):
                continue
            assert r.identity is not None
            age = now - r.ms / 1000
            for window, length in WINDOWS.items():
                if age <= length:
                    out[(window, platform_label(r.platform))].add(r.identity)
                    out[(window, "all")].add(r.identity)
        return out

    # ------------------------------------------------------------------ metrics

    def expected(self, now: float) -> dict[Key, float]:
        """Every sample that must exist at ``now``: (name, labels) -> value."""
        return self._compute(now)[0]

    def absent(self, now: float) -> set[Key]:
        """The (name, labels) of quantile series that must have NO sample at ``now``."""
        return self._compute(now)[1]

    def _compute(self, now: float) -> tuple[dict[Key, float], set[Key]]:
        present: dict[Key, float] = {}
        missing: set[Key] = set()

        def put(metric: str, value: Value | None, **labels: str) -> None:
            key = (metric, frozenset(labels.items()))
            if value is None:
                missing.add(key)
            else:
                present[key] = float(value)

        def inside(ms: int, window: str) -> bool:
            return now * 1000 - ms <= WINDOWS[window] * 1000

        spans = self.sessions()
        active = self._users(now, crashed=False)
        crashed = self._users(now, crashed=True)
        for window in WINDOWS:
            # sessions: counted in the windows that hold their first event
            durations = sorted(Fraction(last - first, 1000) for first, last in spans.values()
                               if inside(first, window))
            put(SESSIONS, len(durations), window=window)
            for q in SESSION_QUANTILES:
                put(DURATION, _at_rank(durations, q) if durations else None,
                    window=window, quantile=q)

            # response time and errors, by event name
            for event in PERF_EVENTS:
                evs = [r for r in self.records if r.name == event and inside(r.ms, window)]
                # sorted as numbers (exact for int and float), then made seconds
                times = [_seconds(ms) for ms in sorted(_number(r.props["duration_ms"])
                                                       for r in evs)]
                errors = sum(is_error(r.props) for r in evs)
                put(ERRORS, Fraction(errors, len(evs)) if evs else 0, window=window,
                    event=event)
                for q in RESPONSE_QUANTILES:
                    put(RESPONSE, _at_rank(times, q) if times else None, window=window,
                        event=event, quantile=q)

            # crash-free users: crashers by the crash's platform, over active users
            for p in PLATFORM_LABELS:
                users, crashers = active[(window, p)], crashed[(window, p)]
                put(CRASH_FREE, 1 - Fraction(len(crashers), len(users)) if users else 1,
                    window=window, platform=p)
        return present, missing


# --------------------------------------------------------------------------- comparison

def _close(got: float, want: float) -> bool:
    return abs(got - want) <= REL_TOLERANCE * max(abs(want), abs(got), 1e-300) or got == want


def quantile_ok(got: float, want: float) -> bool:
    """Within 2 % (relative) of the exact rank value; a 0 exactly."""
    if want == 0:
        return got == 0
    return abs(got - want) <= QUANTILE_TOLERANCE * abs(want)


def mismatches(samples: dict[Key, float], truth: Truth, now: float) -> list[str]:
    """Every sessions / performance sample the scrape gets wrong: missing, wrong (counts
    exactly, ratios within a relative 1e-9, quantiles within 2 % of the exact rank value
    and 0 exactly), present where there must be none, or a series that must not exist."""
    bad = []
    expected, absent = truth._compute(now)

    def where(key: Key) -> str:
        return f"{key[0]}{dict(sorted(key[1]))}"

    for key, want in expected.items():
        got = samples.get(key)
        if got is None:
            bad.append(f"{where(key)}: missing (want {want!r})")
        elif key[0] in QUANTILES:
            if not quantile_ok(got, want):
                bad.append(f"{where(key)}: got {got!r}, want {want!r} (2 %, 0 exactly)")
        elif key[0] in RATIOS:
            if not _close(got, want):
                bad.append(f"{where(key)}: got {got!r}, want {want!r} (rel 1e-9)")
        elif got != want:
            bad.append(f"{where(key)}: got {got!r}, want {want!r} (exact)")
    for key in sorted(absent, key=where):
        if key in samples:
            bad.append(f"{where(key)}: got {samples[key]!r}, want no sample")
    for key in sorted(samples, key=where):
        if key[0] in PERFORMANCE and key not in expected and key not in absent:
            bad.append(f"{where(key)}: got {samples[key]!r}, want no such series")
    return bad


# --------------------------------------------------------------------------- generation

USER_PLATFORMS = ("web", "ios", "android", "web", "ios", "android", "Web", "IOS", "tv", None)
#: Session ids that several users use (each user's is a session of its own).
SHARED_SESSION_IDS = ("1", "0", "abc", "session", "checkout-1", "null", "two words",
                      "sesión-ñ", "a:b", "x|y")
#: Activity inside a session after its first event, weighted.
SESSION_STEPS = (("page_view", 3), ("page_load", 3), ("api_request", 4), ("screen_view", 1),
                 ("feature_used", 1), ("button_clicked", 1))
API_STATUSES = ((200,) * 80 + (201,) * 6 + (204,) * 6
                + (100, 301, 302, 304, 304, 400, 401, 403, 404, 404, 404, 409, 422, 429, 499,
                   500, 502, 503, 504, 599))
PAGE_STATUSES = (200,) * 8 + (304, 304, 404, 500)
FEATURES = ("search", "export", "share")


class _Builder:
    def __init__(self, now: float, seed: int, edges: bool) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.now_ms = int(now * 1000)
        self.seed = seed
        self.edges = edges
        self.truth = Truth()
        self.n = 0
        self.used: dict[str, set[str]] = defaultdict(set)  # identity -> its session ids

    # ---- times

    def ok(self, ms: int) -> bool:
        return safe(ms, self.now)

    def age(self, ms: int) -> float:
        return (self.now_ms - ms) / 1000

    def at_age(self, lo: float, hi: float, tries: int = 80) -> int | None:
        """A safe time with an age (s) in [lo, hi]."""
        for _ in range(tries):
            ms = self.now_ms - int(self.rng.uniform(lo, hi) * 1000)
            if self.ok(ms):
                return ms
        return None

    def in_zone(self, zone: str) -> int | None:
        return self.at_age(*ZONES[zone])

    def after(self, ms: int, lo_s: float, hi_s: float, tries: int = 40) -> int | None:
        """A safe time ``lo_s``..``hi_s`` seconds after ``ms`` (not beyond the future
        limit)."""
        top = self.now_ms + int((FUTURE - 10) * 1000)
        for _ in range(tries):
            cand = ms + max(1, int(self.rng.uniform(lo_s, hi_s) * 1000))
            if cand <= top and self.ok(cand):
                return cand
        return None

    def between(self, lo: int, hi: int, tries: int = 40) -> int | None:
        """A safe time strictly between ``lo`` and ``hi`` (ms)."""
        if hi - lo < 2:
            return None
        for _ in range(tries):
            cand = self.rng.randint(lo + 1, hi - 1)
            if self.ok(cand):
                return cand
        return None

    # ---- names and properties

    def fit(self, name: str, ms: int) -> str:
        """``name``, unless the corpus promises no such event at ``ms``: no ``api_request``
        in the 5m window; with ``edges`` also no ``page_load`` there and no crash in the
        last hour."""
        age = self.age(ms)
        in_5m = age <= WINDOWS["5m"] + MARGIN
        if name == "api_request" and in_5m:
            return "page_view"
        if self.edges and name == "page_load" and in_5m:
            return "page_view"
        if self.edges and name == CRASH and age <= WINDOWS["1h"] + MARGIN:
            return "screen_view"
        return name

    def perf(self, name: str, ms: int) -> dict[str, object]:
        """duration_ms (log-normal, heavy tail, some 0; slower in the last hour), maybe a
        status and an error flag."""
        rng = self.rng
        regressed = self.age(ms) <= WINDOWS["1h"] + MARGIN
        d: float
        if name == "page_load":
            d = 0.0 if rng.random() < 0.015 else rng.lognormvariate(math.log(850), 0.5)
            if rng.random() < 0.03:
                d *= rng.uniform(4, 15)
            d *= 2.5 if regressed else 1.0
        else:
            d = 0.0 if rng.random() < 0.06 else rng.lognormvariate(math.log(80), 0.9)
            if rng.random() < 0.02:
                d *= rng.uniform(10, 60)
            d *= 3.0 if regressed else 1.0
        pick = rng.random()
        duration: int | float = (0 if d == 0 and pick < 0.5 else round(d) if pick < 0.75
                                 else round(d, 2))
        props: dict[str, object] = {"duration_ms": duration}
        if rng.random() < (0.9 if name == "api_request" else 0.3):
            props["status"] = rng.choice(API_STATUSES if name == "api_request"
                                         else PAGE_STATUSES)
        if rng.random() < 0.2:
            props["error"] = rng.random() < 0.15
        if rng.random() < 0.3:
            props["route"] = rng.choice(("/", "/checkout", "/api/v1/cart", "/search?q=x"))
        return props

    # ---- records

    def next_id(self, prefix: str = "pf") -> str:
        self.n += 1
        return f"{prefix}-{self.seed}-{self.n}"

    def add(self, identity: str | None, ms: int, name: str, platform: str | None,
            session: str | None = None, late: bool = False,
            props: dict[str, object] | None = None) -> Record:
        name = self.fit(name, ms)
        if props is None:
            props = {}
            if name in PERF_EVENTS:
                props = self.perf(name, ms)
            elif name == "feature_used":
                props = {"feature": self.rng.choice(FEATURES)}
            elif self.rng.random() < 0.01:
                # performance fields on other events are ignored, whatever they hold
                props = {"duration_ms": self.rng.choice(("n/a", -1, True)),
                         "status": self.rng.choice(("oops", 700, 500)),
                         "error": self.rng.choice(("maybe", 1, True))}
        r = Record(self.next_id(), identity, ms, name, platform, session, props, late)
        self.truth.records.append(r)
        return r

    def session_id(self, identity: str) -> str:
        """A session id this identity has not used yet."""
        rng = self.rng
        for _ in range(50):
            pick = rng.random()
            if pick < 0.12:
                sid = rng.choice(SHARED_SESSION_IDS)
            elif pick < 0.14:
                sid = "L" * 100 + f"{rng.getrandbits(112):028x}"  # 128 characters
            elif pick < 0.3:
                sid = f"sess_{rng.randrange(10**6)}"
            else:
                sid = f"{rng.getrandbits(64):016x}-{rng.getrandbits(32):08x}"
            if sid not in self.used[identity]:
                self.used[identity].add(sid)
                return sid
        raise AssertionError("no unused session id")


def _step_name(rng: random.Random) -> str:
    names, weights = zip(*SESSION_STEPS, strict=True)
    return rng.choices(names, weights)[0]


def _start_name(rng: random.Random, platform: str | None) -> str:
    pick = rng.random()
    if pick < 0.6:
        return "session_start"
    if pick < 0.85:
        return "page_view" if platform_label(platform) in ("web", "other") else "screen_view"
    return "page_load"


def _session(b: _Builder, identity: str, platform: str | None, kind: str, zone: str,
             sid: str | None = None, late: bool = False) -> list[Record]:
    """One session: ``kind`` single (one event), short (minutes), long (hours to days) or
    cross (its last event in a younger window than its first), first event in ``zone``."""
    rng = b.rng
    first = b.in_zone(zone)
    if first is None:
        return []
    sid = sid if sid is not None else b.session_id(identity)

    def plat() -> str | None:
        return platform if rng.random() < 0.92 else rng.choice(PLATFORMS)

    mine = [b.add(identity, first, _start_name(rng, platform), platform, sid, late)]
    times: list[int] = []
    younger = [z for z in ORDER[:ORDER.index(zone)]]
    if kind == "cross" and not younger:
        kind = "short"
    if kind == "short":
        t: int | None = first
        for _ in range(rng.randint(1, 7)):
            t = b.after(t, 1, 240) if t is not None else None
            if t is not None:
                times.append(t)
    elif kind == "long":
        t = first
        for _ in range(rng.randint(2, 9)):
            t = b.after(t, 600, rng.choice((HOUR, 6 * HOUR, 2 * DAY))) if t is not None \
                else None
            if t is not None:
                times.append(t)
    elif kind == "cross":
        z = rng.choice(younger)
        for _ in range(rng.randint(1, 3)):
            t = b.in_zone(z)
            if t is not None and t > first:
                times.append(t)
    for t in sorted(times):
        mine.append(b.add(identity, t, _step_name(rng), plat(), sid, late))
    return mine


def _zone(rng: random.Random, edges: bool) -> str:
    zones, weights = ("5m", "1h", "24h", "7d", "30d"), (6, 10, 22, 27, 35)
    while True:
        z = rng.choices(zones, weights)[0]
        if not (edges and z == "5m"):
            return z


def _kind(rng: random.Random, zone: str) -> str:
    if zone == "5m":  # most sessions of the last minute have one event so far
        return "single" if rng.random() < 0.75 else "short"
    pick = rng.random()
    return ("single" if pick < 0.2 else "short" if pick < 0.7 else "long" if pick < 0.82
            else "cross")


def _user(b: _Builder, identity: str) -> list[list[Record]]:
    """One user's sessions, loose events and crashes in the first list."""
    rng = b.rng
    platform = rng.choice(USER_PLATFORMS)
    sessions = []
    for _ in range(rng.choice((1, 1, 2, 2, 3, 3, 4, 6))):
        zone = _zone(rng, b.edges)
        mine = _session(b, identity, platform, _kind(rng, zone), zone)
        if mine:
            sessions.append(mine)
    # events without a session: page loads, API calls, other activity
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        t = b.in_zone(_zone(rng, False))
        if t is not None:
            name = rng.choice(("page_load", "api_request", "api_request", "feature_used",
                               "page_view"))
            b.add(identity, t, name, platform)
    # crashes: some users crash twice, some of them on two platforms
    if rng.random() < 0.08:
        crash_platforms = [platform]
        if rng.random() < 0.4:
            crash_platforms.append(platform if rng.random() < 0.4 else
                                   rng.choice([p for p in (*PLATFORMS, "tv")
                                               if platform_label(p) != platform_label(
                                                   platform)]))
        for p in crash_platforms:
            t = b.in_zone(_zone(rng, False))
            if t is None:
                continue
            with_session = sessions and rng.random() < 0.4
            sid = rng.choice(sessions)[0].session if with_session else None
            b.add(identity, t, CRASH, p, sid)
    return sessions


def _late(b: _Builder, identity: str, mine: list[Record]) -> None:
    """A late event for one of this identity's sessions: earlier than its first (into an
    older window), later than its last (longer), in the middle, or on its first ms."""
    rng = b.rng
    sid = mine[0].session
    times = [r.ms for r in b.truth.records if r.identity == identity and r.session == sid]
    first, last = min(times), max(times)
    platform = mine[0].platform
    kind = rng.choice(("earlier", "earlier", "earlier", "later", "later", "middle", "tie"))
    t: int | None = None
    if kind == "earlier":
        zone = youngest_window(first, b.now)
        assert zone is not None
        older = ORDER[min(ORDER.index(zone) + 1, len(ORDER) - 1)]
        lo, hi = ZONES[older]
        t = b.at_age(max(lo, b.age(first) + 1), hi) if b.age(first) + 1 < hi else None
    elif kind == "later":
        t = b.at_age(-FUTURE + 20, b.age(last) - 0.001)
        t = t if t is not None and t > last else None
    elif kind == "middle":
        t = b.between(first, last)
    else:
        t = first
    if t is not None:
        b.add(identity, t, _step_name(rng) if kind != "earlier" else "session_start",
              platform, sid, late=True)


def _specials(b: _Builder) -> list[str]:
    """The cases that must be in every log; their identities."""
    s = b.seed
    out: list[str] = []

    def add_session(identity: str, sid: str, zone: str, kind: str = "short",
                    platform: str | None = "web") -> None:
        b.used[identity].add(sid)
        _session(b, identity, platform, kind, zone, sid)
        out.append(identity)

    # the same session id by two users, by a user and an anonymous id of the same text
    for who in (f"pair-{s}-a", f"pair-{s}-b", f"twin-{s}", f"anon:twin-{s}"):
        add_session(who, "checkout-1", "1h")
    # ids that collide if identity and session id are joined by a separator
    add_session(f"sep-{s}", "a:b", "24h")
    add_session(f"sep-{s}:a", "b", "24h")
    add_session(f"bar-{s}", "a|b", "24h", platform="ios")
    add_session(f"bar-{s}|a", "b", "24h", platform="ios")
    add_session(f"sl-{s}", "a/b", "7d", platform="android")
    add_session(f"sl-{s}/a", "b", "7d", platform="android")
    # a session of two weeks, and one from the 30d window into the last minutes
    who = f"long-{s}"
    b.used[who].add("tab-left-open")
    t0 = b.at_age(15 * DAY, 16 * DAY)
    t1 = b.at_age(ZONES["1h"][0], ZONES["1h"][1])
    if t0 is not None and t1 is not None:
        b.add(who, t0, "session_start", "web", "tab-left-open")
        b.add(who, t0 + 2500, "page_load", "web", "tab-left-open")
        b.add(who, t1, "api_request", "web", "tab-left-open")
        out.append(who)
    add_session(f"cross-{s}", "spans", "30d", kind="cross", platform="ios")
    # crashes on two platforms by one user, twice on one platform by another
    recent, older = ("24h", "7d") if b.edges else ("5m", "1h")
    for who, crashes in ((f"crash2-{s}", (("ios", recent), ("android", recent))),
                         (f"crash1-{s}", (("web", recent), ("web", older))),
                         (f"crashtv-{s}", (("tv", recent), ("Android", older)))):
        for p, zone in crashes:
            t = b.in_zone(zone)
            if t is not None:
                b.add(who, t, CRASH, p)
        out.append(who)
    return out


def _spends(b: _Builder, identities: list[str]) -> None:
    """Spend carrying a session id (never a session, never active), with and without an
    identity."""
    for i in range(6):
        t = b.in_zone(ORDER[i % len(ORDER)])
        if t is None:
            continue
        identity = identities[i] if i % 2 else None
        b.add(identity, t, SPEND, None, f"ad-{b.seed}-{i}",
              props={"amount": round(b.rng.uniform(5, 500), 2), "currency": "USD",
                     "channel": "google"})


# --------------------------------------------------------------------------- wire format

def _timestamp(ms: int, rng: random.Random) -> object:
    style = rng.randrange(4)
    if style == 0:
        return round(ms / 1000, 3)
    if style == 1:
        return ms
    tz = UTC if style == 2 else timezone(timedelta(hours=5, minutes=30))
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


def _identity_fields(identity: str | None, segment: bool,
                     rng: random.Random) -> dict[str, object]:
    if identity is None:
        return {}
    if identity.startswith("anon:"):
        return {"anonymousId" if segment else "anonymous_id": identity.removeprefix("anon:")}
    out: dict[str, object] = {"userId" if segment else "user_id": identity}
    if rng.random() < 0.05:  # an anonymous id beside the user id: the user id counts
        out["anonymousId" if segment else "anonymous_id"] = f"device-{rng.getrandbits(40):x}"
    return out


def _payload(r: Record, rng: random.Random) -> bytes:
    """Canonical (session id top-level, in properties, or both: top-level wins) or a
    Segment / RudderStack call (session id in properties)."""
    props = dict(r.props)
    obj: dict[str, object]
    if rng.random() < 0.3:
        if r.session is not None:
            props["session_id"] = r.session
        if r.name in ("page_view", "screen_view") and rng.random() < 0.6:
            obj = {"type": "page" if r.name == "page_view" else "screen",
                   "messageId": r.event_id}
        else:
            obj = {"type": "track", "messageId": r.event_id, "event": r.name}
        if props or rng.random() < 0.5:
            obj["properties"] = props
        obj["timestamp"] = _timestamp(r.ms, rng)
        obj |= _identity_fields(r.identity, True, rng)
        context = _segment_context(r.platform, rng) if r.name != SPEND else None
        if context is not None and rng.random() < 0.85:
            obj["context"] = context
        elif r.platform is not None:
            obj["platform"] = r.platform
    else:
        obj = {"event_id": r.event_id, "name": r.name, "timestamp": _timestamp(r.ms, rng)}
        obj |= _identity_fields(r.identity, False, rng)
        if r.platform is not None:
            obj["platform"] = r.platform
        if r.session is not None:
            pick = rng.random()
            if pick < 0.6:
                obj["session_id"] = r.session
            elif pick < 0.9:
                props["session_id"] = r.session
            else:  # both: the top-level one is the session
                obj["session_id"] = r.session
                props["session_id"] = f"decoy-{rng.getrandbits(32):08x}"
        if props:
            obj["properties"] = props
    return json.dumps(obj).encode()


def _invalid(b: _Builder) -> list[bytes]:
    """``schema`` rejections, each valid but for one performance field or session id."""
    t = b.in_zone("1h") or b.now_ms
    s = b.seed

    def canonical(i: int, name: str, props: object = None, **top: object) -> dict[str, object]:
        obj: dict[str, object] = {"event_id": f"bad-pf-{s}-{i}", "name": name,
                                  "user_id": f"bad-user-{s}-{i}", "timestamp": t,
                                  "platform": "web"}
        if props is not None:
            obj["properties"] = props
        return obj | top

    def segment(i: int, name: str, props: dict[str, object]) -> dict[str, object]:
        return {"type": "track", "messageId": f"bad-pf-{s}-{i}", "event": name,
                "userId": f"bad-user-{s}-{i}", "timestamp": t, "properties": props,
                "context": {"os": {"name": "iOS"}}}

    bad = [
        canonical(0, "page_load", {}),                              # duration_ms missing
        canonical(1, "api_request"),                                # no properties at all
        canonical(2, "page_load", {"duration_ms": -1}),
        canonical(3, "api_request", {"duration_ms": -0.5, "status": 200}),
        canonical(4, "api_request", {"duration_ms": "250"}),
        canonical(5, "page_load", {"duration_ms": True}),
        canonical(6, "api_request", {"duration_ms": None}),
        canonical(7, "api_request", {"duration_ms": 12, "status": 99}),
        canonical(8, "api_request", {"duration_ms": 12, "status": 600}),
        canonical(9, "api_request", {"duration_ms": 12, "status": "500"}),
        canonical(10, "api_request", {"duration_ms": 12, "status": True}),
        canonical(11, "api_request", {"duration_ms": 12, "status": 200.5}),
        canonical(12, "page_load", {"duration_ms": 300, "error": "yes"}),
        canonical(13, "api_request", {"duration_ms": 30, "status": 500, "error": 1}),
        canonical(14, "session_start", None, session_id=7),
        canonical(15, "session_start", None, session_id=""),
        canonical(16, "page_view", {"session_id": 7}),
        canonical(17, CRASH, None, session_id="x" * 129),
        canonical(18, "page_view", None, session_id={"id": "a"}),
        canonical(19, "session_start", {"session_id": "fine"}, session_id=7),
        canonical(20, "feature_used", {"feature": "search", "session_id": ["a"]}),
        segment(21, "page_load", {"duration_ms": 12, "session_id": 7}),
        segment(22, "session_start", {"session_id": ""}),
        segment(23, "api_request", {"duration_ms": "fast", "session_id": "ok"}),
        segment(24, "api_request", {"status": 200}),
        segment(25, "page_load", {"duration_ms": 10, "error": "true"}),
    ]
    b.truth.invalid["schema"] += len(bad)
    return [json.dumps(x).encode() for x in bad]


# --------------------------------------------------------------------------- generate

def generate(now: float, seed: int = 1, users: int = 700, edges: bool = False
             ) -> tuple[list[Message], list[Message], Truth]:
    """(first list, late list, truth): messages (key, value) shuffled within each list.

    About 700 users make ~8,500 messages first and ~450 late (fewer than 1,000
    identities in all: ``users`` may be at most 950). Send the late list once the first
    one is processed (``truth.first_only()`` is the state in between). In both variants
    ``api_request`` has no event in the 5m window (its response-time quantiles have no
    sample there, its error ratio is 0). ``edges=True``: no session's first event is in
    the 5m window (no session-duration sample there, though sessions reach into it), no
    ``page_load`` in the 5m window either, and no crash in the last hour (crash-free
    users 1 on every platform in 5m and 1h).
    """
    if users > 950:
        raise ValueError("at most 950 users: distinct counts are exact below 1,000")
    b = _Builder(now, seed, edges)
    rng = b.rng
    identities = _specials(b)
    sessions: list[tuple[str, list[Record]]] = []
    for u in range(users):
        identity = f"anon:pfv-{seed}-{u}" if u % 8 == 3 else f"pf-{seed}-{u}"
        identities.append(identity)
        sessions.extend((identity, s) for s in _user(b, identity))
    _spends(b, identities)

    # the late list: sessions extended, perf events, crashes, whole sessions
    for identity, mine in sessions:
        if rng.random() < 0.12:
            _late(b, identity, mine)
    for identity in identities:
        pick = rng.random()
        if pick < 0.04:
            t = b.in_zone(_zone(rng, False))
            if t is not None:
                b.add(identity, t, rng.choice(PERF_EVENTS), rng.choice(USER_PLATFORMS),
                      late=True)
        elif pick < 0.05:
            t = b.in_zone(_zone(rng, False))
            if t is not None:
                b.add(identity, t, CRASH, rng.choice(USER_PLATFORMS), late=True)
        elif pick < 0.075:
            zone = _zone(rng, edges)
            _session(b, identity, rng.choice(USER_PLATFORMS), _kind(rng, zone), zone,
                     late=True)

    first: list[Message] = []
    late: list[Message] = []
    truth = b.truth
    for r in truth.records:
        value = _payload(r, rng)
        style = rng.random()
        key = (r.identity.encode() if r.identity is not None and style < 0.6
               else None if style < 0.8 else f"k{rng.randrange(10**6)}".encode())
        target = late if r.late else first
        target.append((key, value))
        if rng.random() < 0.03:  # a duplicate, keyed differently half of the time
            target.append((key if rng.random() < 0.5 else f"dup-{r.event_id}".encode(),
                           value))
            if r.late:
                truth.duplicates_late += 1
            else:
                truth.duplicates_first += 1
        elif not r.late and rng.random() < 0.01:  # re-delivered with the late ones
            late.append((None if rng.random() < 0.5 else key, value))
            truth.duplicates_late += 1
    first.extend((None if i % 2 else b"bad", v) for i, v in enumerate(_invalid(b)))
    rng.shuffle(first)
    rng.shuffle(late)
    truth.messages_first, truth.messages_late = len(first), len(late)
    return first, late, truth
