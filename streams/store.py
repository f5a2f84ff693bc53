"""Partition states and dedupers, with a Faust table as their state of record.

Every changed cell is written to the ``state`` table once per batch (one changelog
record to the changelog partition of the by-user partition it belongs to), and
every batch's first-seen event ids as one record. After a rebalance or a crash the
table is recovered from its changelog by Faust, and the in-memory states are
rebuilt from it; cell stamps make the replay of not-yet-committed events exact.
Table keys: ``{p}|c|{kind}/{res}/{start}`` for cells, ``{p}|d|{hour}|{offset}`` for ids.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from aggregators.dedupe import HOUR, RETENTION, Deduper
from aggregators.partition import CellKey, PartitionState, key_text, parse_key
from config.definitions import Definitions

log = logging.getLogger(__name__)


def cell_table_key(p: int, key: CellKey) -> bytes:
    return f"{p}|c|{key_text(key)}".encode()


class PartitionStore:
    """In-memory working state of the partitions this worker owns."""

    def __init__(self, definitions: Definitions, table: Any) -> None:
        self.definitions = definitions
        self.table = table
        self.states: dict[int, PartitionState] = {}
        self.dedupers: dict[int, Deduper] = {}


    def rebuild(self, owned: set[int]) -> set[int]:
        """Align in-memory states with the owned partitions, loading new ones from the table.

        Returns the partitions that were (re)loaded and must be republished.
        """
        for p in set(self.states) - owned:
            del self.states[p]
            del self.dedupers[p]
        new = owned - set(self.states)
        if not new:
            return set()
        for p in new:
            self.states[p] = PartitionState(self.definitions)
            self.dedupers[p] = Deduper()
        loaded: dict[int, int] = defaultdict(int)
        for raw_key, value in list(self.table.data.items()):
            text = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            p_text, kind, rest = text.split("|", 2)
            p = int(p_text)
            if p not in new or value is None:
                continue
            if kind == "c":
                self.states[p].load(parse_key(rest), value)
            else:
                self.dedupers[p].load_chunk(int(rest.split("|")[0]), value)
            loaded[p] += 1
        log.info("recovered partitions %s (%s table records)", sorted(new), dict(loaded))
        return new

    def flush(self, p: int, now: float) -> dict[CellKey, tuple[int, bytes]]:
        """Write partition ``p``'s changed cells and new ids to the table; return the cells."""
        state = self.states[p]
        changed = state.take_dirty()
        for key, (_, data) in changed.items():
            self._write(p, cell_table_key(p, key), data)
        chunk = self.dedupers[p].take_chunk()
        if chunk is not None:
            hour = int(now // HOUR) * HOUR
            self._write(p, f"{p}|d|{hour}|{state_chunk_id(chunk)}".encode(), chunk)
        return changed

    def expire(self, p: int, now: float) -> list[CellKey]:
        """Drop cells and id generations past their horizon (tombstones in the changelog)."""
        gone = self.states[p].expired(now)
        for key in gone:
            self._write(p, cell_table_key(p, key), None)
        dropped_hours = set(self.dedupers[p].expire(now))
        if dropped_hours:
            prefix = f"{p}|d|"
            for raw_key in list(self.table.data.keys()):
                text = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
                if text.startswith(prefix) and int(text.split("|")[2]) < now - RETENTION:
                    self._write(p, raw_key, None)
        return gone

    def _write(self, p: int, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.table.data.pop(key, None)
        else:
            self.table.data[key] = value
        self.table.send_changelog(p, key, value)


def state_chunk_id(chunk: bytes) -> str:
    """A key suffix unique to the chunk: the offset of its first id."""
    return str(int.from_bytes(chunk[8:16], "little"))
