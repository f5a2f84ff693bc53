"""Decoder: every rejection reason, the Segment/RudderStack mapping, and a fuzz test."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadline.config.definitions import load_definitions
from leadline.events.decoder import MAX_BYTES, Decoder
from leadline.events.model import Event, Ignored
from leadline.events.rejection import Reason, Rejection, dlq_envelope

D = load_definitions()
DECODER = Decoder(D)
NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = 86400
TS = NOW - 10
TS_TEXT = "2023-11-14T22:13:10Z"
BASE: dict[str, Any] = {"event_id": "e-1", "name": "signup", "user_id": "u-1", "timestamp": TS}
_DROP = object()


def decode(raw: bytes | None, now: float = NOW) -> Event | Ignored | Rejection:
    return DECODER.decode(raw, now)


def event(**changes: Any) -> Event | Rejection:
    obj = {**BASE, **changes}
    obj = {k: v for k, v in obj.items() if v is not _DROP}
    return decode(orjson.dumps(obj))


def rejected(result: Event | Rejection, reason: Reason, *words: str) -> None:
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    for w in words:
        assert w in result.error, result


def test_a_valid_canonical_event() -> None:
    result = event(platform="ios", country="de", app_version="1.2.3",
                   properties={"plan": "pro", "free_text": "never kept"})
    assert result == Event("e-1", "u-1", TS, "signup", "ios", "DE", "1.2.3", {"plan": "pro"})


# --- not_json -----------------------------------------------------------------

@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"hello",
        b'{"name": "\xff\xfe"}',                    # invalid UTF-8
        b'{"event_id": "\\ud800", "name": "x"}',    # lone surrogate escape
        b'{"amount": NaN}',
        b'{"amount": Infinity}',
        b"[-Infinity]",
        b'{"a": 1e400}',                            # overflows to infinity
        b'{"event_id": "e-1", "name": "sig',        # truncated
        b'{"event_id": "e-1"',
        b"{'single': 'quotes'}",
        b'{"a": 1} trailing',
    ],
)
def test_not_json(raw: bytes) -> None:
    rejected(decode(raw), Reason.NOT_JSON)


def test_missing_value_is_not_json() -> None:
    rejected(decode(None), Reason.NOT_JSON, "empty")


# --- not_object -----------------------------------------------------------------

@pytest.mark.parametrize("raw", [b"[]", b'[{"event_id": "e"}]', b'"signup"', b"42", b"1.5",
                                 b"null", b"true"])
def test_not_object(raw: bytes) -> None:
    rejected(decode(raw), Reason.NOT_OBJECT)


# --- schema ---------------------------------------------------------------------

@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"event_id": _DROP}, "event_id"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "x" * 129}, "event_id"),
        ({"event_id": 123}, "event_id"),
        ({"name": _DROP}, "name"),
        ({"name": ""}, "name"),
        ({"name": "a" * 129}, "name"),
        ({"name": "tab\tin name"}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": 7}, "name"),
        ({"user_id": _DROP}, "user_id or anonymous_id"),
        ({"user_id": None}, "user_id or anonymous_id"),
        ({"user_id": ""}, "user_id"),
        ({"user_id": "u" * 129}, "user_id"),
        ({"user_id": 42}, "user_id"),
        ({"user_id": _DROP, "anonymous_id": ""}, "anonymous_id"),
        ({"user_id": _DROP, "anonymous_id": "a" * 129}, "anonymous_id"),
        ({"timestamp": _DROP}, "timestamp"),
        ({"timestamp": "2023-11-14T22:13:10"}, "timestamp"),       # RFC 3339 without offset
        ({"timestamp": "2023-11-14"}, "timestamp"),
        ({"timestamp": "14/11/2023 22:13:10"}, "timestamp"),
        ({"timestamp": "2023-13-14T22:13:10Z"}, "timestamp"),      # month 13
        ({"timestamp": True}, "timestamp"),
        ({"timestamp": False}, "timestamp"),
        ({"timestamp": "1699999990"}, "timestamp"),                # digits in a string
        ({"timestamp": 0}, "timestamp"),
        ({"timestamp": -5}, "timestamp"),
        ({"timestamp": None}, "timestamp"),
        ({"platform": ""}, "platform"),
        ({"platform": 3}, "platform"),
        ({"country": "DEU"}, "country"),
        ({"country": 49}, "country"),
        ({"app_version": ""}, "app_version"),
        ({"properties": [1, 2]}, "properties"),
        ({"properties": "amount=3"}, "properties"),
        ({"name": "purchase", "properties": {"amount": "19.99", "currency": "USD"}}, "amount"),
        ({"name": "purchase", "properties": {"amount": -0.01, "currency": "USD"}}, "amount"),
        ({"name": "purchase", "properties": {"amount": True, "currency": "USD"}}, "amount"),
        ({"name": "purchase", "properties": {"amount": 19.99}}, "properties.currency"),
        ({"name": "purchase", "properties": {"currency": "USD"}}, "properties.amount"),
        ({"name": "purchase", "properties": {"amount": 1, "currency": "u$d"}}, "currency"),
        ({"name": "purchase", "properties": {"amount": 1, "currency": "US"}}, "currency"),
        ({"name": "refund", "properties": {"amount": 1}}, "properties.currency"),
        ({"name": "nps_submitted", "properties": {"score": 11}}, "score"),
        ({"name": "nps_submitted", "properties": {"score": -1}}, "score"),
        ({"name": "nps_submitted", "properties": {}}, "score"),
        ({"name": "csat_submitted", "properties": {"score": 0}}, "score"),
        ({"name": "csat_submitted", "properties": {"score": 6}}, "score"),
        ({"name": "nps_submitted", "properties": {"score": 7.5}}, "score"),
        ({"name": "nps_submitted", "properties": {"score": "7"}}, "score"),
        ({"name": "feature_used"}, "properties.feature"),
        ({"name": "feature_used", "properties": {"feature": ""}}, "feature"),
        ({"name": "subscription_started",
          "properties": {"plan": "pro", "currency": "USD"}}, "properties.mrr"),
        ({"name": "subscription_changed",
          "properties": {"mrr": 10, "currency": "USD"}}, "properties.plan"),
        ({"name": "subscription_cancelled",
          "properties": {"plan": "pro", "mrr": -1, "currency": "USD"}}, "mrr"),
    ],
)
def test_schema(changes: dict[str, Any], field: str) -> None:
    rejected(event(**changes), Reason.SCHEMA, field)


@pytest.mark.parametrize(
    "changes",
    [
        {"event_id": "x" * 128},
        {"name": "a" * 64},
        {"name": "Az09_.:-"},
        {"user_id": "u" * 128},
        {"name": "purchase", "properties": {"amount": 0, "currency": "USD"}},
        {"name": "purchase", "properties": {"amount": 19.99, "currency": "XYZ"}},
        {"name": "nps_submitted", "properties": {"score": 0}},
        {"name": "nps_submitted", "properties": {"score": 10}},
        {"name": "csat_submitted", "properties": {"score": 1}},
        {"name": "csat_submitted", "properties": {"score": 5}},
        {"name": "feature_used", "properties": {"feature": "search"}},
        {"name": "subscription_started",
         "properties": {"plan": "pro", "mrr": 49, "currency": "EUR"}},
        {"properties": None},
        {"properties": {}},
    ],
)
def test_boundaries_accepted(changes: dict[str, Any]) -> None:
    assert isinstance(event(**changes), Event)


def test_amount_and_properties_are_kept_validated() -> None:
    result = event(name="purchase", properties={"amount": 19.99, "currency": "USD",
                                                 "sku": "free text", "score": 3})
    assert isinstance(result, Event)
    assert result.props == {"amount": 19.99, "currency": "USD", "score": 3}
    assert isinstance(event(), Event) and event().props is None  # type: ignore[union-attr]


# --- timestamps -------------------------------------------------------------------

@pytest.mark.parametrize(
    "value",
    [
        TS_TEXT,
        "2023-11-14T22:13:10z",
        "2023-11-14T22:13:10+00:00",
        "2023-11-15T00:13:10+02:00",
        "2023-11-14T19:13:10-03:00",
        "2023-11-14T22:13:10.000000000Z",
        TS,
        int(TS),
        int(TS) * 1000,
        TS * 1000,
    ],
)
def test_timestamp_forms_agree(value: Any) -> None:
    result = event(timestamp=value)
    assert isinstance(result, Event), result
    assert result.ts == TS
    assert isinstance(result.ts, float)


def test_fractional_timestamps() -> None:
    a = event(timestamp="2023-11-14T22:13:10.25Z")
    b = event(timestamp=int(TS) * 1000 + 250)
    c = event(timestamp=TS + 0.25)
    assert isinstance(a, Event) and isinstance(b, Event) and isinstance(c, Event)
    assert a.ts == b.ts == c.ts == TS + 0.25
    assert datetime.fromtimestamp(a.ts, UTC).isoformat() == "2023-11-14T22:13:10.250000+00:00"


# --- too_large, in_future, too_old ---------------------------------------------------

def _padded(size: int) -> bytes:
    raw = orjson.dumps({**BASE, "properties": {"pad": ""}})
    raw = orjson.dumps({**BASE, "properties": {"pad": "x" * (size - len(raw))}})
    assert len(raw) == size
    return raw


def test_exactly_64_kib_is_accepted() -> None:
    assert MAX_BYTES == 65536
    assert isinstance(decode(_padded(64 * 1024)), Event)


def test_one_byte_more_is_too_large() -> None:
    rejected(decode(_padded(64 * 1024 + 1)), Reason.TOO_LARGE, "65537")
    rejected(decode(b"\xff" * (64 * 1024 + 1)), Reason.TOO_LARGE)


def test_in_future() -> None:
    rejected(event(timestamp=NOW + 301), Reason.IN_FUTURE)
    assert isinstance(event(timestamp=NOW + 299), Event)
    assert isinstance(event(timestamp=NOW + 300), Event)


def test_too_old() -> None:
    # the longest window (30 d) plus one day
    rejected(event(timestamp=NOW - 31 * DAY - 1), Reason.TOO_OLD)
    rejected(event(timestamp="2020-01-01T00:00:00Z"), Reason.TOO_OLD)
    assert isinstance(event(timestamp=NOW - 30 * DAY), Event)
    assert isinstance(event(timestamp=NOW - 31 * DAY + 1), Event)


def test_rejection_reasons_are_the_spec_labels() -> None:
    assert {r.value for r in Reason} >= {
        "not_json", "not_object", "schema", "too_large", "in_future", "too_old"
    }


# --- identity ---------------------------------------------------------------------

def test_identity_rules() -> None:
    assert event().identity == "u-1"  # type: ignore[union-attr]
    both = event(anonymous_id="a-1")
    assert isinstance(both, Event) and both.identity == "u-1"
    anon = event(user_id=_DROP, anonymous_id="a-1")
    assert isinstance(anon, Event) and anon.identity == "anon:a-1"
    null_user = event(user_id=None, anonymous_id="a-1")
    assert isinstance(null_user, Event) and null_user.identity == "anon:a-1"
    rejected(event(user_id=None, anonymous_id=None), Reason.SCHEMA, "user_id or anonymous_id")
    rejected(event(user_id=7, anonymous_id="a-1"), Reason.SCHEMA, "user_id")


def test_marketing_spend_needs_no_identity() -> None:
    spend = event(name="marketing_spend", user_id=_DROP,
                  properties={"amount": 120.5, "currency": "usd", "channel": "google",
                              "campaign": "never kept"})
    assert spend == Event("e-1", "", TS, "marketing_spend",
                          props={"amount": 120.5, "currency": "USD", "channel": "google"})
    with_user = event(name="marketing_spend", properties={"amount": 1, "currency": "EUR"})
    assert isinstance(with_user, Event) and with_user.identity == "u-1"
    segment = decode(orjson.dumps({"type": "track", "messageId": "m-1", "event": "marketing_spend",
                                   "timestamp": TS_TEXT,
                                   "properties": {"revenue": 10, "currency": "GBP"}}))
    assert isinstance(segment, Event) and segment.identity == ""
    assert segment.props == {"amount": 10, "currency": "GBP"}


@pytest.mark.parametrize(("properties", "words"), [
    ({"currency": "USD"}, ("properties.amount", "marketing_spend")),
    ({"amount": 5}, ("properties.currency", "marketing_spend")),
    ({"amount": -5, "currency": "USD"}, ("properties.amount", ">= 0")),
    ({"amount": "5", "currency": "USD"}, ("properties.amount", "number")),
    ({"amount": 5, "currency": "USD", "channel": 3}, ("properties.channel",)),
])
def test_bad_spend_is_a_schema_rejection(properties: dict[str, Any], words: tuple[str, ...]
                                         ) -> None:
    rejected(event(name="marketing_spend", user_id=_DROP, properties=properties),
             Reason.SCHEMA, *words)


def test_only_spend_may_come_without_an_identity() -> None:
    rejected(event(name="page_view", user_id=_DROP), Reason.SCHEMA, "user_id or anonymous_id")


def test_too_old_follows_the_longest_retention_day() -> None:
    from leadline.config.definitions import parse_definitions
    long = Decoder(parse_definitions("retention:\n  days: [1, 60]\n"))
    old = orjson.dumps({**BASE, "timestamp": NOW - 45 * DAY})
    assert isinstance(long.decode(old, NOW), Event)           # 60 + 2 days back
    rejected(DECODER.decode(old, NOW), Reason.TOO_OLD)          # 30d + 1 day by default


def test_performance_events_carry_duration_status_and_error() -> None:
    ok = event(name="api_request", properties={"duration_ms": 12.5, "status": 503,
                                                "error": False, "url": "never kept"})
    assert isinstance(ok, Event)
    assert ok.props == {"duration_ms": 12.5, "status": 503, "error": False}
    assert event(name="page_load", properties={"duration_ms": 0}).props == {  # type: ignore[union-attr]
        "duration_ms": 0}
    # elsewhere these properties mean nothing and are not checked
    assert isinstance(event(name="page_view", properties={"status": "shipped"}), Event)


@pytest.mark.parametrize(("properties", "words"), [
    ({}, ("properties.duration_ms", "required", "api_request")),
    ({"duration_ms": -1}, ("properties.duration_ms", ">= 0")),
    ({"duration_ms": "12"}, ("properties.duration_ms", "number")),
    ({"duration_ms": True}, ("properties.duration_ms", "number")),
    ({"duration_ms": 5, "status": 99}, ("properties.status", "100..599")),
    ({"duration_ms": 5, "status": 600}, ("properties.status", "100..599")),
    ({"duration_ms": 5, "status": "500"}, ("properties.status",)),
    ({"duration_ms": 5, "status": True}, ("properties.status",)),
    ({"duration_ms": 5, "status": 500.0}, ("properties.status",)),
    ({"duration_ms": 5, "error": "yes"}, ("properties.error", "true or false")),
    ({"duration_ms": 5, "error": 1}, ("properties.error",)),
])
def test_bad_performance_fields_are_schema_rejections(properties: dict[str, Any],
                                                       words: tuple[str, ...]) -> None:
    # (a non-finite number is not JSON: orjson rejects 1e309 as not_json)
    rejected(event(name="api_request", properties=properties), Reason.SCHEMA, *words)


def test_session_id_top_level_else_in_properties() -> None:
    top = event(session_id="s-1", properties={"session_id": "s-2"})
    assert isinstance(top, Event) and top.session_id == "s-1"
    inner = event(properties={"session_id": "s-2"})
    assert isinstance(inner, Event) and inner.session_id == "s-2"
    assert event().session_id is None  # type: ignore[union-attr]
    segment = decode(orjson.dumps({**SEGMENT, "properties": {**SEGMENT["properties"],
                                                             "session_id": "ajs-s"}}))
    assert isinstance(segment, Event) and segment.session_id == "ajs-s"
    assert Event.decode(segment.encode()) == segment
    for bad in (7, "", "x" * 129, {"id": 1}):
        rejected(event(session_id=bad), Reason.SCHEMA, "session_id")
        rejected(event(properties={"session_id": bad}), Reason.SCHEMA, "properties.session_id")


# --- Segment / RudderStack -----------------------------------------------------------

SEGMENT: dict[str, Any] = {
    "type": "track",
    "messageId": "ajs-next-1",
    "event": "purchase",
    "userId": "u-9",
    "anonymousId": "507f191e810c19729de860ea",
    "timestamp": TS_TEXT,
    "properties": {"amount": 19.99, "currency": "EUR", "revenue": 19.99},
    "context": {
        "device": {"type": "ios", "model": "iPhone15,2"},
        "os": {"name": "iOS", "version": "17.1"},
        "location": {"country": "de", "city": "Berlin"},
        "app": {"name": "Shop", "version": "3.2.1"},
        "library": {"name": "analytics-ios", "version": "4.1"},
    },
    "integrations": {},
    "sentAt": TS_TEXT,
}


def test_segment_track_mapping() -> None:
    result = decode(orjson.dumps(SEGMENT))
    assert result == Event(
        event_id="ajs-next-1", identity="u-9", ts=TS, name="purchase", platform="ios",
        country="DE", app_version="3.2.1", props={"amount": 19.99, "currency": "EUR"},
    )


def test_segment_anonymous_identity() -> None:
    payload = {k: v for k, v in SEGMENT.items() if k != "userId"}
    result = decode(orjson.dumps(payload))
    assert isinstance(result, Event)
    assert result.identity == "anon:507f191e810c19729de860ea"
    nulled = decode(orjson.dumps({**SEGMENT, "userId": None}))
    assert isinstance(nulled, Event) and nulled.identity == result.identity


def test_rudderstack_track_with_original_timestamp_and_no_type() -> None:
    payload = {
        "messageId": "rudder-1", "event": "session_start", "anonymousId": "anon-7",
        "originalTimestamp": "2023-11-15T00:13:10+02:00",
        "context": {"os": {"name": "android"}, "app": {"version": "9"}},
    }
    result = decode(orjson.dumps(payload))
    assert result == Event("rudder-1", "anon:anon-7", TS, "session_start", "android",
                           None, "9", None)


def test_segment_web_library_means_web() -> None:
    payload = {"messageId": "m", "event": "signup", "userId": "u", "timestamp": TS,
               "context": {"library": {"name": "analytics.js"}}}
    result = decode(orjson.dumps(payload))
    assert isinstance(result, Event) and result.platform == "web"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"type": "batch"}, "type"),
        ({"type": ["track"]}, "type"),
        ({"type": "identify", "userId": _DROP, "anonymousId": _DROP}, "identify"),
        ({"type": "identify", "userId": 7}, "userId"),
        ({"messageId": _DROP, "event": "purchase"}, "event_id"),
        ({"event": "bad\u0000name"}, "name"),
        ({"userId": _DROP, "anonymousId": _DROP}, "user_id or anonymous_id"),
        ({"context": "ios"}, "context"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"properties": {"amount": "19.99", "currency": "EUR"}}, "amount"),
    ],
)
def test_segment_schema_errors(changes: dict[str, Any], field: str) -> None:
    payload = {**SEGMENT, **changes}
    payload = {k: v for k, v in payload.items() if v is not _DROP}
    rejected(decode(orjson.dumps(payload)), Reason.SCHEMA, field)


# --- regex anchoring ------------------------------------------------------------------

@pytest.mark.parametrize(
    "changes",
    [
        {"name": "signup\n"},
        {"name": "purchase", "properties": {"amount": 1, "currency": "USD\n"}},
        {"country": "US\n"},
        {"timestamp": TS_TEXT + "\n"},
    ],
)
def test_trailing_newline_is_rejected(changes: dict[str, Any]) -> None:
    rejected(event(**changes), Reason.SCHEMA)


# --- fuzz ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
FIELDS = ["event_id", "name", "user_id", "anonymous_id", "timestamp", "platform", "country",
          "app_version", "properties", "messageId", "event", "userId", "anonymousId", "type",
          "context", "originalTimestamp"]
near_events = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=10).map(
    lambda d: {**BASE, **d}
)
near_segment = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=10).map(
    lambda d: {**SEGMENT, **d}
)
property_fuzz = st.dictionaries(
    st.sampled_from(["amount", "currency", "mrr", "plan", "score", "feature"]), json_values
).flatmap(
    lambda props: st.sampled_from(
        ["purchase", "refund", "nps_submitted", "csat_submitted", "feature_used",
         "subscription_changed", "signup"]
    ).map(lambda name: {**BASE, "name": name, "properties": props})
)


def _check(result: object) -> None:
    assert isinstance(result, Event | Rejection)
    if isinstance(result, Rejection):
        assert isinstance(result.reason, Reason) and isinstance(result.error, str)
    else:
        assert Event.decode(result.encode()) == result


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_fuzz_bytes_never_raise(raw: bytes) -> None:
    _check(decode(raw))


@settings(max_examples=200)
@given(json_values | near_events | near_segment | property_fuzz,
       st.floats(min_value=0, max_value=4e9))
def test_fuzz_json_never_raises(value: Any, now: float) -> None:
    _check(decode(orjson.dumps(value), now))


# --- Event encoding and the DLQ envelope ------------------------------------------------

events = st.builds(
    Event,
    event_id=st.text(min_size=1, max_size=128),
    identity=st.text(min_size=1, max_size=133),
    ts=st.floats(min_value=1, max_value=4e9),
    name=st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True),
    platform=st.none() | st.text(max_size=64),
    country=st.none() | st.from_regex(r"[A-Z]{2}", fullmatch=True),
    app_version=st.none() | st.text(max_size=64),
    props=st.none() | st.fixed_dictionaries(
        {}, optional={"amount": st.floats(min_value=0, max_value=1e12),
                      "currency": st.sampled_from(["USD", "EUR"]),
                      "plan": st.text(max_size=64), "score": st.integers(0, 10),
                      "feature": st.text(max_size=64), "mrr": st.integers(0, 10**6)}),
)


@given(events)
def test_event_round_trip(ev: Event) -> None:
    back = Event.decode(ev.encode())
    assert back == ev
    assert back.ts == ev.ts


@given(st.binary(max_size=300), st.none() | st.binary(max_size=40),
       st.sampled_from(list(Reason)), st.text(max_size=100),
       st.integers(0, 255), st.integers(0, 2**62))
def test_dlq_envelope_keeps_the_exact_bytes(
    raw: bytes, key: bytes | None, reason: Reason, error: str, partition: int, offset: int
) -> None:
    env = orjson.loads(dlq_envelope(raw, key, Rejection(reason, error), topic="product-events",
                                    partition=partition, offset=offset, rejected_at=NOW))
    assert base64.b64decode(env["value_b64"], validate=True) == raw
    assert env["key_b64"] == (base64.b64encode(key).decode() if key is not None else None)
    assert env["reason"] == reason.value
    assert env["error"] == error
    assert env["source"] == {"topic": "product-events", "partition": partition, "offset": offset}
    assert env["rejected_at"] == NOW


def test_dlq_envelope_of_a_real_rejection() -> None:
    raw = b'{"event_id": "e", "name": "\xff"}'
    rejection = decode(raw)
    assert isinstance(rejection, Rejection)
    env = orjson.loads(dlq_envelope(raw, b"u-1", rejection, topic="t", partition=3, offset=17,
                                    rejected_at=NOW))
    assert base64.b64decode(env["value_b64"]) == raw
    assert base64.b64decode(env["key_b64"]) == b"u-1"
    assert env["reason"] == "not_json"
    assert env["error"] == rejection.error and env["error"]
    assert env["source"] == {"topic": "t", "partition": 3, "offset": 17}
    env_none = orjson.loads(dlq_envelope(None, None, Rejection(Reason.NOT_JSON, "empty"),
                                         topic="t", partition=0, offset=0, rejected_at=NOW))
    assert env_none["value_b64"] is None and env_none["key_b64"] is None


@pytest.mark.parametrize("name", ["User Registered", "café ☕", "a" * 128, "Order: Step #2"])
def test_any_printable_name_of_1_to_128_characters_is_an_event(name: str) -> None:
    result = decode(orjson.dumps({**SEGMENT, "event": name}))
    assert isinstance(result, Event) and result.name == name


def test_aliases_count_under_the_configured_name_and_currency_is_upper_case() -> None:
    payload = {**SEGMENT, "event": "Order Completed",
               "properties": {"total": 27.5, "revenue": 25.0, "currency": "eur"}}
    result = decode(orjson.dumps(payload))
    assert isinstance(result, Event)
    assert (result.name, result.props) == ("purchase", {"amount": 25.0, "currency": "EUR"})


def test_amount_comes_from_amount_then_revenue_then_total_on_money_events_only() -> None:
    def props(name: str, **given: Any) -> dict[str, Any] | None:
        result = decode(orjson.dumps({**SEGMENT, "event": name,
                                      "properties": {"currency": "USD", **given}}))
        assert isinstance(result, Event), result
        return result.props
    assert props("purchase", amount=1, revenue=2, total=3) == {"amount": 1, "currency": "USD"}
    assert props("purchase", revenue=2, total=3) == {"amount": 2, "currency": "USD"}
    assert props("refund", total=3) == {"amount": 3, "currency": "USD"}
    assert props("checkout_started", revenue=2) == {"currency": "USD"}
