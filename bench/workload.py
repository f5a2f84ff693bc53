"""Seeded benchmark traffic: ``(key, value)`` messages of product events, as bytes.

Pure and reproducible (one ``random.Random(seed)``, times relative to a given
``now``), and cheap enough to generate a million events in seconds. Three shapes:

- :func:`mixed`: the throughput workload. Every cell kind gets work: 14 known names
  plus unknown ones, web/ios/android and unconfigured platforms, purchases and
  refunds in configured and unconfigured currencies, subscriptions, surveys,
  anonymous visitors, 30 % Segment *track* payloads, all three timestamp formats,
  event times spread over the 30-day window, ~0.5 % duplicates and ~0.5 % bad
  events (one of each kind the decoder rejects cheaply). Every message ends up in
  exactly one of processed, invalid or duplicate.
- :func:`distinct_users`: one event per user, ``n`` distinct users spread over the
  30-day window, event ages kept an hour away from every window edge so the
  gauges stay still while a test runs (used for memory and recovery).
- :func:`live`: valid first-seen events stamped ``now`` (freshness), so the sum of
  ``product_events{window="5m"}`` counts exactly the events visible so far.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import orjson

Message = tuple[bytes | None, bytes]

DAY = 86400.0
# Window length -> bucket size (config/leadline.yaml and README): an age within
# [W - g - margin, W + margin] may cross a window edge while a bench phase runs.
WINDOWS = {300.0: 15.0, 3600.0: 300.0, DAY: 7200.0, 7 * DAY: DAY, 30 * DAY: DAY}
STILL_MARGIN = 3600.0

NAMES = (  # (name, weight)
    ("session_start", 30), ("feature_used", 14), ("product_viewed", 14), ("cart_added", 6),
    ("checkout_started", 4), ("purchase", 4), ("refund", 1), ("signup", 3),
    ("activation", 2), ("subscription_started", 1), ("subscription_changed", 1),
    ("subscription_cancelled", 1), ("nps_submitted", 1), ("csat_submitted", 1),
    ("button_clicked", 8), ("page_scrolled", 5),
)
PLATFORMS = ("web", "web", "ios", "android", "tv", None)
CURRENCIES = ("USD", "USD", "EUR", "GBP", "JPY", "CHF")
FEATURES = ("search", "export", "share", "dashboard", "invite", "integrations")
PLANS = ("free", "starter", "pro", "business")
COUNTRIES = ("US", "GB", "DE", "FR", "CA", "IN", "BR", "JP", "CH")
BAD = (  # cheap to build, each rejected for a different reason
    lambda now, i: b"{not json",
    lambda now, i: b"[1, 2]",
    lambda now, i: orjson.dumps({"event_id": f"bad-{i}", "name": "purchase", "user_id": "u",
                                 "timestamp": now, "properties": {"amount": "19.99"}}),
    lambda now, i: orjson.dumps({"event_id": f"bad-{i}", "name": "session_start",
                                 "user_id": "u", "timestamp": now + 3600}),
    lambda now, i: orjson.dumps({"event_id": f"bad-{i}", "name": "session_start",
                                 "user_id": "u", "timestamp": now - 40 * DAY}),
)
_TZ2 = timezone(timedelta(hours=2))


def _names() -> tuple[list[str], list[int]]:
    names, weights = zip(*NAMES, strict=True)
    acc, total = [], 0
    for w in weights:
        total += w
        acc.append(total)
    return list(names), acc


def _age_mixed(rng: random.Random) -> float:
    pick = rng.random()
    if pick < 0.25:
        return rng.uniform(-60, 300)
    if pick < 0.45:
        return rng.uniform(0, 3600)
    if pick < 0.7:
        return rng.uniform(0, DAY)
    return rng.uniform(0, 29 * DAY)


def still_age(rng: random.Random) -> float:
    """An age (s) in the 30-day window, at least STILL_MARGIN away from every window edge."""
    while True:
        age = rng.uniform(2 * 3600 + STILL_MARGIN, 30 * DAY - DAY - STILL_MARGIN)
        if all(not (w - g - STILL_MARGIN < age < w + STILL_MARGIN) for w, g in WINDOWS.items()):
            return age


def _timestamp(ts: float, style: int) -> object:
    if style == 0:
        return round(ts, 3)
    if style == 1:
        return int(ts * 1000)
    if style == 2:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
            "+00:00", "Z")
    return datetime.fromtimestamp(ts, _TZ2).isoformat(timespec="milliseconds")


def _properties(rng: random.Random, name: str) -> dict[str, object] | None:
    if name in ("purchase", "refund"):
        currency = CURRENCIES[rng.randrange(len(CURRENCIES))]
        amount = rng.randrange(100, 90000) if currency == "JPY" else rng.randrange(50, 90000) / 100
        return {"amount": amount, "currency": currency}
    if name.startswith("subscription_"):
        return {"plan": PLANS[rng.randrange(4)], "mrr": rng.choice((0, 12.0, 39.0, 99.0)),
                "currency": "USD"}
    if name == "feature_used":
        return {"feature": FEATURES[rng.randrange(len(FEATURES))]}
    if name == "nps_submitted":
        return {"score": rng.randrange(11)}
    if name == "csat_submitted":
        return {"score": rng.randrange(1, 6)}
    return None


def event(rng: random.Random, seq: str, identity: str, name: str, ts: float,
          platform: str | None) -> bytes:
    """One valid event, canonical (70 %) or Segment track (30 %), as JSON bytes."""
    props = _properties(rng, name)
    anonymous = identity.startswith("anon:")
    stamp = _timestamp(ts, rng.randrange(4))
    if rng.random() < 0.3:
        payload: dict[str, object] = {"type": "track", "messageId": seq, "event": name,
                                      "timestamp": stamp, "properties": props or {}}
        if anonymous:
            payload["anonymousId"] = identity[5:]
        else:
            payload["userId"] = identity
        if platform is not None:
            payload["context"] = {"device": {"type": platform}}
    else:
        payload = {"event_id": seq, "name": name, "timestamp": stamp}
        if anonymous:
            payload["anonymous_id"] = identity[5:]
        else:
            payload["user_id"] = identity
        if platform is not None:
            payload["platform"] = platform
            payload["country"] = COUNTRIES[rng.randrange(len(COUNTRIES))]
        if props:
            payload["properties"] = props
    return orjson.dumps(payload)


def _key(rng: random.Random, identity: str) -> bytes | None:
    pick = rng.random()
    if pick < 0.7:
        return identity.encode()
    return None if pick < 0.85 else f"k{rng.randrange(1 << 20)}".encode()


def mixed(n: int, now: float, seed: int, users: int = 200_000) -> Iterator[Message]:
    """``n`` messages: realistic valid events plus ~0.5 % duplicates and ~0.5 % bad ones."""
    rng = random.Random(seed)
    names, cum = _names()
    platform_of = [PLATFORMS[rng.randrange(len(PLATFORMS))] for _ in range(min(users, 1 << 16))]
    recent: list[Message] = []
    for i in range(n):
        pick = rng.random()
        if pick < 0.005 and recent:
            yield recent[rng.randrange(len(recent))]  # a true duplicate: same bytes, same key
            continue
        if pick < 0.01:
            yield None, BAD[i % len(BAD)](now, i)
            continue
        u = rng.randrange(users)
        identity = f"anon:v{u}" if rng.random() < 0.05 else f"user-{u}"
        name = rng.choices(names, cum_weights=cum)[0]
        platform = platform_of[u & 0xFFFF]
        msg = (_key(rng, identity),
               event(rng, f"e{seed}-{i}", identity, name, now - _age_mixed(rng), platform))
        if len(recent) < 1000:
            recent.append(msg)
        else:
            recent[i % 1000] = msg
        yield msg


def distinct_users(n: int, now: float, seed: int) -> Iterator[Message]:
    """``n`` valid events, each of a different user, over 30 days, away from window edges."""
    rng = random.Random(seed)
    names, cum = _names()
    for i in range(n):
        identity = f"user-{seed}-{i}"
        name = rng.choices(names, cum_weights=cum)[0]
        platform = PLATFORMS[rng.randrange(len(PLATFORMS))]
        yield identity.encode(), event(rng, f"m{seed}-{i}", identity, name,
                                       now - still_age(rng), platform)


def live(rng: random.Random, start: int, n: int, now: float) -> list[Message]:
    """``n`` valid first-seen events stamped ``now`` (ids ``f{start}``.. ``f{start+n-1}``)."""
    names, cum = _names()
    out: list[Message] = []
    for i in range(start, start + n):
        identity = f"user-{rng.randrange(100_000)}"
        name = rng.choices(names, cum_weights=cum)[0]
        platform = PLATFORMS[rng.randrange(len(PLATFORMS))]
        out.append((identity.encode(), event(rng, f"f{i}", identity, name, now, platform)))
    return out
