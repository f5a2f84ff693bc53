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
from collections.abc import MutableMapping
from typing import Any

import orjson

#: How long a link is kept after it was last confirmed by an identify or alias call (s):
#: as long as SPEC keeps a user's first-seen time.
LINK_RETENTION = 400 * 86400.0


class Links:
    """The links of one partition: anonymous identity -> [(offset, user id)] by offset.

    At rest an identity's links are one encoded record in ``records`` (a dict, or the
    worker's local store, ``state/local.py``); the identities changed since the last
    :meth:`take_dirty` are held decoded until then.
    """

    def __init__(self, records: MutableMapping[str, bytes] | None = None) -> None:
        self.records: MutableMapping[str, bytes] = {} if records is None else records
        #: anonymous identity -> [[(offset, user), ...], last confirmed], changed
        self._changed: dict[str, list[Any]] = {}
        #: changed identities not in ``records`` yet (for len)
        self._fresh: set[str] = set()

    def __len__(self) -> int:
        return len(self.records) + len(self._fresh)

    def _entry(self, anon: str) -> list[Any] | None:
        entry = self._changed.get(anon)
        if entry is None:
            data = self.records.get(anon)
            if data is not None:
                obj = orjson.loads(data)
                entry = [[(offset, user) for offset, user in obj["links"]], obj["confirmed"]]
        return entry

    def add(self, anon: str, offset: int, user: str, ts: float) -> None:
        """A link read at ``offset`` (its event time ``ts``). Idempotent under replay."""
        entry = self._entry(anon)
        if entry is None:
            entry = [[], 0.0]
            self._fresh.add(anon)
        self._changed[anon] = entry
        entry[1] = max(entry[1], ts)
        links = entry[0]
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
        if not anon.startswith("anon:"):
            return None  # only anonymous identities are linked
        entry = self._entry(anon)
        if entry is None:
            return None
        links = entry[0]
        i = bisect.bisect_left(links, (offset, ""))
        return links[i - 1][1] if i > 0 else None

    def take_dirty(self) -> dict[str, bytes | None]:
        """Anonymous identity -> its encoded links, changed since the last call."""
        out = {anon: self._encode(self._changed[anon]) for anon in sorted(self._changed)}
        self.records.update(out)
        self._changed.clear()
        self._fresh.clear()
        return dict(out)

    def encode(self, anon: str) -> bytes | None:
        entry = self._entry(anon)
        return None if entry is None else self._encode(entry)

    @staticmethod
    def _encode(entry: list[Any]) -> bytes:
        return bytes(memoryview(orjson.dumps({"links": entry[0], "confirmed": entry[1]})))

    def load(self, anon: str, data: bytes) -> None:
        """Restore one identity's links, merged with any already held."""
        if self._entry(anon) is None:
            self.records[anon] = data
            return
        obj = orjson.loads(data)
        for offset, user in obj["links"]:
            self.add(anon, offset, user, obj["confirmed"])
        self.records[anon] = self._encode(self._changed.pop(anon))
        self._fresh.discard(anon)

    def expire(self, now: float) -> list[str]:
        """Forget identities not confirmed for ``LINK_RETENTION``; returns them. Those
        changed since the last :meth:`take_dirty` were just confirmed: they stay."""
        cutoff = now - LINK_RETENTION
        gone = [anon for anon, data in self.records.items()
                if anon not in self._changed and orjson.loads(data)["confirmed"] < cutoff]
        for anon in gone:
            del self.records[anon]
        return gone
