"""Bytes off the wire -> a validated :class:`Event`, or a :class:`Rejection` saying why.

Accepts the canonical leadline form and Segment / RudderStack *track* payloads
unchanged. Validation is strict: a wrong type is a ``schema`` rejection, never a
silent coercion ("19.99" is not an amount), so a bad producer is visible in the DLQ.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import orjson

from leadline.config.definitions import NAME_RE, Definitions
from leadline.events.model import Event
from leadline.events.rejection import Reason, Rejection

MAX_BYTES = 64 * 1024
FUTURE_TOLERANCE = 300.0
OLD_SLACK = 86400.0
# Epoch numbers above this are milliseconds: 1e11 seconds is the year 5138.
_MS_THRESHOLD = 1e11
_RFC3339 = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z"
)
_CURRENCY = re.compile(r"^[A-Z]{3}\Z")
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
        self._max_age = max(definitions.window_seconds.values()) + OLD_SLACK
        self._money_events = {e.purchase, e.refund}
        self._subscription_events = {
            e.subscription_started, e.subscription_changed, e.subscription_cancelled
        }
        self._feature_event = e.feature
        self._surveys = {s.event: (s.min, s.max) for s in definitions.surveys.values()}

    def decode(self, raw: bytes | None, now: float) -> Event | Rejection:
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
        if event.ts > now + FUTURE_TOLERANCE:
            return Rejection(Reason.IN_FUTURE, f"event time is {event.ts - now:.0f}s ahead")
        if event.ts < now - self._max_age:
            days = (now - event.ts) / 86400
            return Rejection(Reason.TOO_OLD, f"event time is {days:.1f} days old")
        return event

    def _validate(self, obj: dict[str, Any]) -> Event:
        if "messageId" in obj or ("event" in obj and "name" not in obj):
            return self._segment(obj)
        return self._canonical(
            event_id=obj.get("event_id"), name=obj.get("name"), user_id=obj.get("user_id"),
            anonymous_id=obj.get("anonymous_id"), timestamp=obj.get("timestamp"),
            platform=obj.get("platform"), country=obj.get("country"),
            app_version=obj.get("app_version"), properties=obj.get("properties"),
        )

    def _segment(self, obj: dict[str, Any]) -> Event:
        kind = obj.get("type", "track")
        if kind != "track":
            raise _Invalid(f"type: only track payloads are events, got {kind!r}")
        context = obj.get("context") or {}
        if not isinstance(context, dict):
            raise _Invalid("context: must be an object")
        device, os_, app, location = (
            context[k] if isinstance(context.get(k), dict) else {}
            for k in ("device", "os", "app", "location")
        )
        platform = obj.get("platform") or device.get("type") or os_.get("name")
        if platform is None and isinstance(context.get("library"), dict):
            library = str(context["library"].get("name", ""))
            platform = "web" if library.startswith("analytics") else None
        return self._canonical(
            event_id=obj.get("messageId"), name=obj.get("event"), user_id=obj.get("userId"),
            anonymous_id=obj.get("anonymousId"),
            timestamp=obj.get("timestamp", obj.get("originalTimestamp")),
            platform=platform, country=location.get("country"),
            app_version=app.get("version"), properties=obj.get("properties"),
        )

    def _canonical(
        self, *, event_id: Any, name: Any, user_id: Any, anonymous_id: Any, timestamp: Any,
        platform: Any, country: Any, app_version: Any, properties: Any,
    ) -> Event:
        event_id = _string(event_id, "event_id")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise _Invalid("name: must be 1..64 characters of [A-Za-z0-9_.:-]")
        if user_id is not None:
            identity = _string(user_id, "user_id")
        elif anonymous_id is not None:
            identity = "anon:" + _string(anonymous_id, "anonymous_id")
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
        props = self._properties(name, properties)
        return Event(event_id, identity, ts, name, platform, country, app_version, props)

    def _properties(self, name: str, properties: Any) -> dict[str, Any] | None:
        if properties is None:
            properties = {}
        elif not isinstance(properties, dict):
            raise _Invalid("properties: must be an object")
        kept: dict[str, Any] = {}
        if "amount" in properties:
            kept["amount"] = _number(properties["amount"], "properties.amount")
        if "mrr" in properties:
            kept["mrr"] = _number(properties["mrr"], "properties.mrr")
        if "currency" in properties:
            currency = properties["currency"]
            if not isinstance(currency, str) or not _CURRENCY.match(currency):
                raise _Invalid("properties.currency: must be an ISO 4217 code like USD")
            kept["currency"] = currency
        for field in ("plan", "feature"):
            if field in properties:
                kept[field] = _string(properties[field], f"properties.{field}", 64)
        if "score" in properties:
            score = properties["score"]
            if isinstance(score, bool) or not isinstance(score, int):
                raise _Invalid("properties.score: must be an integer")
            kept["score"] = score
        self._required(name, kept)
        return kept or None

    def _required(self, name: str, kept: dict[str, Any]) -> None:
        if name in self._money_events:
            for field in ("amount", "currency"):
                if field not in kept:
                    raise _Invalid(f"properties.{field}: required for {name}")
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
