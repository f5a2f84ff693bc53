"""The canonical, validated product event and its compact internal encoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid Segment / RudderStack call that is not an event: ``identify``, ``alias`` or
    ``group``. Counted in ``leadline_messages_ignored_total{type}``, never dead-lettered.

    ``user_id`` and ``anonymous_id`` are the pair an ``identify`` or ``alias`` links
    (``alias``: ``previousId`` stands for the anonymous id), ``None`` where absent.
    """

    type: str
    user_id: str | None = None
    anonymous_id: str | None = None

    @property
    def link(self) -> tuple[str, str] | None:
        """(anonymous identity, user id) when this call links them, else None."""
        if self.type in ("identify", "alias") and self.user_id and self.anonymous_id:
            return "anon:" + self.anonymous_id, self.user_id
        return None


def encode_link(user_id: str, confirmed_at: float) -> bytes:
    """A link record for the by-user topic, keyed by the anonymous identity it links.

    Events there are JSON arrays (:meth:`Event.encode`); a link is a JSON object."""
    return orjson.dumps({"link": user_id, "at": confirmed_at})


def is_link(data: bytes) -> bool:
    return data[:1] == b"{"


def decode_link(data: bytes) -> tuple[str, float]:
    """(user id, when it was confirmed) of a link record."""
    obj = orjson.loads(data)
    return obj["link"], obj["at"]


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is slower (hot path)
class Event:
    """A validated event. ``identity`` is ``user_id``, else ``anon:`` + ``anonymous_id``.

    ``props`` keeps only the properties leadline understands (amount, currency, plan,
    mrr, score, feature, channel, duration_ms, status, error), already validated; free
    text never travels further. ``session_id``: top-level, else ``properties.session_id``.
    """

    event_id: str
    identity: str
    ts: float
    name: str
    platform: str | None = None
    country: str | None = None
    app_version: str | None = None
    props: dict[str, Any] | None = None
    session_id: str | None = None

    def encode(self) -> bytes:
        """Compact form for the internal by-user topic."""
        return orjson.dumps(
            [self.event_id, self.identity, self.ts, self.name, self.platform,
             self.country, self.app_version, self.props, self.session_id]
        )

    @classmethod
    def decode(cls, data: bytes) -> Event:
        """Inverse of :meth:`encode` (internal data: trusted, already validated)."""
        return cls(*orjson.loads(data))
