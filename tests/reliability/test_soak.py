"""The soak's own pieces that run without a worker."""

from __future__ import annotations

from reliability.soak import replaying


def test_replaying_sends_the_same_messages_round_and_round() -> None:
    messages = [(b"k%d" % i, b"v%d" % i) for i in range(3)]
    take = replaying(messages)
    assert take(0.0, 2) == messages[:2]
    assert take(0.1, 4) == [messages[2], *messages]
    assert take(0.2, 0) == []
    assert take(0.3, 1) == [messages[0]]
