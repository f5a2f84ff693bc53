"""The worker's local state store: per-user records on disk, in RocksDB, off the heap.

Per-user state (``aggregators/users.py``) is kept for every user seen in the longest
window plus a day: at 10M monthly users, as Python ``str`` keys and ``bytes`` values in a
dict it would take ~2.6 GB of heap. Here it lives in one RocksDB database per worker
under ``LEADLINE_DATA_DIR/state`` (``rocksdict``, the binding Faust's own rocksdb store
uses), and the heap holds only the users of the current checkpoint interval.

Memory: RocksDB's block cache and its memtables are charged to one LRU cache (a write
buffer manager costs the memtables to it), so the store's RAM is bounded by the cache
size whatever the number of users; the rest of the records sit in files, read through
the kernel's page cache, which the kernel reclaims under pressure and which is not the
process's anonymous memory. Index and filter blocks live in that cache too, so they do
not grow outside it with the data (``docs/performance.md``, "Where the state lives").

The changelog stays the state of record: this store is a cache of it. A partition's
records are restored from the changelog when it is assigned (``streams/restore.py``).
After every confirmed checkpoint the store also holds a *snapshot* of each owned
partition: its user, session and link records as the changelog holds them, its cells and
id chunks as last sent, and a mark naming the changelog offset the snapshot is whole up
to, all in one atomic write (the checkpoint's users wait in their :class:`PartitionRecords`
until then, see :meth:`PartitionRecords.hold`). A worker restarted on the same directory
(after a crash too: the write-ahead log is on) restores a partition assigned to it again
from its snapshot plus the changelog's tail from that offset. Writes outside a
checkpoint (a failed one, a user prune) delete the partition's mark first, so a crash
then leaves no mark and the partition is restored from the changelog alone. The
directory is locked: a second worker given the same ``LEADLINE_DATA_DIR`` fails instead
of writing into the first one's store.

Keys: ``kind (1 byte) | partition (2 bytes, big-endian) | key``, so a partition's
records of a kind are one contiguous range, dropped with one range delete on revoke.
"""

from __future__ import annotations

import fcntl
import shutil
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import IO, Any

import orjson
from rocksdict import (
    BlockBasedIndexType,
    BlockBasedOptions,
    Cache,
    DBCompressionType,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteBufferManager,
)

USERS = b"u"
SESSIONS = b"s"
LINKS = b"l"
#: Kept only as a snapshot's (``streams/store.py``): cells and id chunks live in memory.
CELLS = b"c"
CHUNKS = b"d"
#: One mark per partition whose snapshot is whole (``LocalStore.write_snapshot``).
_MARKS = b"m"

#: The layout of keys and values; a store of another layout is emptied when opened.
FORMAT = b"leadline-local-1"
_FORMAT_KEY = b"\x00format"

#: The local store's cache takes this share of LEADLINE_MEMORY_BUDGET.
BUDGET_SHARE = 0.25

#: Memtable size: records reach a sorted file after this many bytes of writes.
_WRITE_BUFFER = 8 << 20


def _next_prefix(prefix: bytes) -> bytes:
    """The smallest key after every key that starts with ``prefix``."""
    return (int.from_bytes(prefix, "big") + 1).to_bytes(len(prefix), "big")


class StoreInUse(RuntimeError):
    """Another process holds the store's directory."""


class LocalStore:
    """One RocksDB database holding every owned partition's local records."""

    def __init__(self, path: Path, cache_bytes: int) -> None:
        self.path = path
        self.cache_bytes = cache_bytes
        self._db: Rdict | None = None
        self._lock: IO[str] | None = None
        #: Partition -> the mark of its whole snapshot, as found when opened.
        self.snapshots: dict[int, dict[str, Any]] = {}

    def open(self) -> None:
        """Lock the directory and open the database (once; ``records`` opens it too),
        reading the marks of the snapshots a previous process left in it (:attr:`snapshots`).
        Fails with :class:`StoreInUse` when another process holds it."""
        if self._db is not None:
            return
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = (path.parent / f"{path.name}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StoreInUse(f"{path} is in use by another process: two workers with one "
                             "LEADLINE_DATA_DIR?") from None
        self._lock = lock
        self._db = self._open_db()
        if self._db.get(_FORMAT_KEY) != FORMAT:  # new, or written by another version
            self._db.close()
            shutil.rmtree(path, ignore_errors=True)
            self._db = self._open_db()
            self._db.put(_FORMAT_KEY, FORMAT)
        self.snapshots = self._read_snapshots()

    def _open_db(self) -> Rdict:
        self.path.mkdir(parents=True, exist_ok=True)
        self._cache = Cache(self.cache_bytes)
        table = BlockBasedOptions()
        table.set_block_cache(self._cache)
        # Index and filter blocks in the cache, so they are inside the bound; partitioned,
        # with the top level pinned, so a lookup loads one small partition, not a file's
        # whole index and filter (single gets: ~55 -> ~13 us at 1M users, 32 MiB cache).
        table.set_cache_index_and_filter_blocks(True)
        table.set_index_type(BlockBasedIndexType.two_level_index_search())
        table.set_partition_filters(True)
        table.set_pin_top_level_index_and_filter(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_bloom_filter(10, False)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(
            WriteBufferManager.new_write_buffer_manager_with_cache(
                min(self.cache_bytes // 2, 2 * _WRITE_BUFFER), False, self._cache))
        options.set_write_buffer_size(min(_WRITE_BUFFER, max(self.cache_bytes // 8, 1 << 20)))
        options.set_max_write_buffer_number(2)
        options.set_compression_type(DBCompressionType.lz4())
        # The write-ahead log stays on (not synced): a snapshot must survive a crash of
        # the process, which loses the memtables.
        return Rdict(str(self.path), options)

    def _read_snapshots(self) -> dict[int, dict[str, Any]]:
        assert self._db is not None
        bound = ReadOptions()
        bound.set_iterate_upper_bound(_next_prefix(_MARKS))
        out = {}
        for raw, value in self._db.items(from_key=_MARKS, read_opt=bound):
            assert isinstance(raw, bytes)  # raw mode: the stub's key type is any key
            out[int.from_bytes(raw[1:3], "big")] = orjson.loads(value)
        return out

    def snapshot_entries(self, kind: bytes, partition: int) -> Iterator[tuple[str, bytes]]:
        """The records of ``kind`` a snapshot of ``partition`` holds (cells, id chunks)."""
        self.open()
        assert self._db is not None
        return PartitionRecords(self._db, kind + partition.to_bytes(2, "big"), 0).items()

    def write_snapshot(self, entries: Iterable[tuple[bytes, int, str, bytes | None]],
                       marks: Mapping[int, dict[str, Any]],
                       held: Iterable[PartitionRecords] = (),
                       invalid: Iterable[int] = ()) -> None:
        """In one atomic write: records (kind, partition, key, value or None to delete),
        the writes ``held`` by these mappings, the marks saying which partitions'
        snapshots are whole and up to where, and the deletion of the ``invalid`` ones."""
        assert self._db is not None
        batch = WriteBatch(raw_mode=True)
        for p in invalid:
            batch.delete(_MARKS + p.to_bytes(2, "big"))
        for records in held:
            records.release(batch)
        for kind, p, key, value in entries:
            raw = kind + p.to_bytes(2, "big") + key.encode()
            if value is None:
                batch.delete(raw)
            else:
                batch.put(raw, value)
        for p, mark in marks.items():
            batch.put(_MARKS + p.to_bytes(2, "big"), orjson.dumps(mark))
        self._db.write(batch)

    def invalidate(self, partitions: Iterable[int]) -> None:
        """Mark these partitions' snapshots as not whole (before their records change)."""
        assert self._db is not None
        batch = WriteBatch(raw_mode=True)
        for p in partitions:
            batch.delete(_MARKS + p.to_bytes(2, "big"))
        self._db.write(batch)

    def drop(self, partition: int) -> None:
        """Delete everything held for ``partition``: its snapshot mark and every range."""
        self.open()
        assert self._db is not None
        self.snapshots.pop(partition, None)
        self.invalidate([partition])
        for kind in (USERS, SESSIONS, LINKS, CELLS, CHUNKS):
            prefix = kind + partition.to_bytes(2, "big")
            self._db.delete_range(prefix, _next_prefix(prefix))

    def records(self, kind: bytes, partition: int, count: int | None = None
                ) -> PartitionRecords:
        """Partition ``partition``'s records of ``kind``, as a mapping of str to bytes:
        emptied, or, given their ``count`` (a snapshot's), kept as they are."""
        self.open()
        assert self._db is not None
        return PartitionRecords(self._db, kind + partition.to_bytes(2, "big"), count)

    def memory(self) -> int:
        """Bytes of RAM the store holds: its block cache, memtables included."""
        return 0 if self._db is None else int(self._cache.get_usage())

    def disk(self) -> int:
        """Bytes of the store's files on disk."""
        if self._db is None:
            return 0
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None


class PartitionRecords(MutableMapping[str, bytes]):
    """The records under one key prefix: str keys (utf-8), bytes values.

    ``len`` is counted here, not read from RocksDB (which only estimates it): every
    write goes through this object, and the prefix is empty when it is created (or its
    count is given). While :meth:`hold` is in effect, writes wait here, readable, until
    :meth:`release` puts them in a write batch of the caller's (a snapshot's).
    """

    def __init__(self, db: Rdict, prefix: bytes, count: int | None = None) -> None:
        self._db = db
        self._prefix = prefix
        self._end = _next_prefix(prefix)
        if count is None:
            self._db.delete_range(prefix, self._end)
        self._count = count or 0
        self._held: dict[bytes, bytes | None] | None = None

    def _key(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _read(self, raw: bytes) -> bytes | None:
        held = self._held
        if held is not None and raw in held:
            return held[raw]
        return self._db.get(raw)  # type: ignore[no-any-return]

    def hold(self) -> None:
        """Keep the writes from now on here until :meth:`release`."""
        if self._held is None:
            self._held = {}

    def release(self, batch: WriteBatch) -> None:
        """Put the writes held since :meth:`hold` into ``batch``; write directly again."""
        for raw, value in (self._held or {}).items():
            if value is None:
                batch.delete(raw)
            else:
                batch.put(raw, value)
        self._held = None

    def __getitem__(self, key: str) -> bytes:
        value = self._read(self._key(key))
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        value = self._read(self._key(key))
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._read(self._key(key)) is not None

    def __setitem__(self, key: str, value: bytes) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.update({key: None})

    def update(self, records: Mapping[str, bytes | None] = {}, /,  # type: ignore[override]
               **_: bytes) -> None:
        """Write many records in one batch; a ``None`` value deletes its key."""
        if not records:
            return
        keys = [self._key(k) for k in records]
        held = self._held
        if held is None:
            olds: list[bytes | None] = self._db.get(keys)  # type: ignore[arg-type,assignment]
        else:
            unknown = [raw for raw in keys if raw not in held]
            found: list[bytes | None] = (
                self._db.get(unknown) if unknown else [])  # type: ignore[arg-type,assignment]
            read = dict(zip(unknown, found, strict=True))
            olds = [held[raw] if raw in held else read[raw] for raw in keys]
        batch = WriteBatch(raw_mode=True)
        for raw, old, value in zip(keys, olds, records.values(), strict=True):
            if value is None and old is None:
                continue
            self._count += (value is not None) - (old is not None)
            if held is not None:
                held[raw] = value
            elif value is None:
                batch.delete(raw)
            else:
                batch.put(raw, value)
        if held is None:
            self._db.write(batch)

    def clear(self) -> None:
        self._db.delete_range(self._prefix, self._end)
        self._count = 0
        if self._held is not None:
            self._held = {}

    def items(self) -> Iterator[tuple[str, bytes]]:  # type: ignore[override]
        """Every record, in key order (one pass of a RocksDB iterator, merged with the
        writes held, if any)."""
        bound = ReadOptions()
        bound.set_iterate_upper_bound(self._end)
        bound.fill_cache(False)  # type: ignore[call-arg]  # a full pass would evict the rest
        n = len(self._prefix)
        stored: Iterable[tuple[Any, Any]] = self._db.items(from_key=self._prefix,
                                                           read_opt=bound)
        if self._held:
            merged = dict(stored) | self._held
            stored = sorted((k, v) for k, v in merged.items() if v is not None)
        for raw, value in stored:
            assert isinstance(raw, bytes)  # raw mode: the stub's key type is any key
            yield raw[n:].decode(), value

    def values(self) -> Iterator[bytes]:  # type: ignore[override]
        return (value for _, value in self.items())

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.items())

    def __len__(self) -> int:
        return self._count
