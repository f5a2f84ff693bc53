"""A cell: one kind of aggregate for one bucket, per label value, stamped with an offset.

The stamp is the highest source offset folded into the cell. When a partition is
replayed after a crash, an event whose offset is at or below a cell's stamp is
already inside that cell and is skipped: counts stay exact without transactions,
even when only some of a batch's cells reached the changelog before the crash.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson

from leadline.aggregators.sketch import HyperLogLog

_COUNTS = b"C"
_BIG_COUNTS = b"J"
_SKETCHES = b"H"
_HEADER = struct.Struct("<qI")
_FRAME = struct.Struct("<BI")
_CELL = 64  # the slots object and its offset int


@dataclass(slots=True)
class Cell:
    """Label value -> aggregate (int for sums, HyperLogLog for distinct counts)."""

    offset: int = -1
    values: dict[str, Any] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Memory held (an estimate from object sizes): the values dict, its labels and
        their aggregates."""
        size = _CELL + sys.getsizeof(self.values)
        for label, value in self.values.items():
            size += sys.getsizeof(label) + (
                value.nbytes if isinstance(value, HyperLogLog) else sys.getsizeof(value))
        return size

    def encode(self) -> bytes:
        if not self.values or isinstance(next(iter(self.values.values())), int):
            try:
                return _COUNTS + orjson.dumps([self.offset, self.values])
            except TypeError:  # a sum beyond 64 bits (e.g. 1e308 in micro-units): keep it exact
                return _BIG_COUNTS + json.dumps([self.offset, self.values]).encode()
        parts = [_SKETCHES, _HEADER.pack(self.offset, len(self.values))]
        for label, hll in self.values.items():
            name = label.encode()
            body = hll.to_bytes()
            parts += [_FRAME.pack(len(name), len(body)), name, body]
        return b"".join(parts)

    @classmethod
    def decode(cls, data: bytes) -> Cell:
        kind = data[:1]
        if kind == _COUNTS:
            offset, counts = orjson.loads(data[1:])
            return cls(offset, counts)
        if kind == _BIG_COUNTS:
            offset, big = json.loads(data[1:])
            return cls(offset, big)
        if kind != _SKETCHES:
            raise ValueError("not a serialized cell")
        offset, n = _HEADER.unpack_from(data, 1)
        pos = 1 + _HEADER.size
        values: dict[str, Any] = {}
        for _ in range(n):
            name_len, body_len = _FRAME.unpack_from(data, pos)
            pos += _FRAME.size
            label = data[pos : pos + name_len].decode()
            pos += name_len
            values[label] = HyperLogLog.from_bytes(data[pos : pos + body_len])
            pos += body_len
        return cls(offset, values)
