"""Segment's and RudderStack's published example payloads, decoded as their libraries
send them (``tests/fixtures/producers/``; each file names its source pages).

Every example is either an event, counted under the configured name it stands for, or
an identify / alias / group call, ignored. None is rejected.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from leadline.config.definitions import load_definitions
from leadline.events.decoder import Decoder
from leadline.events.model import Event, Ignored

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "producers"
NOW = 1_765_000_000.0

#: messageId -> (name counted, identity, platform, amount, currency), or the ignored type.
EXPECTED: dict[str, tuple[str, str, str | None, float | None, str | None] | str] = {
    # Segment
    "022bb90c-bbac-11e4-8dfc-aa07a5b093db": ("User Registered", "97980cfea0067", "web", None, None),
    "ajs-f8ca1e4de5024d9430b3928bd8ac6b96": ("product_viewed", "AiUGstSDIg", "web", None, "USD"),
    "ajs-6f8ca1e4de5024d9430b3928bd8ac6b97": ("cart_added", "AiUGstSDIg", "web", None, None),
    "ajs-7f8ca1e4de5024d9430b3928bd8ac6b98": ("checkout_started", "AiUGstSDIg", "web", None, "USD"),
    "ajs-8f8ca1e4de5024d9430b3928bd8ac6b99": ("purchase", "AiUGstSDIg", "web", 25.0, "USD"),
    "ajs-9f8ca1e4de5024d9430b3928bd8ac6b9a": ("refund", "AiUGstSDIg", "web", 30.0, "USD"),
    "ajs-b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6": ("signup", "019mr8mf4r", "web", None, None),
    "022bb90c-bbac-11e4-8dfc-aa07a5b093da": ("page_view", "97980cfea0067", "web", None, None),
    "022bb90c-bbac-11e4-8dfc-aa07a5b093dc": ("screen_view", "97980cfea0067", "ios", None, None),
    "022bb90c-bbac-11e4-8dfc-aa07a5b093dd": "identify",
    "022bb90c-bbac-11e4-8dfc-aa07a5b093de": "alias",
    "022bb90c-bbac-11e4-8dfc-aa07a5b093df": "group",
    # RudderStack
    "1b8ee4c3-ffad-4457-bccf-30ff6ee6b3a8": ("Product Reviewed", "1hKOmRA4GRlm", "web", None, None),
    "2c9ff5d4-0abe-4568-8ce0-41ff7ff7c4b9": ("purchase", "1hKOmRA4GRlm", "web", 15.0, "USD"),
    "3e4ff5d4-1abe-4568-8ce0-41ff7ff7c4c0": ("page_view", "12345", "web", None, None),
    "1578564113557-af022c68-429e-4af4-8f2e-4b8bc6b3a1d7": (
        "screen_view", "anon:4b0ed89f-b2de-4d1f-8a47-b0c4bb3d3c24", "android", None, None),
    "5a6bb6e4-2cde-4568-8ce0-41ff7ff7c4d1": "identify",
}


def calls(source: str) -> list[dict[str, Any]]:
    return list(json.loads((FIXTURES / f"{source}.json").read_text())["calls"])


def recent(call: dict[str, Any], ts: float) -> dict[str, Any]:
    """The call with its event time moved to ``ts``, in the format it had."""
    moved = dict(call)
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    for field in ("timestamp", "originalTimestamp"):
        if field in moved:
            moved[field] = text.replace("+00:00", "Z")
    return moved


def decoded() -> dict[str, Event | Ignored]:
    decoder = Decoder(load_definitions())
    out: dict[str, Event | Ignored] = {}
    for source in ("segment", "rudderstack"):
        for i, call in enumerate(calls(source)):
            result = decoder.decode(orjson.dumps(recent(call, NOW - 60 * i)), NOW)
            assert isinstance(result, Event | Ignored), (source, call["messageId"], result)
            out[call["messageId"]] = result
    return out


def test_every_example_is_counted_or_ignored_never_rejected() -> None:
    assert set(decoded()) == set(EXPECTED)


@pytest.mark.parametrize("message_id", sorted(EXPECTED))
def test_each_example_means_what_its_spec_says(message_id: str) -> None:
    result, expected = decoded()[message_id], EXPECTED[message_id]
    if isinstance(expected, str):
        assert isinstance(result, Ignored) and result.type == expected
        return
    name, identity, platform, amount, currency = expected
    assert isinstance(result, Event)
    assert (result.name, result.identity, result.platform) == (name, identity, platform)
    props = result.props or {}
    assert props.get("amount") == amount
    assert props.get("currency") == currency
    assert result.country is None  # context.location.country is a name, not ISO 3166


def test_identify_and_alias_carry_the_pair_they_link() -> None:
    results = decoded()
    identify = results["022bb90c-bbac-11e4-8dfc-aa07a5b093dd"]
    alias = results["022bb90c-bbac-11e4-8dfc-aa07a5b093de"]
    assert identify == Ignored("identify", "97980cfea0067", "507f191e810c19729de860ea")
    assert alias == Ignored("alias", "507f191e81", "39239-239239-239239-23923")
