"""A generated event log and a plain batch computation of what the metrics must say.

Written independently of the streaming code: no import from ``aggregators`` or
``events``. Event ages avoid the edge of every window (by more than the bucket size
plus a margin), so *any* implementation that meets SPEC's precision rule must agree
with "counted iff age <= W" for the whole duration of a test.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

WINDOWS = {"5m": 300, "1h": 3600, "24h": 86400, "7d": 604800, "30d": 2592000}
GRAIN = {"5m": 15, "1h": 300, "24h": 7200, "7d": 86400, "30d": 86400}
PLATFORMS = ("web", "ios", "android")
CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CAD", "AUD", "BRL", "INR")
KNOWN = ("signup", "activation", "session_start", "feature_used", "product_viewed", "cart_added",
         "checkout_started", "purchase", "refund", "subscription_started",
         "subscription_changed", "subscription_cancelled", "nps_submitted", "csat_submitted",
         "page_view", "screen_view", "marketing_spend",
         "page_load", "api_request", "app_crash")
MARGIN = 240.0


def safe_age(rng: random.Random) -> float:
    """An event age (seconds, may be slightly negative) away from every window edge."""
    while True:
        pick = rng.random()
        if pick < 0.05:
            age = -rng.uniform(0, 200)  # slightly in the future: allowed (< 5 min)
        elif pick < 0.3:
            age = rng.uniform(0, 60)
        elif pick < 0.5:
            age = rng.uniform(0, 3600)
        elif pick < 0.75:
            age = rng.uniform(0, 86400)
        else:
            age = rng.uniform(0, 31 * 86400 - 3600)
        if all(not (w - GRAIN[k] - MARGIN < age < w + MARGIN) for k, w in WINDOWS.items()):
            return age


@dataclass
class Truth:
    """Valid, deduplicated events as plain tuples, plus the expected rejections."""

    events: list[dict] = field(default_factory=list)
    invalid: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0
    sent: int = 0

    def expected(self, now: float) -> dict[tuple[str, frozenset], float]:
        """Metric samples (name, labels) -> value, for the scrape at ``now``."""
        out: dict[tuple[str, frozenset], float] = {}
        for window, length in WINDOWS.items():
            inside = [e for e in self.events if now - e["ts"] <= length]
            users: dict[str, set] = defaultdict(set)
            converters: dict[str, set] = defaultdict(set)
            names: dict[str, int] = defaultdict(int)
            revenue: dict[str, Decimal] = defaultdict(Decimal)
            for e in inside:
                p = e["platform"] if e["platform"] in PLATFORMS else "other"
                for label in (p, "all"):
                    users[label].add(e["identity"])
                    if e["name"] == "purchase":
                        converters[label].add(e["identity"])
                names[e["name"] if e["name"] in KNOWN else "other"] += 1
                if e["name"] == "purchase":
                    c = e["currency"] if e["currency"] in CURRENCIES else "other"
                    revenue[c] += Decimal(e["amount"])
            w = ("window", window)
            for p in (*PLATFORMS, "other", "all"):
                labels = frozenset({w, ("platform", p)})
                out[("product_active_users", labels)] = len(users[p])
                out[("product_conversion_ratio", labels)] = (
                    len(converters[p]) / len(users[p]) if users[p] else 0.0)
            for name in (*KNOWN, "other"):
                out[("product_events", frozenset({w, ("name", name)}))] = names[name]
            out[("product_conversions", frozenset({w}))] = names["purchase"]
            for c in (*CURRENCIES, "other"):
                labels = frozenset({w, ("currency", c)})
                out[("product_revenue", labels)] = float(revenue[c])
                out[("product_arpu", labels)] = (
                    float(revenue[c]) / len(users["all"]) if users["all"] else 0.0)
        for p in (*PLATFORMS, "other", "all"):
            day = out[("product_active_users", frozenset({("window", "24h"), ("platform", p)}))]
            month = out[("product_active_users", frozenset({("window", "30d"), ("platform", p)}))]
            out[("product_stickiness_ratio", frozenset({("platform", p)}))] = (
                day / month if month else 0.0)
        return out


def _timestamp(ts: float, rng: random.Random) -> object:
    style = rng.randrange(4)
    if style == 0:
        return round(ts, 3)
    if style == 1:
        return int(ts * 1000)
    tz = UTC if style == 2 else timezone(timedelta(hours=2))
    text = datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z") if style == 2 else text


def generate(now: float, seed: int = 1, users: int = 3000, events: int = 15000,
             bad_per_reason: int = 7) -> tuple[list[tuple[bytes | None, bytes]], Truth]:
    """Messages (key, value) to publish, shuffled, and the truth they must produce."""
    rng = random.Random(seed)
    truth = Truth()
    messages: list[tuple[bytes | None, bytes]] = []
    user_platform = {f"user-{i}": rng.choice((*PLATFORMS, "tv", None)) for i in range(users)}
    names = ("session_start",) * 6 + ("feature_used", "product_viewed", "purchase", "purchase",
                                      "signup", "button_clicked", "cart_added")
    for i in range(events):
        anonymous = rng.random() < 0.05
        uid = f"user-{rng.randrange(users)}"
        identity = f"anon:visitor-{rng.randrange(users)}" if anonymous else uid
        platform = user_platform[uid] if rng.random() < 0.9 else rng.choice(PLATFORMS)
        name = rng.choice(names)
        ts = now - safe_age(rng)
        props: dict[str, object] = {}
        record = {"identity": identity, "ts": ts, "name": name, "platform": platform}
        if name == "purchase":
            amount = round(rng.uniform(0.5, 900), 2)
            currency = rng.choice((*CURRENCIES[:4], "CHF"))
            props = {"amount": amount, "currency": currency}
            record |= {"amount": repr(amount), "currency": currency}
        elif name == "feature_used":
            props = {"feature": rng.choice(("search", "export", "share"))}
        event_id = f"evt-{seed}-{i}"
        if rng.random() < 0.3:  # Segment / RudderStack track payload
            payload: dict[str, object] = {"type": "track", "messageId": event_id, "event": name,
                                          "timestamp": _timestamp(ts, rng), "properties": props}
            if anonymous:
                payload["anonymousId"] = identity.removeprefix("anon:")
            else:
                payload["userId"] = uid
            if platform is not None:
                payload["context"] = {"device": {"type": platform}}
        else:
            payload = {"event_id": event_id, "name": name, "timestamp": _timestamp(ts, rng)}
            if anonymous:
                payload["anonymous_id"] = identity.removeprefix("anon:")
            else:
                payload["user_id"] = uid
            if platform is not None:
                payload["platform"] = platform
            if props:
                payload["properties"] = props
        value = json.dumps(payload).encode()
        key_style = rng.random()
        key = (identity.encode() if key_style < 0.6 else None if key_style < 0.8
               else f"k{rng.randrange(10**6)}".encode())
        messages.append((key, value))
        truth.events.append(record)
        if rng.random() < 0.04:  # a duplicate, keyed differently half of the time
            other_key = key if rng.random() < 0.5 else f"dup{i}".encode()
            messages.append((other_key, value))
            truth.duplicates += 1
    for reason, make in BAD.items():
        for j in range(bad_per_reason):
            messages.append((None if j % 2 else b"bad", make(now, j)))
            truth.invalid[reason] += 1
    rng.shuffle(messages)
    truth.sent = len(messages)
    return messages, truth


def _valid(now: float, j: int, **changes: object) -> bytes:
    event = {"event_id": f"bad-{j}-{len(changes)}-{next(iter(changes), '')}",
             "name": "session_start", "user_id": f"bad-user-{j}", "timestamp": now}
    event.update(changes)
    return json.dumps(event).encode()


BAD = {
    "not_json": lambda now, j: [b"{not json", b"\xff\xfe garbage", b'{"a": NaN}',
                                b'{"event_id": "x"', b""][j % 5] or b" ",
    "not_object": lambda now, j: [b"[1, 2]", b'"text"', b"42", b"null"][j % 4],
    "schema": lambda now, j: [
        _valid(now, j, event_id=None),
        _valid(now, j, name="has a\nline break"),
        _valid(now, j, user_id=None),
        _valid(now, j, timestamp="2026-01-01T00:00:00"),
        _valid(now, j, name="purchase", properties={"amount": "19.99", "currency": "USD"}),
        _valid(now, j, name="nps_submitted", properties={"score": 11}),
        _valid(now, j, properties=[1]),
    ][j % 7],
    "too_large": lambda now, j: _valid(now, j, properties={"blob": "x" * (65 * 1024 + j)}),
    "in_future": lambda now, j: _valid(now, j, timestamp=now + 3600 + j),
    "too_old": lambda now, j: _valid(now, j, timestamp=now - 40 * 86400 - j),
}
