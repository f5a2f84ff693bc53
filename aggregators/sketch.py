"""Distinct counting: exact up to 1,000 identities, HyperLogLog beyond (2^14 one-byte
registers, 16 KiB, ~0.8 % standard error).

**Exact small sets** (SPEC v2: error 0 up to 1,000 distinct identities in a series). A
sketch also keeps the set of 64-bit hashes it was given while there are at most
``EXACT_MAX`` of them, and counts them instead of estimating; its registers are kept up
to date all along, so it falls back to the estimate the moment the set would outgrow
the limit, or a union would. Exact means exact up to a collision of two identities'
64-bit hashes: below 3e-14 among 1,000 identities. A union of exact sketches is exact
while the union holds at most ``EXACT_MAX`` hashes.

Estimation uses Ertl's improved raw estimator ("New cardinality estimation algorithms
for HyperLogLog sketches", 2017): nearly unbiased from 0 to billions with no empirical
bias tables, so small buckets (a quiet 15-second slice) are counted as well as large ones.
Adding the same hash twice is a no-op and merge is a register-wise max, so replaying
events or merging partitions in any order gives the same sketch.

Registers in memory: a sketch starts *sparse*, its non-zero registers in a dict
(index -> rank, absent ones read as 0), and turns dense (the 16 KiB bytearray) at its
``SPARSE_MAX + 1``-th raised register. Most sketches of a worker are small (short
buckets, few labels), so most of them stay sparse. A sparse register read that misses
costs a Python call (``__missing__``), so only small sketches pay it.

Serialized form (written to the changelog for every changed sketch of every batch):
while a sketch has had fewer than M/3 register raises it is its *raise log*, the
(index, rank) pairs in the order they were applied, 3 bytes each, appended as they
happen; after that, the 16 KiB of registers. Either is a copy, never a scan of the
registers, so serializing costs what changed, not the sketch's size.
"""

from __future__ import annotations

import math
import sys
from itertools import chain

import numpy as np
import xxhash

P = 14
M = 1 << P
_Q = 64 - P
_RANK_MASK = (1 << _Q) - 1
_ALPHA_INF = 1.0 / (2.0 * math.log(2.0))
_SPARSE = b"S"  # sorted indexes, then ranks: the earlier format, still read
_LOG = b"L"
_DENSE = b"D"
_PAIR = np.dtype([("index", "<u2"), ("rank", "u1")])
#: A raise log this long (bytes) is no smaller than the registers: switch to dense.
_LOG_LIMIT = M
_BYTEARRAY = sys.getsizeof(bytearray())  # an object's own size, without its buffer
#: Raised registers a sparse sketch holds: the most a dict holds before its table grows
#: from ~4.7 to ~9.3 KB; with its index ints, ~9.4 KB at most instead of 16 KiB.
SPARSE_MAX = 170
#: The most distinct hashes a sketch counts exactly (SPEC v2, section 3).
EXACT_MAX = 1000
#: A hash as a Python int (64 bits: three 30-bit digits).
_HASH_INT = sys.getsizeof(1 << 63)
#: Serialized exact set: this tag, a uint16 count, the hashes (uint64), then the sketch.
_EXACT = b"X"
#: An index key above 256 (smaller ones are shared objects).
_INT = sys.getsizeof(M)


class _Sparse(dict[int, int]):
    """The raised registers of a small sketch: index -> rank; the others read as 0."""

    __slots__ = ()

    def __missing__(self, idx: int) -> int:
        return 0

    def dense(self) -> bytearray:
        regs = bytearray(M)
        for idx, rank in self.items():
            regs[idx] = rank
        return regs

    @property
    def nbytes(self) -> int:
        return sys.getsizeof(self) + _INT * sum(1 for idx in self if idx > 256)


Registers = bytearray | _Sparse


def hash64(identity: str) -> int:
    """Stable 64-bit hash of an identity (the same on every worker and run)."""
    return xxhash.xxh3_64_intdigest(identity.encode())


class HyperLogLog:
    """A mergeable distinct-count sketch. ``regs`` reads register ``idx`` as
    ``regs[idx]`` (sparse or dense, see the module doc); ``registers`` is always the M
    bytes. ``log`` the raises applied so far while they are fewer than M/3, else ``None``.
    ``exact`` every hash added while there are at most ``EXACT_MAX``, else ``None``."""

    __slots__ = ("exact", "log", "regs")
    regs: Registers
    log: bytearray | None
    exact: set[int] | None

    def __init__(self, registers: Registers | None = None,
                 log: bytearray | None = None, exact: set[int] | None = None) -> None:
        if registers is None:
            self.regs, self.log = _Sparse(), bytearray() if log is None else log
            self.exact = set() if exact is None else exact
        else:
            self.regs, self.log, self.exact = registers, log, exact

    @property
    def registers(self) -> bytearray:
        """The M registers (a copy while sparse: write through :meth:`raise_register`)."""
        regs = self.regs
        return regs.dense() if isinstance(regs, _Sparse) else regs

    def _dense(self) -> bytearray:
        """The registers, dense from now on (to be modified in place)."""
        regs = self.regs
        if isinstance(regs, _Sparse):
            regs = self.regs = regs.dense()
        return regs

    def raise_register(self, idx: int, rank: int) -> None:
        """Set register ``idx`` to ``rank`` (an increase) for a hash not given: from now on
        the count is estimated."""
        self.exact = None
        self._raise(idx, rank)

    def _raise(self, idx: int, rank: int) -> None:
        """Set register ``idx`` to ``rank``; the caller checked that it is an increase."""
        regs = self.regs
        regs[idx] = rank
        if type(regs) is _Sparse and len(regs) > SPARSE_MAX:
            self.regs = regs.dense()
        log = self.log
        if log is not None:
            if len(log) < _LOG_LIMIT - 3:
                log.extend((idx & 0xFF, idx >> 8, rank))
            else:
                self.log = None

    def add_hash(self, h: int) -> None:
        """Fold in one 64-bit hash."""
        rest = h & _RANK_MASK
        self.add_hashed(h, h >> _Q, _Q - rest.bit_length() + 1)

    def add_hashed(self, h: int, idx: int, rank: int) -> None:
        """Fold in hash ``h`` whose register index and rank the caller computed."""
        exact = self.exact
        if exact is not None and h not in exact:
            if len(exact) < EXACT_MAX:
                exact.add(h)
            else:
                self.exact = None
        if self.regs[idx] < rank:
            self._raise(idx, rank)

    def add(self, identity: str) -> None:
        self.add_hash(hash64(identity))

    def merge(self, other: HyperLogLog) -> HyperLogLog:
        """Union into ``self`` (in place) and return ``self``."""
        a = np.frombuffer(self._dense(), dtype=np.uint8)
        np.maximum(a, np.frombuffer(other.registers, dtype=np.uint8), out=a)
        self.log = None
        self.exact = _exact_union([self.exact, other.exact])
        return self

    def copy(self) -> HyperLogLog:
        regs = self.regs
        return HyperLogLog(_Sparse(regs) if isinstance(regs, _Sparse) else bytearray(regs),
                           None if self.log is None else bytearray(self.log),
                           None if self.exact is None else set(self.exact))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HyperLogLog):
            return False
        if self.exact != other.exact:
            return False
        a, b = self.regs, other.regs
        if isinstance(a, _Sparse) and isinstance(b, _Sparse):
            return a == b
        return self.registers == other.registers

    def __repr__(self) -> str:
        return f"HyperLogLog(~{self.count():.0f})"

    @property
    def nbytes(self) -> int:
        """Memory held: the sketch, its registers and raise log, with their headers."""
        regs, log = self.regs, self.log
        held = regs.nbytes if isinstance(regs, _Sparse) else _BYTEARRAY + len(regs)
        exact = self.exact
        if exact is not None:
            held += sys.getsizeof(exact) + _HASH_INT * len(exact)
        # (a growing log's capacity is above its length: getsizeof counts the capacity)
        return _HLL + held + (0 if log is None else sys.getsizeof(log))

    def count(self) -> float:
        """The number of distinct hashes added: exact while they are at most
        ``EXACT_MAX``, else estimated."""
        if self.exact is not None:
            return float(len(self.exact))
        return estimate(np.frombuffer(self.registers, dtype=np.uint8))

    def to_bytes(self) -> bytes:
        """The exact set (while kept), then the raise log while it is shorter than the
        registers, else the registers."""
        sketch = _LOG + self.log if self.log is not None else _DENSE + self.registers
        exact = self.exact
        if exact is None:
            return sketch
        hashes = np.fromiter(exact, dtype="<u8", count=len(exact))
        return _EXACT + len(exact).to_bytes(2, "little") + hashes.tobytes() + sketch

    @classmethod
    def from_bytes(cls, data: bytes) -> HyperLogLog:
        exact = None
        if data[:1] == _EXACT and len(data) >= 3:
            n = int.from_bytes(data[1:3], "little")
            end = 3 + 8 * n
            if n > EXACT_MAX or len(data) < end:
                raise ValueError("not a serialized HyperLogLog: exact set cut short")
            exact = set(np.frombuffer(data[3:end], dtype="<u8").tolist())
            data = data[end:]
        sketch = cls._sketch_from_bytes(data)
        sketch.exact = exact
        return sketch

    @classmethod
    def _sketch_from_bytes(cls, data: bytes) -> HyperLogLog:
        kind, body = data[:1], data[1:]
        if kind == _DENSE and len(body) == M:
            return cls(bytearray(body))
        if kind == _LOG and len(body) % 3 == 0:
            pairs = np.frombuffer(body, dtype=_PAIR)
            return cls(_apply(pairs["index"], pairs["rank"]), bytearray(body))
        if kind == _SPARSE and len(body) % 3 == 0:
            n = len(body) // 3
            pairs = np.empty(n, dtype=_PAIR)
            pairs["index"] = np.frombuffer(body, dtype="<u2", count=n)
            pairs["rank"] = np.frombuffer(body, dtype=np.uint8, offset=2 * n)
            return cls(_apply(pairs["index"], pairs["rank"]), bytearray(pairs.tobytes()))
        raise ValueError("not a serialized HyperLogLog")


_HLL = sys.getsizeof(HyperLogLog())  # the sketch object itself (two slots)


def _apply(index: np.ndarray, rank: np.ndarray) -> Registers:
    """Registers holding the largest rank given for each index (sparse if few)."""
    if len(index) and int(index.max()) >= M:
        raise ValueError("not a serialized HyperLogLog: register index out of range")
    regs = np.zeros(M, dtype=np.uint8)
    np.maximum.at(regs, index, rank)
    raised = np.flatnonzero(regs)
    if len(raised) <= SPARSE_MAX:
        return _Sparse(zip(raised.tolist(), regs[raised].tolist(), strict=True))
    return bytearray(regs.tobytes())


def _exact_union(sets: list[set[int] | None]) -> set[int] | None:
    """The union of exact sets, or None once one is unknown or it outgrows EXACT_MAX."""
    out: set[int] = set()
    for s in sets:
        if s is None:
            return None
        out |= s
        if len(out) > EXACT_MAX:
            return None
    return out


def union(sketches: list[HyperLogLog]) -> HyperLogLog:
    """A new sketch holding the union of ``sketches`` (empty list -> empty sketch)."""
    if not sketches:
        return HyperLogLog()
    dense = [s.regs for s in sketches if not isinstance(s.regs, _Sparse)]
    sparse = [s.regs for s in sketches if isinstance(s.regs, _Sparse)]
    if dense:
        out = np.stack([np.frombuffer(r, dtype=np.uint8) for r in dense]).max(axis=0)
    else:
        out = np.zeros(M, dtype=np.uint8)
    if sparse:
        # all their raised registers at once: a scrape unions thousands of small sketches,
        # and making each one dense first would cost a 16 KiB pass per sketch
        n = sum(map(len, sparse))
        index = np.fromiter(chain.from_iterable(sparse), dtype=np.intp, count=n)
        rank = np.fromiter(chain.from_iterable(r.values() for r in sparse), dtype=np.uint8,
                           count=n)
        np.maximum.at(out, index, rank)
    return HyperLogLog(bytearray(out.tobytes()),
                       exact=_exact_union([s.exact for s in sketches]))


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y, z = 1.0, x
    while True:
        x *= x
        z_old = z
        z += x * y
        y += y
        if z_old == z:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y, z = 1.0, 1.0 - x
    while True:
        x = math.sqrt(x)
        z_old = z
        y *= 0.5
        z -= (1.0 - x) ** 2 * y
        if z_old == z:
            return z / 3.0


def estimate(registers: np.ndarray) -> float:
    """Ertl's improved raw estimate from a register array."""
    hist = np.bincount(registers, minlength=_Q + 2)
    if hist[0] == M:
        return 0.0
    z = M * _tau(1.0 - hist[_Q + 1] / M)
    for k in range(_Q, 0, -1):
        z = 0.5 * (z + hist[k])
    z += M * _sigma(hist[0] / M)
    return _ALPHA_INF * M * M / z
