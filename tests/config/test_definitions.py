"""The definitions file: the bundled default, and every error with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadline.config.definitions import (
    BUNDLED,
    Definitions,
    DefinitionsError,
    load_definitions,
    parse_definitions,
    parse_duration,
)

SPEC_NAMES = {
    "signup", "activation", "session_start", "feature_used", "product_viewed", "cart_added",
    "checkout_started", "purchase", "refund", "subscription_started", "subscription_changed",
    "subscription_cancelled", "nps_submitted", "csat_submitted",
}


def test_the_bundled_file_validates() -> None:
    d = load_definitions()
    assert isinstance(d, Definitions)
    assert d.window_seconds == {"5m": 300, "1h": 3600, "24h": 86400, "7d": 604800,
                                "30d": 2592000}
    assert list(d.window_seconds) == ["5m", "1h", "24h", "7d", "30d"]
    assert d.funnels["checkout"].steps == ["product_viewed", "cart_added", "checkout_started",
                                           "purchase"]
    assert d.funnels["checkout"].within_seconds == 3600
    assert (d.surveys["nps"].event, d.surveys["nps"].min, d.surveys["nps"].max) == (
        "nps_submitted", 0, 10)
    assert (d.surveys["csat"].event, d.surveys["csat"].min, d.surveys["csat"].max) == (
        "csat_submitted", 1, 5)
    assert d.events.conversion == "purchase"
    assert d.activation.within_seconds == 7 * 86400
    assert d.known_names >= SPEC_NAMES  # SPEC section 2: each gets its own name label
    assert d.labels.platform == ["web", "ios", "android"]
    assert "USD" in d.labels.currency and "EUR" in d.labels.currency
    assert load_definitions(BUNDLED) == d


def test_empty_text_gives_the_defaults() -> None:
    d = parse_definitions("", "empty.yaml")
    assert d.windows == ["5m", "1h", "24h", "7d", "30d"]
    assert d.known_names >= {"signup", "purchase", "refund"}


def test_load_definitions_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("windows: [5m]\nlabels:\n  platform: [web, web]\n", encoding="utf-8")
    with pytest.raises(DefinitionsError) as err:
        load_definitions(path)
    assert str(err.value) == f"{path}:3: labels.platform: 'web' is listed twice"
    with pytest.raises(DefinitionsError, match="cannot read"):
        load_definitions(tmp_path / "missing.yaml")


def test_custom_definitions(tmp_path: Path) -> None:
    text = ("windows: [1m, 2d]\nevents:\n  conversion: order_paid\n  known: [order_paid]\n"
            "labels:\n  platform: [tv]\n  currency: [CHF]\n")
    d = parse_definitions(text, "custom.yaml")
    assert d.window_seconds == {"1m": 60, "2d": 172800}
    assert "order_paid" in d.known_names
    assert d.labels.platform == ["tv"] and d.labels.currency == ["CHF"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("windows: [5m, 1x]\n",
         "f.yaml:1: windows: '1x' is not a duration like 30s, 5m, 1h or 7d"),
        ("windows: [5m]\nactivation:\n  within: 0d\n",
         "f.yaml:3: activation.within: '0d' is not a duration like 30s, 5m, 1h or 7d"),
        ("windows:\n  - 5m\n  - 60m\n  - 1h\n",
         "f.yaml:2: windows: two windows have the same length"),
        ("# comment\nwindows: [5m, 401d]\n",
         "f.yaml:2: windows: the longest window may be at most 400d"),
        ("windows: [5m]\nlabels:\n  platform: [web, all]\n",
         "f.yaml:3: labels.platform: 'all' is reserved: leadline adds it itself"),
        ("labels:\n  plan: [other]\n",
         "f.yaml:2: labels.plan: 'other' is reserved: leadline adds it itself"),
        ("labels:\n  platform: [web, ios, web]\n",
         "f.yaml:2: labels.platform: 'web' is listed twice"),
        ("labels:\n  platform: ['we b']\n",
         "f.yaml:2: labels.platform: 'we b' is not a label value (1..64 of [A-Za-z0-9_.-])"),
        ("labels:\n  currency: [USD, usd]\n",
         "f.yaml:2: labels.currency: 'usd' is not an ISO 4217 code (three capital letters)"),
        ("labels:\n  currency: [USD, DOLLAR]\n",
         "f.yaml:2: labels.currency: 'DOLLAR' is not an ISO 4217 code (three capital letters)"),
        ("funnels:\n  f:\n    steps: [a]\n",
         "f.yaml:3: funnels.f.steps: List should have at least 2 items after validation, not 1"),
        ("funnels:\n  f:\n    steps: [a, b, a]\n",
         "f.yaml:3: funnels.f.steps: a funnel step may appear only once"),
        ("surveys:\n  nps:\n    event: nps_submitted\n    min: 10\n    max: 0\n",
         "f.yaml:3: surveys.nps: min 10 is greater than max 0"),
        ("windows: [5m]\nbogus: 1\n", "f.yaml:2: bogus: unknown field"),
        ("events:\n  signup: signup\n  sigup: x\n", "f.yaml:3: events.sigup: unknown field"),
        ("surveys:\n  nps: {event: nps_submitted, min: 0, max: 10, weight: 2}\n",
         "f.yaml:2: surveys.nps.weight: unknown field"),
        ("events:\n  signup: 'sign up'\n",
         "f.yaml:2: events.signup: 'sign up' is not an event name (1..64 of [A-Za-z0-9_.:-])"),
        ("events:\n  known: [ok, other]\n",
         "f.yaml:2: events.known: 'other' is reserved for names not listed here"),
        ("features: [search, all]\n",
         "f.yaml:1: features: 'all' is reserved: leadline adds it itself"),
        ("- windows\n- labels\n", "f.yaml:1: the definitions must be a mapping of sections"),
        ("just text\n", "f.yaml:1: the definitions must be a mapping of sections"),
        ("windows: [5m\nfoo: 1\n", "f.yaml:2: not valid YAML: expected ',' or ']', but got ':'"),
        ("a: 1\n b: 2\n", "f.yaml:2: not valid YAML: mapping values are not allowed here"),
    ],
)
def test_validation_errors_name_line_and_field(text: str, message: str) -> None:
    with pytest.raises(DefinitionsError) as err:
        parse_definitions(text, "f.yaml")
    assert str(err.value) == message


def test_block_list_errors_point_at_the_list() -> None:
    text = "funnels:\n  f:\n    steps:\n      - a\n      - b\n      - a\n"
    with pytest.raises(DefinitionsError) as err:
        parse_definitions(text, "f.yaml")
    assert str(err.value) == "f.yaml:4: funnels.f.steps: a funnel step may appear only once"


def test_an_error_deep_in_the_bundled_file_has_its_line() -> None:
    text = BUNDLED.read_text(encoding="utf-8")
    bad = text.replace("currency: [USD, EUR,", "currency: [USD, eur,")
    assert bad != text
    line = next(i for i, ln in enumerate(bad.splitlines(), 1) if "eur," in ln)
    with pytest.raises(DefinitionsError) as err:
        parse_definitions(bad, "leadline.yaml")
    assert str(err.value) == (f"leadline.yaml:{line}: labels.currency: "
                              "'eur' is not an ISO 4217 code (three capital letters)")


def test_every_error_is_reported() -> None:
    with pytest.raises(DefinitionsError) as err:
        parse_definitions("windows: [5x]\nlabels:\n  platform: [all]\nextra: 1\n", "f.yaml")
    lines = str(err.value).splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("f.yaml:1: windows: ")
    assert lines[1].startswith("f.yaml:3: labels.platform: ")
    assert lines[2] == "f.yaml:4: extra: unknown field"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600),
                                               ("7d", 604800), ("400d", 400 * 86400)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0s", "5", "m", "1.5h", "-1h", "1w", "", "5 m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    "text",
    ['events:\n  signup: "signup\\n"\n', 'labels:\n  platform: ["web\\n"]\n',
     'windows: ["5m\\n"]\n'],
)
def test_trailing_newline_in_names_is_rejected(text: str) -> None:
    with pytest.raises(DefinitionsError):
        parse_definitions(text, "f.yaml")


def test_the_bundled_aliases_are_segments_semantic_events() -> None:
    d = load_definitions()
    assert d.alias_of == {
        "Signed Up": "signup", "Product Viewed": "product_viewed",
        "Product Added": "cart_added", "Checkout Started": "checkout_started",
        "Order Completed": "purchase", "Order Refunded": "refund"}
    assert {"page_view", "screen_view"} <= d.known_names


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ("    refund: [Order Refunded, Order Completed]\n    purchase: [Order Completed]\n",
         "alias 'Order Completed' is already claimed by 'refund'"),
        ("    refund: [purchase]\n", "alias 'purchase' is itself a configured event name"),
        ("    not_configured: [Something]\n", "'not_configured' is not a configured event name"),
        ("    refund: [\"line\\nbreak\"]\n", "is not an event name as messages carry it"),
    ],
)
def test_check_config_rejects_conflicting_aliases(aliases: str, message: str) -> None:
    text = "events:\n  aliases:\n" + aliases
    with pytest.raises(DefinitionsError) as err:
        parse_definitions(text, "f.yaml")
    assert message in str(err.value)
    assert "f.yaml:" in str(err.value)
