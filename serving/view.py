"""The shared serving view in Redis: every partition's cells, readable by any worker.

Layout per partition p (prefix ``{app_id}:v1``):
``{prefix}:cells:{p}`` hash cell-key -> encoded cell, ``{prefix}:stamps:{p}`` hash
cell-key -> offset stamp, ``{prefix}:whole:{p}`` marker set after a full publish.
Writes go through a script that keeps a cell only if its stamp is not older than
the stored one, so a worker that lost a partition in a rebalance cannot overwrite
the new owner's newer values. Redis is a view: a missing ``whole`` marker (Redis
flushed or restarted) makes the owner republish the partition from its tables.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping

from redis.asyncio import Redis

from leadline.aggregators.cells import Cell
from leadline.aggregators.kinds import CellKey, key_text, parse_key

_PUT = """
for i = 1, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[2], ARGV[i])
  if (not cur) or tonumber(cur) <= tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
return 1
"""


_CACHED = 250  # a (partition, field) key, its str, the (stamp, cell) tuple, the stamp


class ServingView:
    """Reads and writes the cells of all partitions in Redis."""

    def __init__(self, redis: Redis, prefix: str, partitions: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.partitions = partitions
        self._put = redis.register_script(_PUT)
        self._cache: dict[tuple[int, str], tuple[int, Cell]] = {}

    def _keys(self, p: int) -> tuple[str, str, str]:
        return (f"{self.prefix}:cells:{p}", f"{self.prefix}:stamps:{p}",
                f"{self.prefix}:whole:{p}")

    async def publish(
        self, p: int, cells: dict[CellKey, tuple[int, bytes]], removed: Iterable[CellKey] = (),
        *, whole: bool = False,
    ) -> None:
        """Write changed cells (stamp-checked) and drop expired ones.

        ``whole`` marks the partition complete: used after a full republish.
        """
        cells_key, stamps_key, whole_key = self._keys(p)
        items = list(cells.items())
        for i in range(0, len(items), 500):
            args: list[bytes | str | int] = []
            for key, (stamp, data) in items[i : i + 500]:
                args += [key_text(key), stamp, data]
            await self._put(keys=[cells_key, stamps_key], args=args)
        gone = [key_text(k) for k in removed]
        if gone:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hdel(cells_key, *gone)
                pipe.hdel(stamps_key, *gone)
                await pipe.execute()
        if whole:
            await self.redis.set(whole_key, str(time.time()))

    async def missing(self, partitions: Iterable[int]) -> list[int]:
        """Owned partitions whose ``whole`` marker is gone (Redis lost them)."""
        ps = list(partitions)
        if not ps:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in ps:
                pipe.exists(self._keys(p)[2])
            present = await pipe.execute()
        return [p for p, ok in zip(ps, present, strict=True) if not ok]

    def cached(self) -> int:
        """Cells of all partitions held decoded for scrapes."""
        return len(self._cache)

    def nbytes(self) -> int:
        """Memory of those decoded cells (an estimate from object sizes, as the state's)."""
        return sys.getsizeof(self._cache) + len(self._cache) * _CACHED + sum(
            cell.nbytes() for _, cell in self._cache.values())

    async def read(
        self, local: Mapping[int, Mapping[CellKey, Cell]] | None = None,
    ) -> list[tuple[CellKey, Cell]]:
        """Every cell of every partition; cells whose stamp did not move are not re-read.

        ``local``: the cells of the partitions this worker owns, as it folds them. They
        are used as they are, unless Redis holds a newer stamp (a new owner still
        replaying what its predecessor had published, see ``streams/checkpoint.py``):
        no second, decoded copy of them in memory, and fresher by up to a batch.
        """
        local = local or {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in range(self.partitions):
                pipe.hgetall(self._keys(p)[1])
            stamps = await pipe.execute()
        out: list[tuple[CellKey, Cell]] = []
        wanted: list[tuple[int, str, int]] = []
        current: set[tuple[int, str]] = set()
        for p, table in enumerate(stamps):
            mine = local.get(p)
            newer: set[CellKey] = set()
            for raw_key, raw_stamp in table.items():
                field = raw_key.decode()
                stamp = int(raw_stamp)
                if mine is not None:
                    key = parse_key(field)
                    cell = mine.get(key)
                    if cell is not None and cell.offset >= stamp:
                        continue
                    newer.add(key)
                current.add((p, field))
                cached = self._cache.get((p, field))
                if cached is None or cached[0] != stamp:
                    wanted.append((p, field, stamp))
            if mine is not None:
                out += [(key, cell) for key, cell in mine.items() if key not in newer]
        if wanted:
            async with self.redis.pipeline(transaction=False) as pipe:
                for p, field, _ in wanted:
                    pipe.hget(self._keys(p)[0], field)
                blobs = await pipe.execute()
            for (p, field, stamp), blob in zip(wanted, blobs, strict=True):
                if blob is not None:
                    self._cache[(p, field)] = (stamp, Cell.decode(blob))
        for stale in set(self._cache) - current:
            del self._cache[stale]
        return out + [(parse_key(field), cell) for (_, field), (_, cell) in self._cache.items()]
