"""Bytes off the wire -> a validated :class:`Event`, an :class:`Ignored` call, or a
:class:`Rejection` saying why.

Accepts the canonical leadline form and Segment / RudderStack calls exactly as their
libraries send them (SPEC section 1):

- ``track`` is an event; its name may be an alias of a configured one (``Order
  Completed`` -> ``purchase``) and counts under that name;
- ``page`` and ``screen`` are the events ``page_view`` and ``screen_view``;
- ``identify``, ``alias`` and ``group`` are valid but not events (:class:`Ignored`).

Validation is strict: a wrong type is a ``schema`` rejection, never a silent coercion
("19.99" is not an amount), so a bad producer is visible in the DLQ.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import orjson

from leadline.config.definitions import MAX_EVENT_NAME, Definitions, is_event_name
from leadline.events.model import Event, Ignored
from leadline.events.rejection import Reason, Rejection

MAX_BYTES = 64 * 1024
FUTURE_TOLERANCE = 300.0
# Epoch numbers above this are milliseconds: 1e11 seconds is the year 5138.
_MS_THRESHOLD = 1e11
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z"
)
_CURRENCY = re.compile(r"^[A-Za-z]{3}\Z")
#: Segment / RudderStack call types that are events, and the name each one counts as.
_ACTIVITY_CALLS = {"page": "page_view", "screen": "screen_view"}
#: Valid calls that are not events.
_IGNORED_CALLS = frozenset({"identify", "alias", "group"})
#: ``context.os.name`` values that name a platform (lower-cased).
_OS_PLATFORMS = {"ios": "ios", "iphone os": "ios", "ipados": "ios", "android": "android"}
#: ``context.library.name`` of the browser libraries: their events are ``web``.
_WEB_LIBRARIES = ("analytics.js", "analytics-next", "RudderLabs JavaScript SDK")
#: Where a money event's amount may come from, in order (Segment e-commerce sends
#: ``revenue`` and ``total``).
_AMOUNT_FIELDS = ("amount", "revenue", "total")
_COUNTRY = re.compile(r"^[A-Za-z]{2}\Z")


class _Invalid(Exception):
    pass


def _string(value: Any, field: str, max_len: int = 128) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_len:
        raise _Invalid(f"{field}: must be a string of 1..{max_len} characters")
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"{field}: must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise _Invalid(f"{field}: must be finite and >= 0")
    return value


def parse_timestamp(value: Any) -> float:
    """RFC 3339 with an offset, or epoch seconds / milliseconds -> epoch seconds."""
    if isinstance(value, bool):
        raise _Invalid("timestamp: must be RFC 3339 text or epoch seconds/milliseconds")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            raise _Invalid("timestamp: epoch must be finite and positive")
        return value / 1000.0 if value >= _MS_THRESHOLD else float(value)
    if isinstance(value, str) and len(value) <= 40:
        m = _RFC3339.match(value)
        if m:
            date, time_, frac, offset = m.groups()
            text = f"{date}T{time_}{('.' + frac[:6].ljust(6, '0')) if frac else ''}"
            text += "+00:00" if offset in ("Z", "z") else offset
            try:
                return datetime.fromisoformat(text).timestamp()
            except ValueError as exc:
                raise _Invalid(f"timestamp: {exc}") from None
    raise _Invalid("timestamp: must be RFC 3339 with an offset, or epoch seconds/milliseconds")


class Decoder:
    """Validates events against the definitions (which names need which properties)."""

    def __init__(self, definitions: Definitions) -> None:
        e = definitions.events
        self._max_age = definitions.oldest_event
        self._spend_event = e.marketing_spend
        self._money_events = {e.purchase, e.refund, e.marketing_spend}
        self._subscription_events = {
            e.subscription_started, e.subscription_changed, e.subscription_cancelled
        }
        self._feature_event = e.feature
        self._performance_events = frozenset(definitions.performance.events)
        self._alias_of = definitions.alias_of
        self._surveys = {s.event: (s.min, s.max) for s in definitions.surveys.values()}

    def decode(self, raw: bytes | None, now: float) -> Event | Ignored | Rejection:
        """Decode one message value. Never raises."""
        if raw is None:
            return Rejection(Reason.NOT_JSON, "empty message (no value)")
        if len(raw) > MAX_BYTES:
            return Rejection(Reason.TOO_LARGE, f"{len(raw)} bytes, more than {MAX_BYTES}")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Rejection(Reason.NOT_JSON, str(exc)[:200])
        if not isinstance(obj, dict):
            return Rejection(Reason.NOT_OBJECT, f"JSON {type(obj).__name__}, expected an object")
        try:
            event = self._validate(obj)
        except _Invalid as exc:
            return Rejection(Reason.SCHEMA, str(exc))
        if isinstance(event, Ignored):
            return event
        if event.ts > now + FUTURE_TOLERANCE:
            return Rejection(Reason.IN_FUTURE, f"event time is {event.ts - now:.0f}s ahead")
        if event.ts < now - self._max_age:
            days = (now - event.ts) / 86400
            return Rejection(Reason.TOO_OLD, f"event time is {days:.1f} days old")
        return event

    def _validate(self, obj: dict[str, Any]) -> Event | Ignored:
        if "messageId" in obj or ("event" in obj and "name" not in obj):
            return self._segment(obj)
        return self._canonical(
            event_id=obj.get("event_id"), name=obj.get("name"), user_id=obj.get("user_id"),
            anonymous_id=obj.get("anonymous_id"), timestamp=obj.get("timestamp"),
            platform=obj.get("platform"), country=obj.get("country"),
            app_version=obj.get("app_version"), properties=obj.get("properties"),
            session_id=obj.get("session_id"),
        )

    def _segment(self, obj: dict[str, Any]) -> Event | Ignored:
        kind = obj.get("type", "track")
        if not isinstance(kind, str):
            raise _Invalid(f"type: must be a string, got {type(kind).__name__}")
        if kind in _IGNORED_CALLS:
            return self._ignored(kind, obj)
        if kind == "track":
            name = obj.get("event")
        elif kind in _ACTIVITY_CALLS:
            name = _ACTIVITY_CALLS[kind]
        else:
            calls = ", ".join(sorted({"track", *_ACTIVITY_CALLS, *_IGNORED_CALLS}))
            raise _Invalid(f"type: {kind!r} is not a Segment / RudderStack call ({calls})")
        context = obj.get("context") or {}
        if not isinstance(context, dict):
            raise _Invalid("context: must be an object")
        device, os_, app, location, library = (
            context[k] if isinstance(context.get(k), dict) else {}
            for k in ("device", "os", "app", "location", "library")
        )
        country = location.get("country")
        return self._canonical(
            event_id=obj.get("messageId"), name=name, user_id=obj.get("userId"),
            anonymous_id=obj.get("anonymousId"),
            timestamp=obj.get("timestamp", obj.get("originalTimestamp")),
            platform=_segment_platform(obj.get("platform"), device, os_, library),
            # Segment's context.location.country is a country name ("United States"):
            # only an ISO 3166 code becomes the event's country.
            country=country if isinstance(country, str) and _COUNTRY.match(country) else None,
            app_version=app.get("version"), properties=obj.get("properties"),
            session_id=obj.get("session_id"),
        )

    @staticmethod
    def _ignored(kind: str, obj: dict[str, Any]) -> Ignored:
        user_id, anonymous_id = obj.get("userId"), obj.get(
            "previousId" if kind == "alias" else "anonymousId")
        for value, field in ((user_id, "userId"), (anonymous_id, "anonymousId")):
            if value is not None:
                _string(value, field)
        if user_id is None and anonymous_id is None:
            raise _Invalid(f"{kind}: userId or anonymousId: at least one is required")
        return Ignored(kind, user_id, anonymous_id)

    def _canonical(
        self, *, event_id: Any, name: Any, user_id: Any, anonymous_id: Any, timestamp: Any,
        platform: Any, country: Any, app_version: Any, properties: Any, session_id: Any,
    ) -> Event:
        event_id = _string(event_id, "event_id")
        if not is_event_name(name):
            raise _Invalid(f"name: must be 1..{MAX_EVENT_NAME} printable characters")
        name = self._alias_of.get(name, name)
        if user_id is not None:
            identity = _string(user_id, "user_id")
        elif anonymous_id is not None:
            identity = "anon:" + _string(anonymous_id, "anonymous_id")
        elif name == self._spend_event:
            identity = ""  # spend needs no identity and makes no one active (SPEC 3b)
        else:
            raise _Invalid("user_id or anonymous_id: at least one is required")
        ts = parse_timestamp(timestamp)
        if platform is not None:
            platform = _string(platform, "platform", 64)
        if country is not None:
            if not isinstance(country, str) or not _COUNTRY.match(country):
                raise _Invalid("country: must be an ISO 3166 alpha-2 code")
            country = country.upper()
        if app_version is not None:
            app_version = _string(app_version, "app_version", 64)
        if session_id is not None:
            session_id = _string(session_id, "session_id")
        elif isinstance(properties, dict) and properties.get("session_id") is not None:
            session_id = _string(properties["session_id"], "properties.session_id")
        props = self._properties(name, properties)
        return Event(event_id, identity, ts, name, platform, country, app_version, props,
                     session_id)

    def _properties(self, name: str, properties: Any) -> dict[str, Any] | None:
        if properties is None:
            properties = {}
        elif not isinstance(properties, dict):
            raise _Invalid("properties: must be an object")
        kept: dict[str, Any] = {}
        amount_fields = _AMOUNT_FIELDS if name in self._money_events else _AMOUNT_FIELDS[:1]
        source = next((f for f in amount_fields if f in properties), None)
        if source is not None:
            kept["amount"] = _number(properties[source], f"properties.{source}")
        if "mrr" in properties:
            kept["mrr"] = _number(properties["mrr"], "properties.mrr")
        if "currency" in properties:
            currency = properties["currency"]
            if not isinstance(currency, str) or not _CURRENCY.match(currency):
                raise _Invalid("properties.currency: must be an ISO 4217 code like USD")
            kept["currency"] = currency.upper()
        for field in ("plan", "feature", "channel"):
            if field in properties:
                kept[field] = _string(properties[field], f"properties.{field}", 64)
        if "score" in properties:
            score = properties["score"]
            if isinstance(score, bool) or not isinstance(score, int):
                raise _Invalid("properties.score: must be an integer")
            kept["score"] = score
        if name in self._performance_events:
            self._performance(name, properties, kept)
        self._required(name, kept)
        return kept or None

    @staticmethod
    def _performance(name: str, properties: dict[str, Any], kept: dict[str, Any]) -> None:
        """``duration_ms`` (required), ``status`` and ``error`` of a performance event."""
        if "duration_ms" not in properties:
            raise _Invalid(f"properties.duration_ms: required for {name}")
        kept["duration_ms"] = _number(properties["duration_ms"], "properties.duration_ms")
        status = properties.get("status")
        if status is not None:
            if isinstance(status, bool) or not isinstance(status, int) \
                    or not 100 <= status <= 599:
                raise _Invalid("properties.status: must be an integer HTTP status 100..599")
            kept["status"] = status
        error = properties.get("error")
        if error is not None:
            if not isinstance(error, bool):
                raise _Invalid("properties.error: must be true or false")
            kept["error"] = error

    def _required(self, name: str, kept: dict[str, Any]) -> None:
        if name in self._money_events:
            if "amount" not in kept:
                raise _Invalid(f"properties.amount (or revenue, or total): required for {name}")
            if "currency" not in kept:
                raise _Invalid(f"properties.currency: required for {name}")
        if name in self._subscription_events:
            for field in ("plan", "currency", "mrr"):
                if field not in kept:
                    raise _Invalid(f"properties.{field}: required for {name}")
        if name == self._feature_event and "feature" not in kept:
            raise _Invalid(f"properties.feature: required for {name}")
        if name in self._surveys:
            low, high = self._surveys[name]
            score = kept.get("score")
            if score is None:
                raise _Invalid(f"properties.score: required for {name}")
            if not low <= score <= high:
                raise _Invalid(f"properties.score: {score} is outside {low}..{high} for {name}")


def _segment_platform(platform: Any, device: dict[str, Any], os_: dict[str, Any],
                      library: dict[str, Any]) -> Any:
    """``platform``, else ``context.device.type``, else iOS / Android from
    ``context.os.name``, else ``web`` for the browser libraries, else none."""
    if platform is not None:
        return platform
    if device.get("type") is not None:
        return device["type"]
    os_name = os_.get("name")
    if isinstance(os_name, str) and os_name.lower() in _OS_PLATFORMS:
        return _OS_PLATFORMS[os_name.lower()]
    name = library.get("name")
    if isinstance(name, str) and name.startswith(_WEB_LIBRARIES):
        return "web"
    return None
