"""The soak's own pieces that run without a worker."""

from __future__ import annotations

import pytest

from reliability.soak import replaying, rest_growth


def test_replaying_sends_the_same_messages_round_and_round() -> None:
    messages = [(b"k%d" % i, b"v%d" % i) for i in range(3)]
    take = replaying(messages)
    assert take(0.0, 2) == messages[:2]
    assert take(0.1, 4) == [messages[2], *messages]
    assert take(0.2, 0) == []
    assert take(0.3, 1) == [messages[0]]


def test_rest_growth_compares_the_samples_at_rest_per_minute() -> None:
    first = {"t": 450.0, "drained": True, "state_mib": 100.0, "in_use_mib": 160.0,
             "free_resident_mib": 20.0, "in_use_beyond_state_mib": 60.0,
             "rss_beyond_state_mib": 110.0, "anon_beyond_state_mib": 90.0}
    last = {"t": 1830.0, "drained": True, "state_mib": 330.0, "in_use_mib": 396.0,
            "free_resident_mib": 25.0, "in_use_beyond_state_mib": 66.0,
            "rss_beyond_state_mib": 119.2, "anon_beyond_state_mib": 92.3}
    growth = rest_growth([first, last])  # 23 minutes apart
    assert growth["in_use_beyond_state_mib_per_min"] == pytest.approx(6 / 23, abs=0.005)
    assert growth["rss_beyond_state_mib_per_min"] == pytest.approx(0.4)
    assert growth["anon_beyond_state_mib_per_min"] == pytest.approx(0.1)
    assert growth["state_mib_per_min"] == pytest.approx(10.0)
    assert growth["samples"] == [first, last]
    # no verdict without two samples of a drained worker
    assert "in_use_beyond_state_mib_per_min" not in rest_growth([first])
    assert "rss_beyond_state_mib_per_min" not in rest_growth(
        [first, last | {"drained": False}])
