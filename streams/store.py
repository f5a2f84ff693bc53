"""Partition states and dedupers, with a Faust table as their state of record.

Every batch hands its changed cells to the serving view (:meth:`PartitionStore.take_changed`).
The table is written less often, at each :meth:`PartitionStore.checkpoint` (every
consumer commit, see ``streams/checkpoint.py``): every cell changed since the last one,
once, in its latest form (one changelog record to the changelog partition of the
by-user partition it belongs to), then the first-seen event ids since then as one
record, then every changed user's state (``aggregators/users.py``), then every changed
identity link (``aggregators/identities.py``). Writing once per checkpoint instead of
once per batch keeps the changelog to what changed per commit interval. Sessions
(``aggregators/sessions.py``) are written after the users, each with its own stamp. After a
rebalance or a crash the table is recovered from its changelog by Faust, and the
in-memory states are rebuilt from it; stamps make the replay of not-yet-committed
events exact.
Table keys: ``{p}|c|{kind}/{res}/{start}`` for cells, ``{p}|d|{hour}|{offset}`` for ids,
``{p}|u|{identity}`` for user states, ``{p}|s|{session key}`` for sessions,
``{p}|l|{anonymous identity}`` for links.

Why the write order matters: a partition's changelog records become durable as a
prefix of the order they were sent in. A user record is sent after the cells of its
batch, so a restored user whose stamp is >= an offset proves that every cell that
offset touched holds it (the whole event is skipped on replay); a user restored with
an older stamp re-derives exactly what the event adds, and cell stamps skip the cells
that already hold it.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from leadline.aggregators.dedupe import HORIZON, Deduper
from leadline.aggregators.identities import Links
from leadline.aggregators.kinds import CellKey, key_text, parse_key
from leadline.aggregators.partition import PartitionState
from leadline.config.definitions import Definitions
from leadline.state.local import LINKS, SESSIONS, USERS, LocalStore
from leadline.streams.faust_adapter import recovered_keys

log = logging.getLogger(__name__)


def cell_table_key(p: int, key: CellKey) -> bytes:
    return f"{p}|c|{key_text(key)}".encode()


def user_table_key(p: int, identity: str) -> bytes:
    return f"{p}|u|{identity}".encode()


def is_stamped_record(table_key: bytes) -> bool:
    """True for a user's or a session's record (``{p}|u|...``, ``{p}|s|...``): its stamp
    says every cell its offset touched holds that event, so it goes after the cells."""
    return table_key.split(b"|", 2)[1:2] in ([b"u"], [b"s"])


def session_table_key(p: int, key: str) -> bytes:
    return f"{p}|s|{key}".encode()


def link_table_key(p: int, anon: str) -> bytes:
    return f"{p}|l|{anon}".encode()


#: How often per-user state is swept for times no window can show any more (s).
USER_PRUNE_INTERVAL = 3600.0

#: Recovered user records are written to the local store in batches of this many.
_LOAD_BATCH = 10_000


class PartitionStore:
    """Working state of the partitions this worker owns.

    Cells and the event ids of the current hour are in memory. When they are given,
    per-user states, sessions and identity links are in ``local`` (on disk,
    ``state/local.py``) and the event ids of past hours in files under ``ids``
    (``aggregators/dedupe.py``); else in memory too. ``horizon``: the dedupe horizon (s).
    """

    def __init__(self, definitions: Definitions, table: Any,
                 local: LocalStore | None = None, *, ids: Path | None = None,
                 horizon: float = HORIZON) -> None:
        self.definitions = definitions
        self.table = table
        self.local = local
        self.ids = ids
        self.horizon = horizon
        #: Each partition's id files, a new directory per incarnation: a batch of an
        #: earlier incarnation still in flight never writes into the current one's.
        self._spill_dirs: dict[int, Path] = {}
        self._incarnations = itertools.count()
        self.states: dict[int, PartitionState] = {}
        self.dedupers: dict[int, Deduper] = {}
        #: Identity links of each partition (forward stitching of anonymous ids).
        self.links: dict[int, Links] = {}
        self._pruned_at: dict[int, float] = {}
        #: Changelog records not yet handed to a checkpoint, in write order (expiry's
        #: tombstones, and records a failed checkpoint put back).
        self.outbox: list[tuple[int, bytes, bytes | None]] = []
        #: Cells changed since the last checkpoint, per partition: their latest encoding.
        self._unwritten: dict[int, dict[CellKey, bytes]] = {}
        #: Table keys of the id chunks, per partition and hour: what expiry tombstones.
        self._chunk_keys: dict[int, dict[int, list[bytes]]] = {}

    def open(self) -> None:
        """Take the worker's local files: lock and empty the local store, and empty the
        id files a previous process left (``LocalStore.open`` fails if another process
        holds them). The worker calls it at start; ``rebuild`` opens the store anyway."""
        if self.local is not None:
            self.local.open()
        if self.ids is not None:
            shutil.rmtree(self.ids, ignore_errors=True)

    def close(self) -> None:
        if self.local is not None:
            self.local.close()

    def rebuild(self, owned: set[int]) -> set[int]:
        """Align in-memory states with the owned partitions, loading new ones from the table.

        Returns the partitions that were (re)loaded and must be republished.
        """
        self.forget(set(self.states) - owned)
        new = owned - set(self.states)
        if not new:
            return set()
        for p in new:
            if self.local is None:
                self.states[p] = PartitionState(self.definitions)
            else:
                self.states[p] = PartitionState(self.definitions, self.local.records(USERS, p),
                                                self.local.records(SESSIONS, p))
            spill = None
            if self.ids is not None:
                spill = self._spill_dirs[p] = self.ids / f"{p}.{next(self._incarnations)}"
            self.dedupers[p] = Deduper(self.horizon, spill)
            self.links[p] = Links(None if self.local is None else self.local.records(LINKS, p))
        loaded: dict[int, int] = defaultdict(int)
        # Records kept by key (users, sessions, links) go to their mapping in batches:
        # one write batch each in the local store.
        targets = {(kind, p): records for p in new for kind, records in (
            ("u", self.states[p].users), ("s", self.states[p].sessions),
            ("l", self.links[p].records))}
        pending: dict[tuple[str, int], dict[str, bytes]] = defaultdict(dict)
        for raw_key, value in list(self.table.data.items()):
            text = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            p_text, kind, rest = text.split("|", 2)
            p = int(p_text)
            if p not in new or value is None:
                continue
            if kind == "c":
                self.states[p].load(parse_key(rest), value)
            elif (kind, p) in targets:
                batch = pending[(kind, p)]
                batch[rest] = value
                if len(batch) >= _LOAD_BATCH:
                    targets[(kind, p)].update(batch)
                    batch.clear()
            elif kind == "d":
                hour = int(rest.split("|")[0])
                self.dedupers[p].load_chunk(hour, value)
                chunks = self._chunk_keys.setdefault(p, {}).setdefault(hour, [])
                chunks.append(raw_key if isinstance(raw_key, bytes) else raw_key.encode())
            else:
                continue
            loaded[p] += 1
        for target, batch in pending.items():
            targets[target].update(batch)
        log.info("recovered partitions %s (%s table records)", sorted(new), dict(loaded))
        return new

    def drop_table_copy(self) -> int:
        """Empty the table's in-memory copy once the states hold everything it holds.

        Faust's memory store keeps every record it recovers, and the states hold the same
        data decoded (cells) or by reference (users): a second copy of every key, cell
        and id chunk, read by nobody until the next rebuild, which loads only partitions
        new to this worker, from records Faust recovers again for them. The changelog
        stays the state of record. Returns the number of records dropped.
        """
        data = self.table.data
        n = len(data)
        data.clear()
        recovered_keys(data).clear()
        return n

    def forget(self, partitions: set[int]) -> int:
        """Drop revoked partitions: their states and their records in the table.

        The table is Faust's in-memory store, which only forgets the records it recovered
        itself; ours would stay behind as a stale, unbounded copy. Returns the number of
        table records dropped.
        """
        if not partitions:
            return 0
        for p in partitions:
            state = self.states.pop(p, None)
            if state is not None:
                state.users.clear()  # the local store's records of p
                state.sessions.clear()
            self.dedupers.pop(p, None)
            spill = self._spill_dirs.pop(p, None)
            if spill is not None:
                shutil.rmtree(spill, ignore_errors=True)  # its past hours' ids
            links = self.links.pop(p, None)
            if links is not None:
                links.records.clear()  # the local store's links of p
            self._pruned_at.pop(p, None)
            self._chunk_keys.pop(p, None)
            self._unwritten.pop(p, None)
        # Records a failed checkpoint put back: the next owner replays their events from
        # the committed offsets; written late, they could overwrite its newer values.
        self.outbox = [record for record in self.outbox if record[0] not in partitions]
        prefixes = tuple(f"{p}|".encode() for p in partitions)
        data = self.table.data
        stale = [k for k in data
                 if (k if isinstance(k, bytes) else k.encode()).startswith(prefixes)]
        recovered = recovered_keys(data)
        for k in stale:
            del data[k]
            recovered.pop(k, None)
        return len(stale)

    def take_changed(self, p: int) -> dict[CellKey, tuple[int, bytes]]:
        """Partition ``p``'s cells changed since the last call, for the serving view.

        Call it after every batch folded: the next :meth:`checkpoint` writes these cells
        to the table, and only cells taken here.
        """
        changed = self.states[p].take_dirty()
        if changed:
            unwritten = self._unwritten.setdefault(p, {})
            for key, (_, data) in changed.items():
                unwritten[key] = data
        return changed

    def checkpoint(self, now: float) -> list[tuple[int, bytes, bytes | None]]:
        """Everything changed since the last checkpoint, as changelog records in write order:
        per partition its cells, then its new ids, then its changed users and sessions, then
        its links.

        The order is what makes a restored user stamp trustworthy (see the module doc).
        """
        for p, state in self.states.items():
            hour = self.dedupers[p].generation_start(now)
            for key, data in self._unwritten.pop(p, {}).items():
                self._write(p, cell_table_key(p, key), data)
            chunk = self.dedupers[p].take_chunk()
            if chunk is not None:
                chunk_key = f"{p}|d|{hour}|{state_chunk_id(chunk)}".encode()
                self._chunk_keys.setdefault(p, {}).setdefault(hour, []).append(chunk_key)
                self._write(p, chunk_key, chunk)
            for identity, (_, data) in state.take_dirty_users().items():
                self._write(p, user_table_key(p, identity), data)
            for session, (_, data) in state.take_dirty_sessions().items():
                self._write(p, session_table_key(p, session), data)
            for anon, link_data in self.links[p].take_dirty().items():
                self._write(p, link_table_key(p, anon), link_data)
        return self._take_outbox()

    def unsent(self, records: list[tuple[int, bytes, bytes | None]]) -> None:
        """Put back checkpoint records the broker did not confirm, ahead of newer ones."""
        self.outbox[:0] = records

    def expire(self, p: int, now: float) -> list[CellKey]:
        """Drop cells, id generations and per-user times past their horizon (tombstones).

        Users are swept at most every ``USER_PRUNE_INTERVAL`` (a pass decodes them all);
        a user with changes not yet checkpointed is left for the next sweep, so a pruned
        record is never sent before the cells of the batch that changed it.
        """
        state = self.states[p]
        gone = state.expired(now)
        unwritten = self._unwritten.get(p, {})
        for key in gone:
            unwritten.pop(key, None)
            self._write(p, cell_table_key(p, key), None)
        self.dedupers[p].expire(now)
        chunks = self._chunk_keys.get(p, {})
        for hour in [h for h in chunks if h < now - self.dedupers[p].retention]:
            for chunk_key in chunks.pop(hour):
                self._write(p, chunk_key, None)
        if now - self._pruned_at.get(p, 0.0) >= USER_PRUNE_INTERVAL:
            self._pruned_at[p] = now
            for identity, data in state.prune_users(now).items():
                self._write(p, user_table_key(p, identity), data)
            for session in state.prune_sessions(now):
                self._write(p, session_table_key(p, session), None)
            for anon in self.links[p].expire(now):
                self._write(p, link_table_key(p, anon), None)
        return gone

    def _take_outbox(self) -> list[tuple[int, bytes, bytes | None]]:
        """The changelog records (partition, key, value or tombstone) to send, in order.

        Only :meth:`checkpoint` takes them: the changelog has one writer, so a record a
        failed send put back is always sent before the offsets it covers are acked."""
        out, self.outbox = self.outbox, []
        return out

    def _write(self, p: int, key: bytes, value: bytes | None) -> None:
        # Only to the changelog: the table's in-memory copy is read once, by rebuild().
        self.outbox.append((p, key, value))


def state_chunk_id(chunk: bytes) -> str:
    """A key suffix unique to the chunk: the offset of its first id."""
    return str(int.from_bytes(chunk[8:16], "little"))

