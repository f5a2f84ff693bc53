"""Idempotency: an ``event_id`` seen again within 24 hours counts once.

Per partition of the by-user topic (a user's events, and so all copies of an event,
share one partition). Each id is remembered with the offset of its first occurrence,
so a *replay* of that same message after a crash is told apart from a true
duplicate: the replay is processed again (cell stamps then skip what is already
counted), the duplicate is dropped. Ids are kept as 64-bit hashes in hourly
generations; a generation is forgotten 25 hours after it started.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import xxhash

RETENTION = 25 * 3600
HOUR = 3600
_ENTRY = struct.Struct("<QQ")


def id_hash(event_id: str) -> int:
    return xxhash.xxh3_64_intdigest(event_id.encode())


class Deduper:
    """Seen ids of one partition. ``chunk`` batches new ids for the changelog."""

    def __init__(self) -> None:
        self._first: dict[int, int] = {}
        self._hour_of: dict[int, list[int]] = {}
        self._pending: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._first)

    def is_duplicate(self, event_id: str, offset: int, now: float) -> bool:
        """True if another message already carried this id (a replay of itself is not)."""
        h = id_hash(event_id)
        first = self._first.get(h)
        if first is None:
            self._first[h] = offset
            self._hour_of.setdefault(int(now // HOUR) * HOUR, []).append(h)
            self._pending.append((h, offset))
            return False
        return first != offset

    def take_chunk(self) -> bytes | None:
        """The ids first seen since the last call, as one changelog value."""
        if not self._pending:
            return None
        data = b"".join(_ENTRY.pack(h, o) for h, o in self._pending)
        self._pending.clear()
        return data

    def load_chunk(self, hour: int, data: bytes) -> None:
        """Restore ids from a changelog value written by :meth:`take_chunk`."""
        hashes = self._hour_of.setdefault(hour, [])
        for h, o in _ENTRY.iter_unpack(data):
            prev = self._first.get(h)
            if prev is None or o < prev:
                self._first[h] = o
            hashes.append(h)

    def expire(self, now: float) -> list[int]:
        """Forget generations older than the retention; returns the hours dropped."""
        cutoff = now - RETENTION
        dropped = [hour for hour in self._hour_of if hour < cutoff]
        for hour in dropped:
            for h in self._hour_of.pop(hour):
                self._first.pop(h, None)
        return dropped

    def hours(self) -> Iterable[int]:
        return self._hour_of.keys()
