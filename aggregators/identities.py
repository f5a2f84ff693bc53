"""Forward identity stitching: which user an anonymous id stands for, from which offset.

An ``identify`` or ``alias`` call that pairs an ``anonymousId`` with a ``userId`` is a
*link*. Links and the anonymous events they apply to meet in one partition of the
by-user topic (both are keyed ``anon:<anonymousId>``), so "later" is decided by offsets
in that partition: an anonymous event at offset *o* counts as the user of the latest
link at an offset below *o*, and as the anonymous identity when there is none.
Stitching is forward only: what was counted before the link stays as it was counted.

Because every link keeps the offset it came from, the answer for an event does not
depend on which links a replay finds already restored: links at or after the event's
offset are ignored, so a replay after a crash decides exactly as the first pass did.
A run of links to the same user is kept as its earliest offset (the answer is the
same for every offset), so an anonymous id identified on every page load costs one
entry, not one per call.
"""

from __future__ import annotations

import bisect

import orjson

#: How long a link is kept after it was last confirmed by an identify or alias call (s):
#: as long as SPEC keeps a user's first-seen time.
LINK_RETENTION = 400 * 86400.0


class Links:
    """The links of one partition: anonymous identity -> [(offset, user id)] by offset."""

    def __init__(self) -> None:
        self._by_anon: dict[str, list[tuple[int, str]]] = {}
        self._confirmed: dict[str, float] = {}
        self._dirty: set[str] = set()

    def __len__(self) -> int:
        return len(self._by_anon)

    def add(self, anon: str, offset: int, user: str, ts: float) -> None:
        """A link read at ``offset`` (its event time ``ts``). Idempotent under replay."""
        links = self._by_anon.setdefault(anon, [])
        self._confirmed[anon] = max(self._confirmed.get(anon, 0.0), ts)
        self._dirty.add(anon)
        i = bisect.bisect_left(links, (offset, ""))
        if i < len(links) and links[i][0] == offset:
            return  # replayed
        if i > 0 and links[i - 1][1] == user:
            return  # the earlier link already says so for every later offset
        links.insert(i, (offset, user))
        if i + 1 < len(links) and links[i + 1][1] == user:
            del links[i + 1]  # now said from an earlier offset

    def user_at(self, anon: str, offset: int) -> str | None:
        """The user ``anon`` stands for at ``offset``, or None before any link."""
        links = self._by_anon.get(anon)
        if not links:
            return None
        i = bisect.bisect_left(links, (offset, ""))
        return links[i - 1][1] if i > 0 else None

    def take_dirty(self) -> dict[str, bytes | None]:
        """Anonymous identity -> its encoded links (None: forgotten), changed since the
        last call."""
        out = {anon: self.encode(anon) for anon in sorted(self._dirty)}
        self._dirty.clear()
        return out

    def encode(self, anon: str) -> bytes | None:
        links = self._by_anon.get(anon)
        if links is None:
            return None
        return orjson.dumps({"links": links, "confirmed": self._confirmed[anon]})

    def load(self, anon: str, data: bytes) -> None:
        """Restore one identity's links, merged with any already held."""
        obj = orjson.loads(data)
        for offset, user in obj["links"]:
            self.add(anon, offset, user, obj["confirmed"])
        self._dirty.discard(anon)

    def expire(self, now: float) -> list[str]:
        """Forget identities not confirmed for ``LINK_RETENTION``; returns them."""
        gone = [a for a, t in self._confirmed.items() if t < now - LINK_RETENTION]
        for anon in gone:
            del self._by_anon[anon], self._confirmed[anon]
            self._dirty.discard(anon)
        return gone
