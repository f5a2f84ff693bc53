"""Partition states and dedupers, with the table's changelog topic as their state of record.

Every batch hands its changed cells to the serving view (:meth:`PartitionStore.take_changed`).
The table is written less often, at each :meth:`PartitionStore.checkpoint` (every
consumer commit, see ``streams/checkpoint.py``): every cell changed since the last one,
once, in its latest form (one changelog record to the changelog partition of the
by-user partition it belongs to), then the first-seen event ids since then as one
record, then every changed user's state (``aggregators/users.py``), then every changed
identity link (``aggregators/identities.py``). Writing once per checkpoint instead of
once per batch keeps the changelog to what changed per commit interval. Sessions
(``aggregators/sessions.py``) are written after the users, each with its own stamp. After a
rebalance or a crash a partition is restored from its changelog in bulk
(``streams/restore.py``, :meth:`PartitionStore.restore`); stamps make the replay of
not-yet-committed events exact.
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
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from leadline.aggregators.dedupe import HORIZON, Deduper
from leadline.aggregators.identities import Links
from leadline.aggregators.kinds import CellKey, key_text, parse_key
from leadline.aggregators.partition import PartitionState
from leadline.config.definitions import Definitions
from leadline.state.local import (
    CELLS,
    CHUNKS,
    LINKS,
    SESSIONS,
    USERS,
    LocalStore,
    PartitionRecords,
)

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

#: Restored users, sessions and links are written to their mapping in batches of this many.
_LOAD_BATCH = 10_000


def _write_batch(target: MutableMapping[str, bytes], batch: dict[str, bytes | None]) -> None:
    """Write ``batch`` to ``target`` and empty it; a ``None`` value deletes its key."""
    target.update({key: value for key, value in batch.items() if value is not None})
    for key in [key for key, value in batch.items() if value is None]:
        target.pop(key, None)
    batch.clear()


class _Restoring:
    """A partition being restored from its changelog, not yet served or folded into.

    Records are applied in changelog order, tombstones included, so the result is the
    changelog's last value per key whether or not the topic was compacted yet. Users,
    sessions and links go to their mapping in batches (one write batch each in the local
    store); cells and id chunks wait here, encoded, until :meth:`finish`, so only the last
    version of a cell is decoded and a chunk whose hour expired and was tombstoned later
    in the log is never loaded.
    """

    def __init__(self, state: PartitionState, deduper: Deduper, links: Links,
                 spill: Path | None, snapshot: dict[str, Any] | None = None) -> None:
        self.state, self.deduper, self.links, self.spill = state, deduper, links, spill
        #: The mark of the local snapshot this restore started from, if any: the
        #: changelog is read from its offset on (``streams/restore.py``).
        self.snapshot = snapshot
        self.targets: dict[str, MutableMapping[str, bytes]] = {
            "u": state.users, "s": state.sessions, "l": links.records}
        self.pending: dict[str, dict[str, bytes | None]] = {kind: {} for kind in self.targets}
        self.cells: dict[str, bytes] = {}
        self.chunks: dict[bytes, tuple[int, bytes]] = {}
        #: Cells and id chunks changed by :meth:`apply`: what the local snapshot lacks.
        self.unsaved: set[tuple[bytes, str]] = set()
        #: The last changelog offset applied (kept by the restorer), -1 for none, and
        #: the key of the record there.
        self.offset = -1
        self.last_key: bytes | None = None
        self.records = 0

    def apply(self, key: bytes, value: bytes | None) -> None:
        _, kind, rest = key.decode().split("|", 2)
        self.records += 1
        self.last_key = key
        if kind == "c":
            # Decoded once, at finish: an uncompacted changelog holds a version of a busy
            # cell per checkpoint, and a large sketch takes ~0.1 ms to decode.
            if value is None:
                self.cells.pop(rest, None)
            else:
                self.cells[rest] = value
            self.unsaved.add((CELLS, rest))
        elif kind in self.pending:
            batch = self.pending[kind]
            batch[rest] = value
            if len(batch) >= _LOAD_BATCH:
                _write_batch(self.targets[kind], batch)
        elif kind == "d":
            if value is None:
                self.chunks.pop(key, None)
            else:
                self.chunks[key] = (int(rest.split("|")[0]), value)
            self.unsaved.add((CHUNKS, rest))

    def load_snapshot(self, p: int, local: LocalStore) -> None:
        """Take the cells and id chunks of ``p``'s local snapshot (users, sessions and
        links are read where they are)."""
        for rest, value in local.snapshot_entries(CELLS, p):
            self.cells[rest] = value
        for rest, value in local.snapshot_entries(CHUNKS, p):
            self.chunks[f"{p}|d|{rest}".encode()] = (int(rest.split("|")[0]), value)

    def unsaved_entries(self, p: int) -> list[tuple[bytes, int, str, bytes | None]]:
        """The cells and id chunks the local snapshot lacks, as snapshot entries."""
        out: list[tuple[bytes, int, str, bytes | None]] = []
        for kind, rest in self.unsaved:
            if kind == CELLS:
                out.append((kind, p, rest, self.cells.get(rest)))
            else:
                chunk = self.chunks.get(f"{p}|d|{rest}".encode())
                out.append((kind, p, rest, None if chunk is None else chunk[1]))
        return out

    def finish(self) -> dict[int, list[bytes]]:
        """Decode the cells, flush the batches and load the id chunks; returns the chunk
        keys by hour."""
        for rest, value in self.cells.items():
            self.state.load(parse_key(rest), value)
        self.cells.clear()
        for kind, batch in self.pending.items():
            _write_batch(self.targets[kind], batch)
        chunk_keys: dict[int, list[bytes]] = {}
        for key, (hour, value) in self.chunks.items():
            self.deduper.load_chunk(hour, value)
            chunk_keys.setdefault(hour, []).append(key)
        self.chunks.clear()
        return chunk_keys

    def abandon(self) -> None:
        """Drop what was restored: the records and the id files."""
        for records in self.targets.values():
            records.clear()
        if self.spill is not None:
            shutil.rmtree(self.spill, ignore_errors=True)


class PartitionStore:
    """Working state of the partitions this worker owns.

    Cells and the event ids of the current hour are in memory. When they are given,
    per-user states, sessions and identity links are in ``local`` (on disk,
    ``state/local.py``) and the event ids of past hours in files under ``ids``
    (``aggregators/dedupe.py``); else in memory too. ``horizon``: the dedupe horizon (s).

    A partition newly assigned is first restored from its changelog (:meth:`restore`,
    fed by ``streams/restore.py``), then taken live by :meth:`rebuild`.
    """

    def __init__(self, definitions: Definitions, local: LocalStore | None = None, *,
                 ids: Path | None = None, horizon: float = HORIZON) -> None:
        self.definitions = definitions
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
        #: Partitions being restored from the changelog, not yet live: newly assigned
        #: ones, and the standby copies of other workers' partitions.
        self.restoring: dict[int, _Restoring] = {}
        #: The partitions this worker keeps a standby copy of (LEADLINE_STANDBY_REPLICAS).
        self.standby: set[int] = set()
        #: Per live partition, the offset after the last changelog record it holds (its
        #: own last write, confirmed): where its local snapshot is whole up to
        #: (``state/local.py``), and where the changelog ends unless another worker wrote.
        self._snapshot_at: dict[int, int] = {}
        #: ... and the key of the changelog record just before that offset: a restore
        #: reads it back to tell this changelog from one deleted and written anew.
        self._snapshot_key: dict[int, bytes] = {}
        #: The changelog topic, named in the snapshots' marks (set by the restorer).
        self.changelog = ""
        self._pruned_at: dict[int, float] = {}
        #: Changelog records not yet handed to a checkpoint, in write order (expiry's
        #: tombstones, and records a failed checkpoint put back).
        self.outbox: list[tuple[int, bytes, bytes | None]] = []
        #: Cells changed since the last checkpoint, per partition: their latest encoding.
        self._unwritten: dict[int, dict[CellKey, bytes]] = {}
        #: Table keys of the id chunks, per partition and hour: what expiry tombstones.
        self._chunk_keys: dict[int, dict[int, list[bytes]]] = {}

    def open(self) -> None:
        """Take the worker's local files: lock and open the local store (with the
        snapshots a previous process left), and empty the id files it left
        (``LocalStore.open`` fails if another process holds them). The worker calls it at
        start; the first restore opens the store anyway."""
        if self.local is not None:
            self.local.open()
        if self.ids is not None:
            shutil.rmtree(self.ids, ignore_errors=True)

    def close(self) -> None:
        if self.local is not None:
            self.local.close()

    def restore(self, p: int) -> _Restoring:
        """Partition ``p``'s restore in progress, started empty if there is none.

        Only for a partition that is not live: a live one holds everything its changelog
        does (this worker wrote it)."""
        assert p not in self.states, f"partition {p} is live"
        restoring = self.restoring.get(p)
        if restoring is None:
            spill = None
            if self.ids is not None:
                spill = self.ids / f"{p}.{next(self._incarnations)}"
            local, snapshot = self.local, None
            if local is None:
                state = PartitionState(self.definitions)
                links = Links()
            else:
                snapshot = local.snapshots.pop(p, None)
                if snapshot is None:
                    local.drop(p)
                counts = snapshot["counts"] if snapshot else {}
                state = PartitionState(self.definitions, local.records(USERS, p, counts.get("u")),
                                       local.records(SESSIONS, p, counts.get("s")))
                links = Links(local.records(LINKS, p, counts.get("l")))
            restoring = self.restoring[p] = _Restoring(
                state, Deduper(self.horizon, spill), links, spill, snapshot)
            if local is not None and snapshot is not None:
                restoring.load_snapshot(p, local)
        return restoring

    def drop_snapshots(self, keep: set[int]) -> None:
        """Delete the local snapshots of partitions other than ``keep``: another worker
        owns them now, and one that comes back later is restored afresh."""
        if self.local is not None:
            for p in set(self.local.snapshots) - keep:
                self.local.drop(p)

    def abandon(self, partitions: set[int]) -> None:
        """Drop the restores of partitions that were not assigned after all."""
        for p in partitions:
            restoring = self.restoring.pop(p, None)
            if restoring is not None:
                restoring.abandon()
                if self.local is not None:
                    self.local.drop(p)  # its snapshot and every range

    def rebuild(self, owned: set[int]) -> set[int]:
        """Align the live partitions with the owned ones: forget those that went elsewhere,
        take the new ones live from their restore (empty if nothing was restored), drop
        the restores of partitions neither owned nor standby.

        Returns the partitions taken live, which must be republished.
        """
        self.forget(set(self.states) - owned)
        self.abandon(set(self.restoring) - owned - self.standby)
        new = owned - set(self.states)
        loaded: dict[int, int] = {}
        for p in new:
            restoring = self.restore(p)
            del self.restoring[p]
            unsaved = restoring.unsaved_entries(p) if self.local is not None else []
            self._chunk_keys[p] = restoring.finish()
            self.states[p] = restoring.state
            self.dedupers[p] = restoring.deduper
            self.links[p] = restoring.links
            if restoring.spill is not None:
                self._spill_dirs[p] = restoring.spill
            loaded[p] = restoring.records
            self._snapshot_at[p] = restoring.offset + 1
            if self.local is not None:
                # The local snapshot: the changelog up to the last offset applied.
                if restoring.last_key is not None:
                    self._snapshot_key[p] = restoring.last_key
                elif restoring.snapshot is not None:
                    self._snapshot_key[p] = restoring.snapshot.get("key", "").encode()
                self.local.write_snapshot(unsaved, {p: self._mark(p)})
        if new:
            log.info("partitions %s live (%s changelog records restored)", sorted(new), loaded)
        return new

    def forget(self, partitions: set[int]) -> None:
        """Drop revoked partitions: their states, local records and id files."""
        for p in partitions:
            state = self.states.pop(p, None)
            if state is not None:
                state.users.clear()  # the local store's records of p
                state.sessions.clear()
                if self.local is not None:
                    self.local.drop(p)  # and its snapshot
            self._snapshot_at.pop(p, None)
            self._snapshot_key.pop(p, None)
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
        The users, sessions and links taken are held in their mappings, not written to
        the local store, until :meth:`confirmed` writes them with the snapshot's mark in
        one atomic write (or :meth:`unsent`, without a mark).
        """
        for records in self._local_records():
            records.hold()
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

    def confirmed(self, records: list[tuple[int, bytes, bytes | None]],
                  offsets: dict[int, int]) -> None:
        """The broker confirmed every record of a checkpoint; ``offsets``: per partition,
        the offset after the last record it took. Brings the local
        snapshots level with the changelog: the checkpoint's cells and id chunks, and a
        mark per live partition, in one atomic write."""
        for p, offset in offsets.items():
            if p in self._snapshot_at:
                self._snapshot_at[p] = offset
        if self.local is None:
            return
        entries = []
        last: dict[int, bytes] = {}
        last_stamped: dict[int, bytes] = {}  # sent after the others (send_in_order)
        for p, key, value in records:
            if p not in self.states:
                continue
            _, kind, rest = key.decode().split("|", 2)
            if kind in ("c", "d"):
                entries.append((kind.encode(), p, rest, value))
            (last_stamped if kind in ("u", "s") else last)[p] = key
        self._snapshot_key.update(last | last_stamped)
        self.local.write_snapshot(entries, {p: self._mark(p) for p in self.states},
                                  held=self._local_records())

    def _local_records(self) -> list[PartitionRecords]:
        """The live partitions' users, sessions and links in the local store."""
        if self.local is None:
            return []
        mappings = [m for p, state in self.states.items()
                    for m in (state.users, state.sessions, self.links[p].records)]
        return [m for m in mappings if isinstance(m, PartitionRecords)]

    def _mark(self, p: int) -> dict[str, Any]:
        links = self.links[p].records
        return {"offset": self._snapshot_at[p], "changelog": self.changelog, "at": time.time(),
                "key": self._snapshot_key.get(p, b"").decode(),
                "counts": {"u": len(self.states[p].users), "s": len(self.states[p].sessions),
                           "l": len(links)}}

    def written_to(self, p: int) -> int:
        """The offset after the last changelog record live partition ``p`` holds."""
        return self._snapshot_at[p]

    def snapshot_mark(self, p: int) -> dict[str, Any] | None:
        """The mark of ``p``'s local snapshot left by a previous process, if any."""
        return None if self.local is None else self.local.snapshots.get(p)

    def unsent(self, records: list[tuple[int, bytes, bytes | None]]) -> None:
        """Put back checkpoint records the broker did not confirm, ahead of newer ones.

        The users, sessions and links held are written to the local store all the same
        (the folds read them there), and the snapshots are no longer whole."""
        self.outbox[:0] = records
        if self.local is not None:
            self.local.write_snapshot([], {}, held=self._local_records(), invalid=self.states)

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
            if self.local is not None:
                self.local.invalidate([p])  # pruning rewrites users in the local store
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
        self.outbox.append((p, key, value))


def state_chunk_id(chunk: bytes) -> str:
    """A key suffix unique to the chunk: the offset of its first id."""
    return str(int.from_bytes(chunk[8:16], "little"))

