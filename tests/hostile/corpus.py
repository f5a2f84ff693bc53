"""Hostile messages and what SPEC section 1 says must become of each.

Expectations are written from the contract, not from the decoder: ``VALID`` (counted,
name ``activation`` unless said otherwise) or the DLQ reason. Every identifier and
free-text value carries a marker, so leak checks can grep for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import orjson

VALID = "valid"
MARK = "zq7"  # in every id and free text below: never a substring of metric names or HELP
DAY = 86400.0
MAX_BYTES = 64 * 1024
OLDEST = 31 * DAY  # longest window (30d) + 1 day
_DROP = object()


@dataclass(frozen=True)
class Case:
    what: str
    value: bytes
    expect: str  # VALID or a reason
    key: bytes | None = None
    in_30d: bool = True  # a valid event inside the 30d window at test time


def _event(i: int, now: float, **fields: object) -> dict[str, object]:
    event: dict[str, object] = {"event_id": f"{MARK}-evt-{i}", "name": "activation",
                                "user_id": f"{MARK}-user-{i}", "timestamp": now - 60}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not _DROP}


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


def _rfc(ts: float, tz: timezone = UTC, sep: str = "T", digits: int = 3) -> str:
    dt = datetime.fromtimestamp(ts, tz)
    text = dt.strftime(f"%Y-%m-%d{sep}%H:%M:%S")
    if digits:
        text += "." + f"{dt.microsecond:06d}".ljust(9, "7")[:digits]
    offset = dt.strftime("%z")
    return text + (offset[:3] + ":" + offset[3:])


def _sized(i: int, now: float, size: int) -> bytes:
    """A valid event padded with an unknown property to exactly ``size`` bytes."""
    base = _json(_event(i, now, properties={"pad": ""}))
    pad = size - len(base)
    value = _json(_event(i, now, properties={"pad": "x" * pad}))
    assert len(value) == size
    return value


def cases(now: float) -> list[Case]:
    """Every hostile message, built against the clock value ``now``."""
    out: list[Case] = []
    n = iter(range(10**6))

    def add(what: str, expect: str, value: bytes | None = None, *, key: bytes | None = None,
            in_30d: bool = True, **fields: object) -> None:
        i = next(n)
        raw = value if value is not None else _json(_event(i, now, **fields))
        out.append(Case(what, raw, expect, key, in_30d))

    # --- depth ---------------------------------------------------------------------
    add("array nested 5,000 deep", "not_json", b"[" * 5000 + b"]" * 5000)
    deep = "{\"a\":" * 5000 + "1" + "}" * 5000
    add("object nested 5,000 deep in properties", "not_json",
        f'{{"event_id":"{MARK}-deep","name":"activation","user_id":"{MARK}-u-deep",'
        f'"timestamp":{now - 60},"properties":{{"x":{deep}}}}}'.encode())
    add("object nested 200 deep in properties (kept out, event counts)", VALID,
        properties={"x": json.loads("{\"a\":" * 200 + "1" + "}" * 200)})

    # --- sizes ---------------------------------------------------------------------
    for size, expect in ((MAX_BYTES - 1, VALID), (MAX_BYTES, VALID), (MAX_BYTES + 1, "too_large")):
        i = next(n)
        out.append(Case(f"value of {size} bytes", _sized(i, now, size), expect))
    i = next(n)
    out.append(Case("value of 1,000,000 bytes: its DLQ envelope is larger than 1 MB",
                    _sized(i, now, 1_000_000), "too_large"))
    add("event_id of 128 characters", VALID, event_id=f"{MARK}-" + "e" * 124)
    add("event_id of 129 characters", "schema", event_id=f"{MARK}-" + "e" * 125)
    add("user_id of 128 characters", VALID, user_id=f"{MARK}-" + "u" * 124)
    add("user_id of 129 characters", "schema", user_id=f"{MARK}-" + "u" * 125)
    add("name of 129 characters", "schema", name="n" * 129)
    add("name with a line break", "schema", name="Order\nCompleted")

    # --- encodings -------------------------------------------------------------------
    i = next(n)
    add("invalid UTF-8 in a string", "not_json",
        f'{{"event_id":"{MARK}-bad-utf8-{i}","name":"activation","user_id":"'.encode()
        + b"\xff\xfe" + f'","timestamp":{now - 60}}}'.encode())
    add("UTF-8-encoded lone surrogate (CESU bytes)", "not_json",
        f'{{"event_id":"{MARK}-cesu","name":"activation","user_id":"'.encode()
        + b"\xed\xa0\x80" + f'","timestamp":{now - 60}}}'.encode())
    add("overlong UTF-8", "not_json",
        f'{{"event_id":"{MARK}-overlong","name":"activation","user_id":"'.encode()
        + b"\xc0\xaf" + f'","timestamp":{now - 60}}}'.encode())
    add("escaped lone surrogate \\ud800", "not_json",
        f'{{"event_id":"{MARK}-lone","name":"activation","user_id":"x\\ud800",'
        f'"timestamp":{now - 60}}}'.encode())
    add("UTF-16 encoded document", "not_json",
        json.dumps(_event(900_000, now)).encode("utf-16"))
    add("emoji, NUL and right-to-left text in ids", VALID,
        user_id=f"{MARK}-\u202e\U0001f600\u0000-user", event_id=f"{MARK}-\u05d0\u0000-evt")
    add("valid event with an invalid UTF-8 message key", VALID, key=b"\xff\xfe\xfd")
    add("byte-order mark before the object", "not_json",
        b"\xef\xbb\xbf" + _json(_event(900_001, now)))

    # --- numbers ---------------------------------------------------------------------
    add("amount as a string", "schema", name="purchase",
        properties={"amount": "19.99", "currency": "USD"})
    add("score as a string", "schema", name="nps_submitted", properties={"score": "9"})
    add("mrr as a string", "schema", name="subscription_started",
        properties={"plan": "pro", "mrr": "10", "currency": "USD"})
    add("timestamp as a numeric string", "schema", timestamp=str(int(now)))
    add("amount true", "schema", name="purchase", properties={"amount": True, "currency": "USD"})
    add("negative amount", "schema", name="purchase", properties={"amount": -1, "currency": "USD"})
    for token in (b"NaN", b"Infinity", b"-Infinity"):
        add(f"{token.decode()} token", "not_json",
            f'{{"event_id":"{MARK}-tok","name":"purchase","user_id":"{MARK}-u",'
            f'"timestamp":{now - 60},"properties":{{"amount":'.encode()
            + token + b',"currency":"USD"}}')
    add("1e400 literal", "not_json",
        f'{{"event_id":"{MARK}-big","name":"activation","user_id":"{MARK}-u",'
        f'"timestamp":1e400}}'.encode())

    # --- timestamps at every format edge ------------------------------------------------
    for what, ts, expect, inside in [
        ("epoch seconds (int)", int(now - 60), VALID, True),
        ("epoch seconds with fraction", now - 60.123456, VALID, True),
        ("epoch milliseconds (int)", int((now - 60) * 1000), VALID, True),
        ("epoch milliseconds with fraction", (now - 60) * 1000 + 0.5, VALID, True),
        ("epoch 99999999999 (seconds: year 5138)", 99_999_999_999, "in_future", True),
        ("epoch 1e11 (milliseconds: 1973)", 100_000_000_000, "too_old", True),
        ("epoch 0", 0, "schema", True),
        ("negative epoch", -5, "schema", True),
        ("boolean timestamp", True, "schema", True),
        ("null timestamp", None, "schema", True),
        ("empty string timestamp", "", "schema", True),
        ("4 minutes ahead", now + 240, VALID, True),
        ("10 minutes ahead", now + 600, "in_future", True),
        ("31 days minus 10 minutes old", now - OLDEST + 600, VALID, False),
        ("31 days plus 10 minutes old", now - OLDEST - 600, "too_old", True),
        ("RFC 3339 Z", _rfc(now - 60).replace("+00:00", "Z"), VALID, True),
        ("RFC 3339 lower-case t and z", _rfc(now - 60).replace("T", "t")
         .replace("+00:00", "z"), VALID, True),
        ("RFC 3339 space separator", _rfc(now - 60, sep=" "), VALID, True),
        ("RFC 3339 +14:00", _rfc(now - 60, timezone(timedelta(hours=14))), VALID, True),
        ("RFC 3339 -12:00", _rfc(now - 60, timezone(timedelta(hours=-12))), VALID, True),
        ("RFC 3339 -00:00", _rfc(now - 60).replace("+00:00", "-00:00"), VALID, True),
        ("RFC 3339 no fraction", _rfc(now - 60, digits=0), VALID, True),
        ("RFC 3339 1 fraction digit", _rfc(now - 60, digits=1), VALID, True),
        ("RFC 3339 9 fraction digits", _rfc(now - 60, digits=9), VALID, True),
        ("RFC 3339 10 fraction digits", _rfc(now - 60, digits=9)[:29] + "1"
         + _rfc(now - 60)[-6:], "schema", True),
        ("RFC 3339 without offset", _rfc(now - 60)[:-6], "schema", True),
        ("RFC 3339 offset without colon", _rfc(now - 60)[:-3] + "00", "schema", True),
        ("February 30", "2026-02-30T10:00:00Z", "schema", True),
        ("hour 24", _rfc(now - 60)[:11] + "24:00:00Z", "schema", True),
        ("leap second 23:59:60", _rfc(now - 60)[:11] + "23:59:60Z", "schema", True),
        ("year 0000", "0000-01-01T00:00:00Z", "schema", True),
        ("year 0001", "0001-01-01T00:00:00Z", "too_old", True),
        ("year 9999", "9999-12-31T23:59:59Z", "in_future", True),
        ("41 characters", _rfc(now - 60, digits=9) + " " * 6, "schema", True),
        ("date only", _rfc(now - 60)[:10], "schema", True),
    ]:
        add(f"timestamp: {what}", expect, in_30d=inside, timestamp=ts)

    # --- shapes ------------------------------------------------------------------------
    add("duplicate keys: the last one wins", VALID,
        f'{{"event_id":"{MARK}-dupkey","event_id":"{MARK}-dupkey-2","name":"activation",'
        f'"user_id":"{MARK}-u-dupkey","timestamp":{now - 60}}}'.encode())
    add("Segment identify call without any id", "schema", type="identify",
        messageId=f"{MARK}-seg", event="activation", event_id=_DROP, name=_DROP,
        user_id=_DROP)
    add("Segment call of an unknown type", "schema", type="batch", messageId=f"{MARK}-seg2",
        event="activation", userId=f"{MARK}-seg-user", event_id=_DROP, name=_DROP,
        user_id=_DROP)
    add("properties as a list", "schema", properties=[f"{MARK}-free-text"])
    add("free text everywhere (dropped, event counts)", VALID,
        properties={"comment": f"{MARK} free text <script>", "plan": f"{MARK}-plan",
                    "nested": {"deep": [f"{MARK}-deep-text"]}},
        app_version=f"{MARK}-app", platform=f"{MARK}-platform")
    return out


def purchases_1e308(now: float, count: int = 3) -> list[bytes]:
    """Amounts at the top of the float range: their sum is beyond any float."""
    return [orjson.dumps({"event_id": f"{MARK}-huge-{i}", "name": "purchase",
                          "user_id": f"{MARK}-rich-{i}", "timestamp": now - 60,
                          "properties": {"amount": 1e308, "currency": "USD"}})
            for i in range(count)]
