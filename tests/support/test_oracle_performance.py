"""The sessions and technical-performance oracle itself: hand-computed cases (a few
users, explicit times), the comparison's tolerances, and the properties its generated log
must have (safe times, every scenario present, late events that really move something,
messages that say what the truth says, invalid ones that break the contract)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

import pytest

from tests.support import oracle_performance as op
from tests.support.oracle_performance import Record, Truth

DAY, HOUR, MINUTE = op.DAY, op.HOUR, op.MINUTE
NOW = 20_000 * DAY + 12 * HOUR
NOW_MS = NOW * 1000
_ids = iter(range(10**9))
Corpus = tuple[list[op.Message], list[op.Message], Truth]


def k(metric: str, **labels: str) -> op.Key:
    return (metric, frozenset(labels.items()))


def ago(seconds: float) -> int:
    return NOW_MS - int(seconds * 1000)


def rec(identity: str | None, ms: int, name: str = "page_view", platform: str | None = "web",
        session: str | None = None, late: bool = False, **props: object) -> Record:
    return Record(f"e{next(_ids)}", identity, ms, name, platform, session, dict(props), late)


def sessions(got: dict[op.Key, float]) -> dict[str, float]:
    return {w: got[k(op.SESSIONS, window=w)] for w in op.WINDOWS}


def durations(got: dict[op.Key, float], window: str) -> list[float | None]:
    return [got.get(k(op.DURATION, window=window, quantile=q)) for q in op.SESSION_QUANTILES]


def response(got: dict[op.Key, float], window: str, event: str) -> list[float | None]:
    return [got.get(k(op.RESPONSE, window=window, event=event, quantile=q))
            for q in op.RESPONSE_QUANTILES]


# --------------------------------------------------------------------------- sessions

def test_sessions_count_in_the_windows_of_their_first_event() -> None:
    truth = Truth(records=[
        # u1/s: 2 h ago to 10 s ago: in 24h and beyond only, 7190 s
        rec("u1", ago(2 * HOUR), "session_start", session="s"),
        rec("u1", ago(HOUR), "page_load", session="s", duration_ms=5),
        rec("u1", ago(10), "page_view", "iOS", session="s"),  # another platform: same one
        # u1/t: one event 20 s ago, duration 0
        rec("u1", ago(20), "session_start", session="t"),
        # u2/s: the same id by another user is another session, 600 s
        rec("u2", ago(30 * MINUTE), "screen_view", "android", session="s"),
        rec("u2", ago(20 * MINUTE), "app_crash", "android", session="s"),
        # anon:u2/s: an anonymous id of the same text is another identity
        rec("anon:u2", ago(3 * DAY), "session_start", session="s"),
        # no session id, and spend (not activity) with one: no session
        rec("u3", ago(30), "session_start"),
        rec(None, ago(40), op.SPEND, None, session="s", amount=10.0, currency="USD"),
        rec("u3", ago(50), op.SPEND, None, session="ad", amount=10.0, currency="USD"),
    ])
    got = truth.expected(NOW)
    assert sessions(got) == {"5m": 1, "1h": 2, "24h": 3, "7d": 4, "30d": 4}
    assert durations(got, "5m") == [0, 0, 0]
    assert durations(got, "1h") == [0, 0, 0]                  # [0, 600]: rank 0 each
    assert durations(got, "24h") == [600, 600, 600]          # [0, 600, 7190]: rank 1
    assert durations(got, "7d") == [0, 600, 600]             # [0, 0, 600, 7190]: 1, 2, 2
    assert truth.sessions()[("u1", "s")] == (ago(2 * HOUR), ago(10))
    assert len(truth.sessions()) == 4


def test_a_late_event_moves_a_sessions_first_or_last() -> None:
    first = [
        rec("u", ago(30), "session_start", session="a"), rec("u", ago(10), session="a"),
        rec("v", ago(3 * HOUR), "session_start", session="b"),
        rec("v", ago(2 * HOUR), session="b"),
        rec("w", ago(2 * DAY), "session_start", session="c"),
        rec("w", ago(DAY + HOUR), session="c"),
    ]
    late = [
        rec("u", ago(40 * MINUTE), session="a", late=True),       # first: 5m -> 1h
        rec("v", ago(5), "page_load", session="b", late=True, duration_ms=1),  # last: longer
        rec("w", ago(2 * DAY), "page_view", session="c", late=True),  # its first ms: no change
        rec("w", ago(DAY + 2 * HOUR), session="c", late=True),    # in the middle: no change
    ]
    truth = Truth(records=first + late)
    before, after = truth.first_only().expected(NOW), truth.expected(NOW)
    assert sessions(before) == {"5m": 1, "1h": 1, "24h": 2, "7d": 3, "30d": 3}
    assert sessions(after) == {"5m": 0, "1h": 1, "24h": 2, "7d": 3, "30d": 3}
    assert durations(before, "5m") == [20, 20, 20]
    assert durations(after, "5m") == [None, None, None]
    assert {k(op.DURATION, window="5m", quantile=q) for q in op.SESSION_QUANTILES} <= \
        truth.absent(NOW)
    assert not truth.first_only().absent(NOW) & {k(op.DURATION, window="5m", quantile="0.5")}
    assert durations(after, "1h") == [2390, 2390, 2390]
    # 24h: u (2390 s) and v, 3600 s before and 10795 s after
    assert durations(before, "24h") == [20, 20, 20]
    assert durations(after, "24h") == [2390, 2390, 2390]
    assert durations(before, "30d") == [3600, 3600, 3600]     # [20, 3600, 82800]: rank 1
    assert durations(after, "30d") == [10795, 10795, 10795]   # [2390, 10795, 82800]
    assert truth.sessions()[("w", "c")] == truth.first_only().sessions()[("w", "c")]
    assert (truth.events_first, truth.events_total) == (6, 10)


def test_duplicate_session_ids_across_users_are_separate_sessions() -> None:
    truth = Truth(records=[
        rec("a", ago(HOUR - 600), session="1"), rec("a", ago(HOUR - 660), session="1"),
        rec("b", ago(HOUR - 600), session="1"),
        rec("anon:a", ago(HOUR - 600), session="1"),
        # identity + separator + id collisions must stay apart
        rec("x:y", ago(100), session="z"), rec("x", ago(100), session="y:z"),
        rec("x", ago(90), session="y:z"),
    ])
    got = truth.expected(NOW)
    assert got[k(op.SESSIONS, window="1h")] == 5
    assert got[k(op.SESSIONS, window="5m")] == 2
    assert sorted(Fraction(last - first, 1000) for first, last in truth.sessions().values()) \
        == [0, 0, 0, 10, 60]


def test_quantiles_take_the_value_at_rank_floor_q_times_n_minus_1() -> None:
    values = [Fraction(v) for v in range(100, 0, -1)]  # 1..100, unsorted
    assert op.rank_value(values, "0.5") == 50        # floor(49.5) = 49
    assert op.rank_value(values, "0.9") == 90        # floor(89.1) = 89
    assert op.rank_value(values, "0.95") == 95       # floor(94.05) = 94
    assert op.rank_value(values, "0.99") == 99       # floor(98.01) = 98
    assert op.rank_value([Fraction(7)], "0.99") == 7
    assert op.rank_value([Fraction(1), Fraction(2)], "0.99") == 1  # lower, not interpolated
    # response times: 0 ms counts as a value; durations in seconds
    truth = Truth(records=[
        *(rec(f"u{i}", ago(20 * MINUTE), "page_load", duration_ms=ms)
          for i, ms in enumerate((0, 0, 0, 120, 250.5, 300, 900, 1500, 4000, 60000, 0))),
        rec("u", ago(30), "page_load", duration_ms=0.0),
        rec("u", ago(2 * DAY), "api_request", duration_ms=80),
    ])
    got = truth.expected(NOW)
    # 1h: [0, 0, 0, 0, 0, 0.12, 0.2505, 0.3, 0.9, 1.5, 4, 60]: ranks 5, 10, 10
    assert response(got, "1h", "page_load") == [0.12, 4.0, 4.0]
    assert response(got, "5m", "page_load") == [0.0, 0.0, 0.0]
    assert response(got, "7d", "api_request") == [0.08, 0.08, 0.08]
    assert response(got, "24h", "api_request") == [None, None, None]


def test_error_ratio_from_status_and_error() -> None:
    combos: list[tuple[dict[str, object], bool]] = [
        ({"status": 200}, False), ({"status": 200, "error": True}, True),
        ({"status": 503, "error": False}, True), ({"status": 500}, True),
        ({"status": 499}, False), ({"status": 404, "error": False}, False),
        ({"error": True}, True), ({}, False), ({"status": 599}, True),
        ({"status": 100, "error": False}, False),
    ]
    assert [op.is_error(props) for props, _ in combos] == [want for _, want in combos]
    truth = Truth(records=[
        *(Record(f"c{i}", "u", ago(20 * MINUTE), "api_request", "web", None,
                 {"duration_ms": 10, **props}) for i, (props, _) in enumerate(combos)),
        rec("u", ago(20), "page_load", duration_ms=10, status=502),
        rec("u", ago(20 * HOUR), "page_load", duration_ms=10, error=False),
        rec("u", ago(20 * HOUR), "page_load", duration_ms=10, error=False),
        # on other events the performance fields count for nothing
        rec("u", ago(20), op.CRASH, status=500, error=True),
        rec("u", ago(20), "session_start", duration_ms="n/a", status="oops", error="maybe"),
    ])
    got = truth.expected(NOW)

    def ratio(window: str, event: str) -> float:
        return got[k(op.ERRORS, window=window, event=event)]

    assert ratio("1h", "api_request") == 0.5
    assert ratio("5m", "api_request") == 0.0           # no events: 0, and no quantiles
    assert response(got, "5m", "api_request") == [None, None, None]
    assert ratio("5m", "page_load") == 1.0
    assert ratio("24h", "page_load") == pytest.approx(1 / 3)
    assert ratio("24h", "api_request") == 0.5


def test_crash_free_users_by_platform_and_a_user_crashing_on_two() -> None:
    truth = Truth(records=[
        rec("a", ago(10 * MINUTE), "session_start", "web"),
        rec("a", ago(20 * MINUTE), op.CRASH, "Web"),
        rec("a", ago(30 * MINUTE), op.CRASH, "web"),          # twice: one user
        rec("b", ago(10 * MINUTE), "session_start", "iOS"),
        rec("c", ago(20 * MINUTE), "page_view", "android"),
        rec("c", ago(15 * MINUTE), op.CRASH, "ios"),          # two platforms
        rec("c", ago(25 * MINUTE), op.CRASH, "android"),
        rec("d", ago(20 * MINUTE), "page_view", "tv"),
        rec("e", ago(2 * DAY), "page_view", "web"),
        rec("e", ago(2 * DAY), op.CRASH, None),               # no platform: other
        rec(None, ago(20), op.SPEND, None, amount=1.0, currency="USD"),
    ])
    got = truth.expected(NOW)

    def free(window: str) -> dict[str, float]:
        return {p: got[k(op.CRASH_FREE, window=window, platform=p)]
                for p in op.PLATFORM_LABELS}

    # 1h: active web {a}, ios {b, c}, android {c}, other {d}; crashed a (web), c (ios, android)
    assert free("1h") == {"web": 0.0, "ios": 0.5, "android": 0.0, "other": 1.0, "all": 0.5}
    assert free("5m") == dict.fromkeys(op.PLATFORM_LABELS, 1.0)  # no active user at all
    # 7d: e is active on web and other, crashed on other; all: crashed {a, c, e} of 5
    assert free("7d") == {"web": 0.5, "ios": 0.5, "android": 0.0, "other": 0.5,
                          "all": pytest.approx(0.4)}
    assert truth.active_users(NOW)[("7d", "all")] == 5


def test_absent_quantiles_and_every_series_accounted_for() -> None:
    truth = Truth(records=[rec("u", ago(20 * MINUTE), "page_load", duration_ms=3)])
    got, absent = truth.expected(NOW), truth.absent(NOW)
    assert not set(got) & absent
    assert absent == {
        *(k(op.DURATION, window=w, quantile=q) for w in op.WINDOWS
          for q in op.SESSION_QUANTILES),
        *(k(op.RESPONSE, window=w, event="api_request", quantile=q) for w in op.WINDOWS
          for q in op.RESPONSE_QUANTILES),
        *(k(op.RESPONSE, window="5m", event="page_load", quantile=q)
          for q in op.RESPONSE_QUANTILES),
    }
    n = len(op.WINDOWS)
    assert Counter(name for name, _ in got) == {
        op.SESSIONS: n, op.ERRORS: 2 * n, op.CRASH_FREE: 5 * n, op.RESPONSE: 3 * (n - 1)}
    assert got[k(op.SESSIONS, window="30d")] == 0
    assert got[k(op.CRASH_FREE, window="30d", platform="web")] == 1.0


# --------------------------------------------------------------------------- comparison

def test_mismatches_tolerances_and_series() -> None:
    truth = Truth(records=[
        rec("a", ago(20 * MINUTE), "page_load", session="s", duration_ms=1000, status=500),
        rec("a", ago(10 * MINUTE), "page_load", session="s", duration_ms=0),
        rec("b", ago(20 * MINUTE), op.CRASH, "ios"),
        rec("c", ago(20 * MINUTE), "page_view", "ios"),
    ])
    samples = dict(truth.expected(NOW))
    assert op.mismatches(samples, truth, NOW) == []
    p99 = k(op.RESPONSE, window="1h", event="page_load", quantile="0.99")
    assert samples[p99] == 0.0  # [0, 1]: rank floor(0.99) = 0
    p99_24 = k(op.DURATION, window="24h", quantile="0.99")
    assert samples[p99_24] == 600.0
    samples[p99_24] = 600 * 1.019  # within 2 %
    samples[k(op.CRASH_FREE, window="1h", platform="ios")] *= 1 + 1e-12
    assert op.mismatches(samples, truth, NOW) == []
    samples[p99_24] = 600 * 0.979                                           # 2.1 % off
    samples[p99] = 1e-9                                                     # 0 exactly
    samples[k(op.ERRORS, window="1h", event="page_load")] += 1e-6           # rel 1e-9
    samples[k(op.SESSIONS, window="7d")] += 1                               # exact
    del samples[k(op.CRASH_FREE, window="5m", platform="other")]            # missing
    samples[k(op.RESPONSE, window="1h", event="api_request", quantile="0.5")] = 0.1  # absent
    samples[k(op.RESPONSE, window="1h", event="session_start", quantile="0.5")] = 1  # unknown
    samples[k(op.DURATION, window="1h", quantile="0.75")] = 1.0              # unknown
    samples[k("product_active_users", window="5m", platform="web")] = 3     # not ours
    bad = op.mismatches(samples, truth, NOW)
    assert len(bad) == 8, bad
    assert any(b.startswith(op.DURATION) and "2 %" in b and "'24h'" in b for b in bad)
    assert any(b.startswith(op.RESPONSE) and "1e-09" in b and "2 %" in b for b in bad)
    assert any(b.startswith(op.ERRORS) and "rel 1e-9" in b for b in bad)
    assert any(b.startswith(op.SESSIONS) and "exact" in b for b in bad)
    assert any("missing" in b and "'other'" in b for b in bad)
    assert any("want no sample" in b and "api_request" in b for b in bad)
    assert sum("no such series" in b for b in bad) == 2
    samples = dict(truth.expected(NOW))
    samples[p99_24] = float("nan")
    assert len(op.mismatches(samples, truth, NOW)) == 1


# --------------------------------------------------------------------------- the log

@dataclass
class Wire:
    """What a message says, by the contract's rules for the formats the generator uses."""

    event_id: str
    identity: str | None
    name: str
    ms: int
    platform: str
    session: Any
    props: dict[str, Any]
    obj: dict[str, Any]

    @property
    def place(self) -> str:
        """Where the session id travels: segment (properties), top (or both), props."""
        return ("segment" if "messageId" in self.obj else "top" if "session_id" in self.obj
                else "props")


def _decode(value: bytes) -> Wire:
    obj = json.loads(value)
    segment = "messageId" in obj
    props = obj.get("properties") or {}
    if segment:
        event_id = obj["messageId"]
        name = {"page": "page_view", "screen": "screen_view"}.get(obj["type"]) or obj["event"]
        user, anon = obj.get("userId"), obj.get("anonymousId")
        context = obj.get("context", {})
        raw = obj.get("platform") or context.get("device", {}).get("type")
        if raw is None and "os" in context:
            raw = context["os"]["name"].lower()
        if raw is None and context.get("library", {}).get("name") == "analytics.js":
            raw = "web"
        assert "session_id" not in obj
        session = props.get("session_id")
    else:
        event_id, name = obj["event_id"], obj["name"]
        user, anon, raw = obj.get("user_id"), obj.get("anonymous_id"), obj.get("platform")
        session = obj["session_id"] if "session_id" in obj else props.get("session_id")
    identity = user if user is not None else f"anon:{anon}" if anon is not None else None
    ts = obj["timestamp"]
    if isinstance(ts, str):
        ms = round(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)
    else:
        ms = ts if ts > 1e11 else round(ts * 1000)
    return Wire(event_id, identity, name, ms, op.platform_label(raw), session,
                {key: v for key, v in props.items() if key != "session_id"}, obj)


def _violations(obj: dict[str, Any]) -> list[str]:
    """The contract's session id and performance rules a message breaks."""
    out = []
    props = obj.get("properties")
    props = props if isinstance(props, dict) else {}
    for where, sid in (("top", obj.get("session_id", "absent")),
                       ("props", props.get("session_id", "absent"))):
        if sid != "absent" and not (isinstance(sid, str) and 1 <= len(sid) <= 128):
            out.append(f"{where} session_id")
    name = obj.get("name", obj.get("event"))
    if name in op.PERF_EVENTS:
        d = props.get("duration_ms")
        if isinstance(d, bool) or not isinstance(d, int | float) or d < 0:
            out.append("duration_ms")
        status = props.get("status")
        if "status" in props and (isinstance(status, bool) or not isinstance(status, int)
                                  or not 100 <= status <= 599):
            out.append("status")
        if "error" in props and not isinstance(props["error"], bool):
            out.append("error")
    return out


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return op.generate(NOW, seed=7)


@pytest.fixture(scope="module")
def edges() -> Corpus:
    return op.generate(NOW, seed=8, edges=True)


@pytest.mark.parametrize("variant", ["corpus", "edges"])
def test_messages_say_what_the_truth_says(variant: str, request: pytest.FixtureRequest) -> None:
    first, late, truth = request.getfixturevalue(variant)
    records = {r.event_id: r for r in truth.records}
    seen: Counter[str] = Counter()
    invalid = 0
    for batch, is_late in ((first, False), (late, True)):
        for _, value in batch:
            got = _decode(value)
            event_id = got.event_id
            if event_id.startswith("bad-"):
                invalid += 1
                assert not is_late
                assert _violations(got.obj), value
                continue
            assert not _violations(got.obj), value
            seen[event_id] += 1
            r = records[event_id]
            assert (got.identity, got.name, got.ms, got.session, got.props) \
                == (r.identity, r.name, r.ms, r.session, r.props), value
            if r.name != op.SPEND:
                assert got.platform == op.platform_label(r.platform)
            if seen[event_id] == 1:
                assert r.late == is_late, event_id
    assert set(seen) == set(records)
    assert sum(seen.values()) - len(seen) == truth.duplicates
    assert invalid == truth.invalid["schema"] == 26
    assert len(first) == truth.messages_first and len(late) == truth.messages_late
    assert truth.events_total == len(records)
    assert truth.events_first == sum(not r.late for r in truth.records)


def test_the_log_has_the_shape_asked_for(corpus: Corpus) -> None:
    first, late, truth = corpus
    users = {r.identity for r in truth.records if r.activity}
    assert 600 <= len(users) < op.EXACT_DISTINCT
    assert 6000 <= len(first) <= 15000
    assert 200 <= len(late) <= 1500
    assert all(op.safe(r.ms, NOW) for r in truth.records)
    ages = [NOW - r.ms / 1000 for r in truth.records]
    assert min(ages) < 0 and max(ages) < 29 * DAY and max(ages) > 28 * DAY
    # duplicates ~3 %, keyed differently; unkeyed and mis-keyed messages
    assert 0.02 < truth.duplicates / (len(first) + len(late)) < 0.045
    by_value = Counter(v for _, v in first)
    assert sum(n - 1 for n in by_value.values()) == truth.duplicates_first
    keys = Counter("none" if key is None else "user" if key.decode() in users else "other"
                   for key, _ in first)
    assert min(keys.values()) > 0.1 * len(first)
    # both wire formats, session ids top-level, in properties, both, in Segment calls
    text = b"\n".join(v for _, v in first)
    for needle in (b'"messageId"', b'"event_id"', b'"type": "page"', b'"type": "screen"',
                   b'"os": {"name": "iOS"}', b"analytics.js", b'Z"', b"+05:30",
                   b'"decoy-', b'"anonymous_id"', b'"anonymousId"'):
        assert needle in text, needle
    wires = [_decode(v) for _, v in first]
    places = Counter(w.place for w in wires
                     if not w.event_id.startswith("bad-") and w.session is not None)
    assert min(places.values()) > 200, places
    # session ids: shared by users, 128 characters, not ASCII, separators
    spans = truth.sessions()
    by_sid = Counter(sid for _, sid in spans)
    assert sum(n >= 2 for n in by_sid.values()) >= 5
    assert any(len(sid) == 128 for sid in by_sid)
    assert "sesión-ñ" in by_sid and "a:b" in by_sid and "b" in by_sid
    # sessions: single, short, long (> 1 day), across windows
    lengths = [last - first for first, last in spans.values()]
    assert sum(x == 0 for x in lengths) > 0.1 * len(lengths)
    assert sum(x > DAY * 1000 for x in lengths) >= 10
    crossing = [key for key, (f, last) in spans.items()
                if op.youngest_window(f, NOW) != op.youngest_window(last, NOW)]
    assert len(crossing) >= 50
    # performance events: zeros, heavy tail, statuses of every class, error flags
    perf = [r for r in truth.records if r.name in op.PERF_EVENTS]
    ms: list[Any] = [r.props["duration_ms"] for r in perf]
    assert sum(m == 0 for m in ms) >= 20 and max(ms) > 30_000
    assert any(isinstance(m, float) and m != int(m) for m in ms)
    statuses: list[Any] = [r.props.get("status", 0) for r in perf]
    classes = Counter(status // 100 for status in statuses)
    assert all(classes[c] > 0 for c in range(6)), classes
    flags = Counter(r.props.get("error", "absent") for r in perf)
    assert flags[True] > 0 and flags[False] > 0 and flags["absent"] > 0
    assert not [r for r in perf if r.name == "api_request" and NOW - r.ms / 1000 < 540]
    # crashes: every platform label, a user crashing twice, a user on two platforms
    crashes = [r for r in truth.records if r.name == op.CRASH]
    assert {op.platform_label(r.platform) for r in crashes} == {"web", "ios", "android",
                                                                "other"}
    per_user = Counter(r.identity for r in crashes)
    assert max(per_user.values()) >= 2
    labels: dict[str | None, set[str]] = {}
    for r in crashes:
        labels.setdefault(r.identity, set()).add(op.platform_label(r.platform))
    assert sum(len(v) >= 2 for v in labels.values()) >= 3
    assert [r for r in truth.records if r.name == op.SPEND and r.session is not None]


def test_late_events_really_move_things(corpus: Corpus) -> None:
    _, _, truth = corpus
    before, after = truth.first_only().sessions(), truth.sessions()
    earlier = [key for key in before if after[key][0] < before[key][0]]
    moved = [key for key in earlier
             if op.youngest_window(after[key][0], NOW) != op.youngest_window(
                 before[key][0], NOW)]
    longer = [key for key in before if after[key][1] > before[key][1]]
    assert len(moved) >= 20 and len(longer) >= 10
    assert any(op.youngest_window(before[key][0], NOW) == "5m" for key in moved)
    assert len(set(after) - set(before)) >= 3  # whole late sessions
    b, a = truth.first_only().expected(NOW), truth.expected(NOW)
    changed = {key[0] for key in a if a[key] != b.get(key)}
    assert changed == op.PERFORMANCE
    assert a[k(op.SESSIONS, window="5m")] != b[k(op.SESSIONS, window="5m")]


def test_main_variant_samples(corpus: Corpus) -> None:
    _, _, truth = corpus
    got, absent = truth.expected(NOW), truth.absent(NOW)
    # the one family with no sample: api_request in the 5m window
    assert absent == {k(op.RESPONSE, window="5m", event="api_request", quantile=q)
                      for q in op.RESPONSE_QUANTILES}
    assert got[k(op.ERRORS, window="5m", event="api_request")] == 0.0
    assert all(got[k(op.SESSIONS, window=w)] > 0 for w in op.WINDOWS)
    # most sessions of the last minutes have one event: a 0 median, a positive p90
    assert durations(got, "5m")[0] == 0.0 and (durations(got, "5m")[1] or 0) > 0
    # the regression: the last hour is slower than the day and the month
    for event in op.PERF_EVENTS:
        hour, month = response(got, "1h", event), response(got, "30d", event)
        assert (hour[0] or 0) > 2 * (month[0] or 0), event
    page_5m = response(got, "5m", "page_load")
    assert page_5m[0] is not None and page_5m[0] > 1.5
    for w in op.WINDOWS:
        for event in op.PERF_EVENTS:
            ratio = got[k(op.ERRORS, window=w, event=event)]
            assert ratio == 0 if (w, event) == ("5m", "api_request") else 0 < ratio < 0.2
        free = [got[k(op.CRASH_FREE, window=w, platform=p)] for p in op.PLATFORM_LABELS]
        assert all(0.5 < f < 1 for f in free), (w, free)
    active = truth.active_users(NOW)
    assert max(active.values()) < op.EXACT_DISTINCT


def test_edges_variant(edges: Corpus) -> None:
    _, _, truth = edges
    got, absent = truth.expected(NOW), truth.absent(NOW)
    assert got[k(op.SESSIONS, window="5m")] == 0
    assert absent == {
        *(k(op.DURATION, window="5m", quantile=q) for q in op.SESSION_QUANTILES),
        *(k(op.RESPONSE, window="5m", event=e, quantile=q) for e in op.PERF_EVENTS
          for q in op.RESPONSE_QUANTILES)}
    # sessions reach into the 5m window, and users are active there: crash-free is 1
    assert any(op.youngest_window(last, NOW) == "5m" for _, last in truth.sessions().values())
    assert truth.active_users(NOW)[("5m", "all")] > 10
    assert truth.active_users(NOW)[("1h", "all")] > 50
    for w in ("5m", "1h"):
        assert [got[k(op.CRASH_FREE, window=w, platform=p)] for p in op.PLATFORM_LABELS] \
            == [1.0] * 5
        assert got[k(op.ERRORS, window=w, event="api_request")] > 0 or w == "5m"
    assert all(got[k(op.CRASH_FREE, window="24h", platform=p)] < 1 for p in op.PLATFORM_LABELS)
    assert got[k(op.SESSIONS, window="1h")] > 0


@pytest.mark.parametrize("tod", [0.2 * HOUR, 12 * HOUR, 23.9 * HOUR])
@pytest.mark.parametrize("variant", [False, True])
def test_expectations_hold_for_a_scrape_minutes_away(tod: float, variant: bool) -> None:
    now = 20_100 * DAY + tod
    _, _, truth = op.generate(now, seed=3, users=300, edges=variant)
    want = truth.expected(now), truth.absent(now)
    for drift in (-180.0, 120.0, 180.0):
        assert (truth.expected(now + drift), truth.absent(now + drift)) == want, drift
    assert op.mismatches(want[0], truth, now + 180.0) == []


def test_too_many_users_is_refused() -> None:
    with pytest.raises(ValueError, match="950"):
        op.generate(NOW, users=951)
