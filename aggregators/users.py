"""Per-user state: what a user's *past* events must be remembered for.

Most metrics are a function of one event (its bucket, its label). A few join events
of one user: activation (signup -> first activation), funnels (steps in order within
the conversion window) and subscriptions (the change from the previous subscription
state). Their state lives with the user's partition of the by-user topic, is kept in
the partition's table like the cells, and is stamped with the highest source offset
applied to it: a replayed event at or below the stamp is already in every cell it
touched (user records are written after the cells of their batch, see
``streams/store.py``), so it is skipped as a whole.

At rest a user is one encoded record (a small JSON array); it is decoded when one of
the user's events arrives. Times are integer milliseconds, so every comparison is exact
and independent of how a timestamp was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# Components, each owned by one module:
#   activation: [signup_ms | None, [activation_ms, ...]]           (aggregators/activation.py)
#   funnels:    {funnel name: [[step_0 ms...], [step_1 ms...], ...]} (aggregators/funnels.py)
#   subs:       [floor, [[ts_ms, event_id, currency | None, plan, mrr_micros], ...]]
#                                                                  (aggregators/subscriptions.py)
#   life:       [first_ms, first_platform, last_ms, conversion_ms, {res: [bucket...]}]
#                                                                  (aggregators/lifecycle.py)


@dataclass(slots=True)
class UserState:
    """One user's remembered events; ``stamp`` is the highest offset applied."""

    stamp: int = -1
    activation: list[Any] | None = None
    funnels: dict[str, list[list[int]]] | None = None
    subs: list[Any] | None = None
    life: list[Any] | None = None

    def encode(self) -> bytes:
        # orjson returns its 4 KiB output buffer as the bytes object: kept for every user,
        # it would hold 4 KiB of RSS per ~40-byte record, so the record is copied out.
        return bytes(memoryview(orjson.dumps([self.stamp, self.activation, self.funnels,
                                              self.subs, self.life])))

    @classmethod
    def decode(cls, data: bytes) -> UserState:
        return cls(*orjson.loads(data))  # a record written before ``life`` has 4 parts

    def is_empty(self) -> bool:
        return (self.activation is None and not self.funnels and self.subs is None
                and self.life is None)


def to_ms(ts: float) -> int:
    """Event time in whole milliseconds (exact for any millisecond-precision timestamp)."""
    return round(ts * 1000)


class Deltas:
    """The cell updates one event causes through a user's state.

    Keyed by (cell kind, event time in ms) so the caller places them in the bucket of
    every resolution; ``current`` holds updates of the unbucketed "now" cells.
    Sums may be negative (a late event can change what an earlier one contributed).
    ``cells`` holds updates of one resolution's bucket only, keyed by cell key
    ``(kind, resolution, bucket start)``. ``moves`` holds a 1 that leaves the bucket of
    one time for the bucket of another, at every resolution where the two differ (the
    only updates of their kind, so the caller may apply them apart from the rest).
    Plain dicts: this is built for every event that touches a user's state.
    """

    __slots__ = ("cells", "current", "marks", "moves", "sums")

    def __init__(self) -> None:
        self.sums: dict[tuple[str, int], dict[str, int]] = {}
        self.marks: dict[tuple[str, int], set[str]] = {}
        self.current: dict[str, dict[str, int]] = {}
        self.cells: dict[tuple[str, int, int], dict[str, int]] = {}
        self.moves: list[tuple[str, int | None, int, str]] = []

    def add(self, kind: str, t_ms: int, label: str, amount: int) -> None:
        if amount:
            labels = self.sums.get((kind, t_ms))
            if labels is None:
                labels = self.sums[(kind, t_ms)] = {}
            labels[label] = labels.get(label, 0) + amount

    def mark(self, kind: str, t_ms: int, label: str) -> None:
        labels = self.marks.get((kind, t_ms))
        if labels is None:
            labels = self.marks[(kind, t_ms)] = set()
        labels.add(label)

    def move(self, kind: str, old_ms: int | None, new_ms: int, label: str) -> None:
        """1 from the bucket of ``old_ms`` (None: from nowhere) to that of ``new_ms``."""
        self.moves.append((kind, old_ms, new_ms, label))

    def add_cell(self, kind: str, res: int, start: int, label: str, amount: int) -> None:
        labels = self.cells.get((kind, res, start))
        if labels is None:
            labels = self.cells[(kind, res, start)] = {}
        labels[label] = labels.get(label, 0) + amount

    def add_current(self, kind: str, label: str, amount: int) -> None:
        if amount:
            labels = self.current.get(kind)
            if labels is None:
                labels = self.current[kind] = {}
            labels[label] = labels.get(label, 0) + amount

    def __bool__(self) -> bool:
        return bool(self.sums or self.marks or self.current or self.cells or self.moves)
