"""Idempotency: an ``event_id`` seen again within the horizon (24 hours) counts once.

Per partition of the by-user topic (a user's events, and so all copies of an event,
share one partition). Each id is remembered with the offset of its first occurrence,
so a *replay* of that same message after a crash is told apart from a true
duplicate: the replay is processed again (cell stamps then skip what is already
counted), the duplicate is dropped. Ids are kept as 64-bit xxh3 hashes in generations
of an hour (``generation_seconds``: shorter for a short horizon); a generation is
forgotten the horizon plus a generation after it started.

Layout, and why
---------------
At 5,000 events/s an id lives 25 h, so a worker remembers ~450 million of them. They
are held in a few large numpy arrays, ~16-26 bytes per id (``docs/performance.md``):

* **Generations** (``_Gen``), one per hour, each a few *runs*: two numpy arrays sorted
  by hash, ``uint64`` hashes (unique within the run) and ``int64`` first offsets -- 16
  bytes per id. An id may sit in several runs or generations (chunks of two
  incarnations; ``load_chunk`` after a live insert): its first offset is the *minimum*
  over all of them, and it is remembered while any generation holding it is retained.
  Expiry drops whole generations, arrays and all.
* **The live dict** (``_live``, ~110 bytes per id): ids first seen in the current hour,
  hash -> offset, bounded to ``LIVE_MAX``. When full, or when ``now`` enters another
  hour, it is sorted into a new run of its hour. Runs of an hour merge like a binary
  counter (the last two while the older is no bigger; a linear merge, no sort), so an
  hour has ~log2(ids / LIVE_MAX) runs and an id is merged that often; when the hour is
  over its runs become one (one search per lookup).
* **Past hours in files** (with ``spill``, as the worker runs): once its hour is over a
  generation is one run, written to one file and mapped back read-only with random
  access advised. Its pages are then the kernel's page cache: clean, dropped under
  memory pressure, and read back on demand. The process's own (anonymous) memory keeps
  only the filter for it. Lookups reach a past hour only through the filter (a true
  duplicate, a replay or a false candidate, ~0.005-0.03 per new id), but each page fault
  maps the cached pages around it (fault-around, 64 KiB), so with memory to spare the
  hashes of every past hour (8 B an id) show in the process's file-backed RSS.
* **Loaded chunks** (``load_chunk``; at recovery many per hour, in any order, for any
  hour, the live one included) are queued per generation as they are and sorted into
  one run (duplicates: the minimum offset) at the next lookup.
* **The generation filter** (``_slots``): ``uint32`` slots, 1-2 per id (4-8 bytes per
  id). Generation *g* owns bit ``g.bit``; each of its ids sets that bit in three slots
  (``a``, ``a + b``, ``a + 2b``, from the 32-bit halves of its hash). A lookup ANDs its
  three slots and searches only the generations whose bit survives: ~0.005-0.03 false
  candidates per new id at steady state (26 hours; ~0.1 while a few big hours are all
  there is), instead of 26 binary searches of ~1-2 us each (cache misses on runs of
  millions). Dropping a generation clears its bit in one pass. When the ids outgrow
  the table a bigger one is marked a generation at a time while the old one, denser,
  keeps answering (no stall to re-mark all ids); when they shrink to a quarter it is
  halved by OR-ing its halves. Past 32 generations at once (only by loading far-apart
  hours) the extra ones have no bit and are always searched.

Lookups: :meth:`check_batch` hashes the batch, reads the live dict and the filter for
all of it at once, looks the few candidates up in their generations (one bisect each;
many candidates -- a replay after recovery -- one ``np.searchsorted`` per generation),
then places the ids new to the deduper at their first place in the batch: the same
answers and the same state as :meth:`is_duplicate` for each event in turn, which does
the same for one event without numpy.
"""

from __future__ import annotations

import mmap
import shutil
import struct
import sys
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import count, repeat
from pathlib import Path

import numpy as np
import numpy.typing as npt
import xxhash

HOUR = 3600
#: A repeat within this many seconds is a duplicate (SPEC: 24 h; LEADLINE_DEDUPE_HORIZON).
HORIZON = 24 * HOUR
#: How long the ids of the default horizon are kept: whole hours, so an hour more.
RETENTION = HORIZON + HOUR
_ENTRY = struct.Struct("<QQ")

# Ids of the live dict before they are sorted into a run (~110 B an id while there): a
# smaller bound holds less RSS for a few more runs an hour (docs/performance.md).
LIVE_MAX = 1 << 14
_VECTOR_MIN = 48         # batches at least this long are probed with numpy
_SCALAR_PROBES = 256     # candidates of a batch looked up one by one, not per generation
_BITS = 32               # generations the filter can tell apart
_MIN_SLOTS = 1 << 10
_NONE = np.iinfo(np.int64).max  # "not in any run"
_U32 = np.uint64(32)
_LOW32 = np.uint64(0xFFFFFFFF)
_LIVE_INTS = sys.getsizeof(2**63) + sys.getsizeof(2**40)  # a hash and an offset

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
Slots = npt.NDArray[np.intp]


_digest = xxhash.xxh3_64_intdigest


def id_hash(event_id: str) -> int:
    return _digest(event_id.encode())


def generation_seconds(horizon: float) -> int:
    """Length of a generation for ``horizon``: an hour, or a twelfth of a horizon under
    12 hours (at least a minute), so that a short horizon is also forgotten soon after it
    ends (a soak reaches the steady state in minutes)."""
    return int(min(HOUR, max(60, horizon // 12)))


class _Run:
    """Hashes sorted and unique, with the minimum first offset of each."""

    __slots__ = ("file", "hashes", "hview", "offsets", "oview")

    def __init__(self, hashes: U64, offsets: I64, file: Path | None = None) -> None:
        self.hashes = hashes
        self.offsets = offsets
        # Python ints without a numpy call, for bisect on one hash
        self.hview = hashes.data
        self.oview = offsets.data
        #: The file the arrays are mapped from (a sealed hour's run), else None.
        self.file = file

    def release(self) -> None:
        """Delete the run's file (its pages stay readable until the arrays go)."""
        if self.file is not None:
            self.file.unlink(missing_ok=True)
            self.file = None

    def __len__(self) -> int:
        return len(self.hashes)


def _sorted_run(hashes: U64, offsets: I64) -> _Run:
    """A run from entries in any order, possibly repeating a hash (minimum offset kept)."""
    order = np.argsort(hashes)
    return _unique_run(hashes[order], offsets[order])


def _unique_run(hashes: U64, offsets: I64) -> _Run:
    """A run from entries sorted by hash: one entry per hash, its minimum offset."""
    if len(hashes) > 1:
        first = np.empty(len(hashes), dtype=bool)
        first[0] = True
        np.not_equal(hashes[1:], hashes[:-1], out=first[1:])
        if not first.all():
            starts = np.flatnonzero(first)
            offsets = np.minimum.reduceat(offsets, starts)
            hashes = hashes[starts]
    return _Run(np.ascontiguousarray(hashes), np.ascontiguousarray(offsets))


def _merge(a: _Run, b: _Run) -> _Run:
    """One run from two, without a sort (few temporaries: the peak memory is the point)."""
    if len(a) < len(b):
        a, b = b, a
    pos = np.searchsorted(a.hashes, b.hashes)
    found = pos < len(a)
    found[found] = a.hashes[pos[found]] == b.hashes[found]
    a_offsets, b_hashes, b_offsets = a.offsets, b.hashes, b.offsets
    if found.any():  # in both: one entry, the smaller offset
        a_offsets = a_offsets.copy()
        at = pos[found]
        a_offsets[at] = np.minimum(a_offsets[at], b_offsets[found])
        keep = ~found
        pos, b_hashes, b_offsets = pos[keep], b_hashes[keep], b_offsets[keep]
    size = len(a) + len(b_hashes)
    pos += np.arange(len(b_hashes))  # where b's entries land
    from_a = np.ones(size, dtype=bool)
    from_a[pos] = False
    hashes = np.empty(size, dtype=np.uint64)
    offsets = np.empty(size, dtype=np.int64)
    hashes[pos] = b_hashes
    offsets[pos] = b_offsets
    hashes[from_a] = a.hashes
    offsets[from_a] = a_offsets
    return _Run(hashes, offsets)


class _Gen:
    """The ids of one hour: sorted runs, plus loaded chunks not yet sorted."""

    __slots__ = ("bit", "hour", "pending", "runs", "size")

    def __init__(self, hour: int) -> None:
        self.hour = hour
        self.runs: list[_Run] = []
        self.pending: list[npt.NDArray[np.uint64]] = []  # (n, 2): hash, offset
        self.size = 0          # entries in runs
        self.bit: int | None = None


class Deduper:
    """Seen ids of one partition. ``take_chunk`` batches new ids for the changelog.

    ``horizon``: how long (s) a repeat counts as a duplicate; an id is remembered at
    least that long and at most one generation more (``generation_seconds``: an hour for
    the SPEC's 24 h; the "hours" of this module are generations).
    ``spill``: a directory (emptied here) to write each hour's run to once the hour is
    over; the run is then read through a memory map, so the kernel keeps its pages in
    the page cache or drops them, and the process holds ~4-8 B an id (the filter)
    instead of ~20-26.
    """

    def __init__(self, horizon: float = HORIZON, spill: Path | None = None) -> None:
        self.generation = generation_seconds(horizon)
        self.retention = horizon + self.generation
        self._spill = spill
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)
            spill.mkdir(parents=True)
        self._names = count()
        self._gens: dict[int, _Gen] = {}
        self._live: dict[int, int] = {}
        self._live_hour: int | None = None
        self._new_hashes: list[int] = []
        self._new_offsets: list[int] = []
        self._unsettled = False           # some generation has pending chunks
        self._loaded_hours: set[int] = set()  # hours that received chunks (see __len__)
        self._entries = 0                 # entries in runs, all generations
        self._by_bit: list[_Gen | None] = [None] * _BITS
        self._unfiltered: list[_Gen] = []
        self._slots: npt.NDArray[np.uint32] = np.zeros(_MIN_SLOTS, dtype=np.uint32)
        self._slot_view = self._slots.data
        self._slot_mask = _MIN_SLOTS - 1
        self._next: npt.NDArray[np.uint32] | None = None  # a bigger filter, being marked
        self._next_todo: list[_Gen] = []  # generations not yet marked in it
        # ``now`` in [_lo, _hi): the live hour, nothing to sort (else ``_enter``)
        self._lo = self._hi = 0.0

    # -- public API ---------------------------------------------------------------------

    def __len__(self) -> int:
        """Distinct ids remembered.

        O(1) unless chunks were loaded into a retained hour (an id may then be held
        twice); then exact via ``np.unique`` over everything -- a diagnostic, not for
        the hot path.
        """
        self._settle()
        if not self._loaded_hours:
            return self._entries + len(self._live)
        parts = [r.hashes for g in self._gens.values() for r in g.runs]
        parts.append(np.fromiter(self._live, dtype=np.uint64, count=len(self._live)))
        return int(np.unique(np.concatenate(parts)).size)

    @property
    def held(self) -> int:
        """Ids held, O(1): :meth:`__len__` but an id held twice (see there) counts twice,
        as it does for memory."""
        return self._entries + len(self._live) + sum(
            len(chunk) for gen in self._gens.values() for chunk in gen.pending)

    def nbytes(self) -> int:
        """Memory held (arrays exactly, the live dict estimated from object sizes); runs
        in files are not counted (see :meth:`disk_bytes`)."""
        arrays = sum(r.hashes.nbytes + r.offsets.nbytes
                     for gen in self._gens.values() for r in gen.runs if r.file is None)
        arrays += sum(chunk.nbytes for gen in self._gens.values() for chunk in gen.pending)
        arrays += self._slots.nbytes + (0 if self._next is None else self._next.nbytes)
        # a live entry: its dict slot share, a hash int and an offset int (also listed in
        # _new_hashes / _new_offsets until the next chunk)
        live = sys.getsizeof(self._live) + len(self._live) * _LIVE_INTS
        pending = sys.getsizeof(self._new_hashes) + sys.getsizeof(self._new_offsets)
        return arrays + live + pending

    def disk_bytes(self) -> int:
        """Bytes of the runs written to files."""
        return sum(r.hashes.nbytes + r.offsets.nbytes
                   for gen in self._gens.values() for r in gen.runs if r.file is not None)

    def is_duplicate(self, event_id: str, offset: int, now: float) -> bool:
        """True if another message already carried this id (a replay of itself is not)."""
        if not self._lo <= now < self._hi:
            self._enter(now)
        h = _digest(event_id.encode())
        first = self._live.get(h)
        # the filter (all zeros while there are no runs): which generations to search
        view = self._slot_view
        mask = self._slot_mask
        a = h & 0xFFFFFFFF
        b = h >> 32
        if (view[a & mask] & view[(a + b) & mask] & view[(a + b + b) & mask]) or self._unfiltered:
            sealed = self._first_in_runs(h)
            if first is None or sealed < first:
                first = None if sealed == _NONE else sealed
        if first is None:
            self._live[h] = offset
            self._new_hashes.append(h)
            self._new_offsets.append(offset)
            if len(self._live) >= LIVE_MAX:
                self._flush_live()
            return False
        return first != offset

    def check_batch(
        self, event_ids: Sequence[str], offsets: Sequence[int], now: float
    ) -> list[bool]:
        """``[is_duplicate(i, o, now) for i, o in zip(event_ids, offsets)]``, faster.

        True = drop as a duplicate. Same answers and same state afterwards as the
        one-by-one calls, in order: an id twice in the batch is a duplicate the second
        time unless it has the same offset (a replay).
        """
        n = len(event_ids)
        if len(offsets) != n:
            raise ValueError(f"{n} event ids but {len(offsets)} offsets")
        if not self._lo <= now < self._hi:
            self._enter(now)
        hashes = list(map(_digest, map(str.encode, event_ids)))
        if n < _VECTOR_MIN:
            out = self._check_few(hashes, offsets)
        else:
            out = self._check_many(hashes, offsets)
        if len(self._live) >= LIVE_MAX:
            self._flush_live()
        return out

    def _check_few(self, hashes: list[int], offsets: Sequence[int]) -> list[bool]:
        """The batch one by one, as :meth:`is_duplicate` (the live dict not flushed)."""
        live = self._live
        get = live.get
        view = self._slot_view
        mask = self._slot_mask
        new_hashes = self._new_hashes
        new_offsets = self._new_offsets
        out = []
        for h, offset in zip(hashes, offsets, strict=True):
            first = get(h)
            a = h & 0xFFFFFFFF
            b = h >> 32
            if (view[a & mask] & view[(a + b) & mask] & view[(a + b + b) & mask]) or (
                self._unfiltered
            ):
                sealed = self._first_in_runs(h)
                if first is None or sealed < first:
                    first = None if sealed == _NONE else sealed
            if first is None:
                live[h] = offset
                new_hashes.append(h)
                new_offsets.append(offset)
                out.append(False)
            else:
                out.append(first != offset)
        return out

    def _check_many(self, hashes: list[int], offsets: Sequence[int]) -> list[bool]:
        """The batch in numpy: known first offsets, then each new id's first place."""
        n = len(hashes)
        live = self._live
        probe = np.fromiter(hashes, dtype=np.uint64, count=n)
        offs = np.fromiter(offsets, dtype=np.int64, count=n)
        # first offset known before the batch, or _NONE
        first = np.fromiter(map(live.get, hashes, repeat(_NONE, n)), dtype=np.int64, count=n)
        if self._entries:
            np.minimum(first, self._first_in_runs_batch(probe, hashes), out=first)
        new = np.flatnonzero(first == _NONE)
        if len(new):
            # an id new to the deduper: first seen at its first place in the batch
            _, at, back = np.unique(probe[new], return_index=True, return_inverse=True)
            places = new[at]
            first[new] = offs[places][back]
            places.sort()
            new_hashes = probe[places].tolist()
            new_offsets = offs[places].tolist()
            live.update(zip(new_hashes, new_offsets, strict=True))
            self._new_hashes += new_hashes
            self._new_offsets += new_offsets
        out: list[bool] = (first != offs).tolist()
        return out

    def take_chunk(self) -> bytes | None:
        """The ids first seen since the last call, as one changelog value."""
        if not self._new_hashes:
            return None
        entries = np.empty((len(self._new_hashes), 2), dtype="<u8")
        entries[:, 0] = self._new_hashes
        entries[:, 1] = self._new_offsets
        self._new_hashes = []
        self._new_offsets = []
        return entries.tobytes()

    def load_chunk(self, hour: int, data: bytes) -> None:
        """Restore ids from a changelog value written by :meth:`take_chunk`.

        Cheap: the chunk is only queued; its hour is sorted at the next lookup.
        """
        if len(data) % _ENTRY.size:
            raise struct.error(f"chunk of {len(data)} bytes is not a multiple of {_ENTRY.size}")
        gen = self._gen(hour)
        self._loaded_hours.add(hour)
        if data:
            gen.pending.append(np.frombuffer(data, dtype="<u8").reshape(-1, 2))
            self._unsettled = True
            self._hi = self._lo  # sort it before the next lookup

    def expire(self, now: float) -> list[int]:
        """Forget generations older than the retention; returns the hours dropped."""
        cutoff = now - self.retention
        dropped = {hour for hour in self._gens if hour < cutoff}
        if self._live and self._live_hour is not None and self._live_hour < cutoff:
            dropped.add(self._live_hour)
            self._live = {}
        for hour in dropped:
            gen = self._gens.pop(hour, None)
            self._loaded_hours.discard(hour)
            if gen is not None:
                self._drop(gen)
        if self._entries * 4 < self._slots.size:
            self._next = None  # (a bigger one is no longer needed)
        while self._slots.size > _MIN_SLOTS and self._entries * 4 < self._slots.size:
            # fold the halves: a slot's bits stay where a lookup with the new mask looks
            half = self._slots.size // 2
            self._set_slots(self._slots[:half] | self._slots[half:])
        return sorted(dropped)

    def hours(self) -> Iterable[int]:
        hours = set(self._gens)
        if self._live and self._live_hour is not None:
            hours.add(self._live_hour)
        return sorted(hours)

    # -- lookups ------------------------------------------------------------------------

    def _first_in_runs(self, h: int) -> int:
        """The minimum first offset of ``h`` over all runs, or ``_NONE``."""
        view = self._slot_view
        mask = self._slot_mask
        a = h & 0xFFFFFFFF
        b = h >> 32
        best = self._first_in_bits(
            h, view[a & mask] & view[(a + b) & mask] & view[(a + b + b) & mask]
        )
        for gen in self._unfiltered:
            best = _first_in_gen(gen, h, best)
        return best

    def _first_in_bits(self, h: int, bits: int) -> int:
        """The minimum first offset of ``h`` in the generations of ``bits``, or ``_NONE``."""
        best = _NONE
        by_bit = self._by_bit
        while bits:
            low = bits & -bits
            bits ^= low
            gen = by_bit[low.bit_length() - 1]
            assert gen is not None
            best = _first_in_gen(gen, h, best)
        return best

    def _first_in_runs_batch(self, probe: U64, hashes: list[int]) -> I64:
        """``_first_in_runs`` of each hash (``probe`` holds the same as ``hashes``)."""
        best = np.full(len(probe), _NONE, dtype=np.int64)
        slots = self._slots
        first, second, third = _slots_of(probe, len(slots))
        cand = slots[first]
        cand &= slots[second]
        cand &= slots[third]
        where = np.flatnonzero(cand)
        if len(where) <= _SCALAR_PROBES:
            # the usual case: a few false candidates (and true duplicates) over many
            # generations; a bisect each costs less than numpy calls per generation
            first_in_bits = self._first_in_bits
            for i, bits in zip(where.tolist(), cand[where].tolist(), strict=True):
                best[i] = first_in_bits(hashes[i], bits)
        else:
            present = int(np.bitwise_or.reduce(cand[where]))
            while present:
                low = present & -present
                present ^= low
                gen = self._by_bit[low.bit_length() - 1]
                assert gen is not None
                _first_in_gen_batch(gen, probe, np.flatnonzero(cand & np.uint32(low)), best)
        for gen in self._unfiltered:
            _first_in_gen_batch(gen, probe, np.arange(len(probe)), best)
        return best

    # -- maintenance --------------------------------------------------------------------

    def generation_start(self, now: float) -> int:
        """Start of the generation (the "hour") that ``now`` falls in."""
        return int(now // self.generation) * self.generation

    def _enter(self, now: float) -> None:
        """Before a lookup at ``now``: live dict of the right hour, chunks sorted."""
        hour = self.generation_start(now)
        if hour != self._live_hour:
            if self._live:
                self._flush_live()
            self._live_hour = hour
            if not self._unsettled:  # else _settle seals
                self._seal()  # the hours before: one run each, one search per lookup
        if self._unsettled:
            self._settle()
        self._lo = float(hour)
        self._hi = float(hour + self.generation)

    def _flush_live(self) -> None:
        """Sort the live dict into a run of its hour."""
        live = self._live
        assert self._live_hour is not None
        self._live = {}
        n = len(live)
        hashes = np.fromiter(live.keys(), dtype=np.uint64, count=n)
        offsets = np.fromiter(live.values(), dtype=np.int64, count=n)
        order = np.argsort(hashes)
        self._add_run(self._gen(self._live_hour), _Run(hashes[order], offsets[order]))

    def _settle(self) -> None:
        """Sort pending chunks into runs, and seal the past hours they reached."""
        self._unsettled = False
        loaded = sum(len(chunk) for gen in self._gens.values() for chunk in gen.pending)
        if loaded > self._entries and self._entries + loaded > self._slots.size:
            # mostly new (recovery): size the filter once, not a generation at a time
            self._rebuild_filter(self._entries + loaded)
        for gen in self._gens.values():
            if gen.pending:
                entries = np.concatenate(gen.pending) if len(gen.pending) > 1 else gen.pending[0]
                gen.pending = []
                run = _sorted_run(entries[:, 0].astype(np.uint64), entries[:, 1].astype(np.int64))
                self._add_run(gen, run)
        self._seal()

    def _gen(self, hour: int) -> _Gen:
        gen = self._gens.get(hour)
        if gen is None:
            gen = self._gens[hour] = _Gen(hour)
            self._give_bit(gen)
        return gen

    def _give_bit(self, gen: _Gen) -> None:
        for bit, owner in enumerate(self._by_bit):
            if owner is None:
                self._by_bit[bit] = gen
                gen.bit = bit
                return
        self._unfiltered.append(gen)

    def _add_run(self, gen: _Gen, run: _Run) -> None:
        """Append ``run`` to ``gen`` (merging runs like a binary counter) and the filter."""
        if not len(run):
            return
        self._entries += len(run)
        gen.size += len(run)
        self._mark(gen, run.hashes)
        gen.runs.append(run)
        while len(gen.runs) > 1 and len(gen.runs[-2]) <= len(gen.runs[-1]):
            self._merge_last(gen)
        self._grow_step()

    def _grow_step(self) -> None:
        """Start, or advance by one generation, building a bigger filter.

        Ids outgrew the filter: rather than one stall to mark them all again, the new
        one is marked a generation per call (new runs go to both) while the old one,
        only denser, keeps answering; it takes over once complete.
        """
        if self._next is None:
            if self._entries <= self._slots.size:
                return
            size = self._slots.size
            while size < self._entries:
                size *= 2
            self._next = np.zeros(size, dtype=np.uint32)
            self._next_todo = [gen for gen in self._gens.values() if gen.bit is not None]
        elif self._next_todo:
            gen = self._next_todo.pop()
            assert gen.bit is not None
            for run in gen.runs:
                _set_bit(self._next, gen.bit, run.hashes)
        else:
            self._set_slots(self._next)
            self._next = None

    def _seal(self) -> None:
        """Every hour before the live one as one run; in a file when spilling. Before
        the first lookup the live hour is unknown: nothing is sealed yet."""
        if self._live_hour is None:
            return
        for gen in self._gens.values():
            if gen.hour >= self._live_hour:
                continue
            while len(gen.runs) > 1:
                self._merge_last(gen)
            if self._spill is not None and gen.runs and gen.runs[0].file is None:
                gen.runs[0] = _spilled(gen.runs[0], self._spill / f"{gen.hour}-{next(self._names)}")

    def _merge_last(self, gen: _Gen) -> None:
        """Merge the last two runs of ``gen`` (an id in both is then counted once)."""
        b = gen.runs.pop()
        a = gen.runs.pop()
        merged = _merge(a, b)
        a.release()
        b.release()
        gen.runs.append(merged)
        removed = len(a) + len(b) - len(merged)
        gen.size -= removed
        self._entries -= removed

    def _drop(self, gen: _Gen) -> None:
        self._entries -= gen.size
        for run in gen.runs:
            run.release()
        if gen.bit is not None:
            self._by_bit[gen.bit] = None
            clear = np.uint32(~(1 << gen.bit) & 0xFFFFFFFF)
            np.bitwise_and(self._slots, clear, out=self._slots)
            if self._next is not None:
                np.bitwise_and(self._next, clear, out=self._next)
                if gen in self._next_todo:
                    self._next_todo.remove(gen)
            if self._unfiltered:
                heir = self._unfiltered.pop(0)
                self._by_bit[gen.bit] = heir
                heir.bit = gen.bit
                for run in heir.runs:
                    self._mark(heir, run.hashes)
        else:
            self._unfiltered.remove(gen)

    def _mark(self, gen: _Gen, hashes: U64) -> None:
        if gen.bit is not None:
            _set_bit(self._slots, gen.bit, hashes)
            if self._next is not None:
                _set_bit(self._next, gen.bit, hashes)

    def _set_slots(self, slots: npt.NDArray[np.uint32]) -> None:
        self._slots = slots
        self._slot_view = slots.data
        self._slot_mask = len(slots) - 1

    def _rebuild_filter(self, entries: int) -> None:
        """A filter for ``entries`` ids, marked afresh."""
        size = _MIN_SLOTS
        while size < entries:
            size *= 2
        self._next = None
        self._set_slots(np.zeros(size, dtype=np.uint32))
        for gen in self._gens.values():
            for run in gen.runs:
                self._mark(gen, run.hashes)


def _spilled(run: _Run, path: Path) -> _Run:
    """``run`` written to one file (hashes, then offsets) and mapped back read-only.

    Random access is advised: a lookup touches the few pages of one binary search, and
    the kernel's read-ahead would bring a dozen neighbours of each into memory with it.
    One file, one mapping: a past hour holds one file descriptor (the mapping's).
    """
    try:
        with path.open("wb") as out:
            run.hashes.tofile(out)
            run.offsets.tofile(out)
        with path.open("rb") as f:
            mapped = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    except FileNotFoundError:
        return run  # the partition was forgotten meanwhile: its directory is gone
    mapped.madvise(mmap.MADV_RANDOM)
    n = len(run)
    # the arrays hold the mapping; it is unmapped (and its descriptor closed) with them
    hashes = np.frombuffer(mapped, dtype=np.uint64, count=n)
    offsets = np.frombuffer(mapped, dtype=np.int64, count=n, offset=8 * n)
    return _Run(hashes, offsets, path)


def _set_bit(slots: npt.NDArray[np.uint32], bit: int, hashes: U64) -> None:
    """Set ``bit`` in the three slots of each hash."""
    value = np.uint32(1 << bit)
    # With a repeated slot every write stores the same value (old | bit): no ufunc.at.
    for at in _slots_of(hashes, len(slots)):
        slots[at] |= value


def _slots_of(hashes: U64, size: int) -> tuple[Slots, Slots, Slots]:
    """The three filter slots of each hash: a, a + b, a + 2b with a, b its 32-bit halves."""
    mask = np.uint64(size - 1)
    a = hashes & _LOW32
    b = hashes >> _U32
    first = (a & mask).astype(np.intp)
    a += b
    second = (a & mask).astype(np.intp)
    a += b
    return first, second, (a & mask).astype(np.intp)


def _first_in_gen(gen: _Gen, h: int, best: int) -> int:
    for run in gen.runs:
        i = bisect_left(run.hview, h)
        if i < len(run.hview) and run.hview[i] == h:
            o: int = run.oview[i]
            if o < best:
                best = o
    return best


def _first_in_gen_batch(gen: _Gen, hashes: U64, idx: npt.NDArray[np.intp], best: I64) -> None:
    probe = hashes[idx]
    for run in gen.runs:
        pos = np.searchsorted(run.hashes, probe)
        np.minimum(pos, len(run) - 1, out=pos)
        hit = run.hashes[pos] == probe
        if hit.any():
            where = idx[hit]
            best[where] = np.minimum(best[where], run.offsets[pos[hit]])
