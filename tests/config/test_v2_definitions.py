"""The SPEC 3b sections of the definitions: retention days, churn and net
revenue retention windows, spend channels, performance events; errors name file, line
and field."""

from __future__ import annotations

import pytest

from leadline.config.definitions import DefinitionsError, load_definitions, parse_definitions


def test_bundled_lifecycle_sections() -> None:
    d = load_definitions()
    assert d.retention.days == [1, 7, 28]
    assert d.retention.forget_after_seconds == 400 * 86400
    assert d.churn_windows == ["24h", "7d"]
    assert d.revenue_retention_windows == ["7d", "30d"]
    assert "marketing_spend" in d.known_names
    assert d.marketing.channels[:2] == ["google", "meta"]
    # too_old: the longest window + 1 d (31 d) is longer than day 28 + 2 d
    assert d.oldest_event == 31 * 86400


def test_a_long_retention_day_extends_too_old() -> None:
    d = parse_definitions("retention:\n  days: [1, 60]\n", "f.yaml")
    assert d.oldest_event == 62 * 86400


def test_default_windows_follow_the_configured_ones() -> None:
    d = parse_definitions("windows: [1h, 24h]\n", "f.yaml")
    assert d.churn_windows == ["24h"]
    assert d.revenue_retention_windows == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("windows: [1h, 24h]\nchurn:\n  windows:\n    - 24h\n    - 7d\n",
         "f.yaml:5: churn.windows.1: '7d' is not one of the configured windows ['1h', '24h']"),
        ("revenue_retention:\n  windows: [90d]\n",
         "f.yaml:2: revenue_retention.windows.0: '90d' is not one of the configured windows "
         "['5m', '1h', '24h', '7d', '30d']"),
        ("retention:\n  days: [1, 0]\n", "f.yaml:2: retention.days: retention day 0 is outside "
         "1..365"),
        ("retention:\n  days: [7, 7]\n", "f.yaml:2: retention.days: a retention day is listed "
         "twice"),
        ("retention:\n  forget_after: 20d\n",
         "f.yaml:2: retention.forget_after: 20d is shorter than the oldest event that counts "
         "(31d): a user would be new twice inside one window"),
        ("marketing:\n  channels: [google, all]\n",
         "f.yaml:2: marketing.channels: 'all' is reserved: leadline adds it itself"),
        ("churn:\n  windows: [24h, 24h]\n", "f.yaml:2: churn.windows: a window is listed twice"),
    ],
)
def test_lifecycle_rules_name_line_and_field(text: str, message: str) -> None:
    with pytest.raises(DefinitionsError) as err:
        parse_definitions(text, "f.yaml")
    assert str(err.value) == message


def test_performance_section() -> None:
    d = load_definitions()
    assert d.performance.events == ["page_load", "api_request"]
    assert d.performance.crash == "app_crash"
    assert {"page_load", "api_request", "app_crash"} <= d.known_names
    with pytest.raises(DefinitionsError) as err:
        parse_definitions("performance:\n  events: [page_load]\n  crash: page_load\n", "f.yaml")
    assert str(err.value) == "f.yaml:3: performance.crash: 'page_load' is also a performance event"
    with pytest.raises(DefinitionsError) as err:
        parse_definitions("performance:\n  events: [a b]\n", "f.yaml")
    assert "performance.events" in str(err.value)
