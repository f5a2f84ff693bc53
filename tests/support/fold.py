"""The worker's fold in process, for the oracle tests of the SPEC 3b metrics.

Messages are decoded by the worker's own decoder, deduplicated, keyed to partitions as
``streams/agents.py`` keys them, folded into partition states in offset order, and
scraped through the indicators, as a worker does, without Kafka. :func:`crash_replay`
writes checkpoints in the store's order (cells, then user and session records), crashes
in the middle of one and replays from an earlier committed offset.
"""

from __future__ import annotations

import itertools
import zlib
from typing import Any

from hypothesis import strategies as st

from leadline.aggregators.cells import Cell
from leadline.aggregators.indicators import Indicators
from leadline.aggregators.kinds import CellKey
from leadline.aggregators.partition import PartitionState
from leadline.config.definitions import load_definitions
from leadline.events.decoder import Decoder
from leadline.events.model import Event

D = load_definitions()
#: 2027-01-15 12:00 UTC: far from midnight, which the lifecycle corpus needs.
NOW = 1_800_000_000.0 + 4 * 3600
PARTITIONS = 4

Samples = dict[tuple[str, frozenset], float]
Messages = list[tuple[bytes | None, bytes]]


def decoded(messages: Messages, seen: set[str]) -> list[Event]:
    """The valid events, first delivery only (the dedupe step's job), in message order."""
    decoder = Decoder(D)
    out = []
    for _, value in messages:
        ev = decoder.decode(value, NOW)
        if isinstance(ev, Event) and ev.event_id not in seen:
            seen.add(ev.event_id)
            out.append(ev)
    return out


def partition_of(ev: Event) -> int:
    key = ev.identity or "spend:" + ev.event_id  # as streams/agents.py keys them
    return zlib.crc32(key.encode()) % PARTITIONS


class Fold:
    """Partition states fed as the worker feeds them: by key, offsets in order."""

    def __init__(self) -> None:
        self.states = [PartitionState(D) for _ in range(PARTITIONS)]
        self.offsets = [0] * PARTITIONS

    def feed(self, events: list[Event], now: float = NOW) -> None:
        for ev in events:
            p = partition_of(ev)
            self.states[p].fold(self.offsets[p], ev, now)
            self.offsets[p] += 1
        for state in self.states:
            state.take_dirty_users()
            state.take_dirty_sessions()

    def scrape(self, now: float = NOW) -> Samples:
        return scrape(self.states, now)


def scrape(states: list[PartitionState], now: float = NOW) -> Samples:
    cells = [(k, Cell.decode(c.encode())) for s in states for k, c in s.cells.items()]
    return {(s.metric, frozenset(s.labels)): s.value
            for s in Indicators(D).compute(cells, now)}


def crash_replay(events: list[Event], data: Any) -> tuple[Samples, Samples]:
    """(samples after a crash mid-checkpoint and a replay, samples of one clean fold), one
    partition; hypothesis ``data`` draws the batches, the crash and what landed."""
    n = len(events)
    cuts = sorted({0, n, *data.draw(st.lists(st.integers(1, n), max_size=5), label="cuts")})
    batches = list(itertools.pairwise(cuts))
    crash = data.draw(st.integers(0, len(batches) - 1), label="crash batch")
    cells: dict[CellKey, bytes] = {}
    users: dict[str, bytes] = {}
    sessions: dict[str, bytes] = {}
    live = PartitionState(D)
    for i, (lo, hi) in enumerate(batches[: crash + 1]):
        for offset in range(lo, hi):
            live.fold(offset, events[offset], NOW)
        records = [("c", k, blob) for k, (_, blob) in live.take_dirty().items()]
        records += [("u", k, blob) for k, (_, blob) in live.take_dirty_users().items()]
        records += [("s", k, blob) for k, (_, blob) in live.take_dirty_sessions().items()]
        landed = len(records) if i < crash else data.draw(
            st.integers(0, len(records)), label="records landed")
        for kind, key, blob in records[:landed]:
            {"c": cells, "u": users, "s": sessions}[kind][key] = blob  # type: ignore[index]
    committed = data.draw(st.integers(0, batches[crash][0]), label="committed offset")
    restored = PartitionState(D)
    for key, blob in cells.items():
        restored.load(key, blob)
    for identity, blob in users.items():
        restored.load_user(identity, blob)
    for key, blob in sessions.items():
        restored.load_session(key, blob)
    for offset in range(committed, n):
        restored.fold(offset, events[offset], NOW)
    whole = PartitionState(D)
    for offset, ev in enumerate(events):
        whole.fold(offset, ev, NOW)
    return scrape([restored]), scrape([whole])
