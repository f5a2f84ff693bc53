"""Produce many records per call: one aiokafka batch per destination partition.

``producer.send`` costs a future, a partitioner call and an accumulator lookup per
record. The by-user topic is partitioned by leadline itself (xxhash of the identity,
the same function in every worker), so records are appended straight into
per-partition batches and confirmed per batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

import xxhash


def partition_for(key: bytes, partitions: int) -> int:
    """The by-user partition of an identity: stable across workers and restarts."""
    return xxhash.xxh3_64_intdigest(key) % partitions


class BatchPublisher:
    """Collects records per (topic, partition); :meth:`flush` sends and confirms them."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._open: dict[tuple[str, int], Any] = {}
        self._counts: dict[tuple[str, int], int] = {}
        self._sent: list[asyncio.Future[Any]] = []
        self._sizes: list[int] = []

    async def add(self, topic: str, partition: int, key: bytes | None,
                  value: bytes | None) -> None:
        slot = (topic, partition)
        batch = self._open.get(slot)
        if batch is None:
            batch = self._open[slot] = self._producer.create_batch()
            self._counts[slot] = 0
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: ship it
            await self._ship(slot)
            batch = self._open[slot] = self._producer.create_batch()
            self._counts[slot] = 0
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit a batch")
        self._counts[slot] += 1

    async def _ship(self, slot: tuple[str, int]) -> None:
        topic, partition = slot
        self._sent.append(await self._producer.send_batch(self._open[slot], topic,
                                                          partition=partition))
        self._sizes.append(self._counts[slot])

    async def flush(self) -> list[tuple[Any, int]]:
        """Send every open batch and wait until the broker has acknowledged all of them;
        returns each batch's ``RecordMetadata`` (``offset``: its first record's) and size."""
        for slot in self._open:
            await self._ship(slot)
        self._open.clear()
        sent, self._sent = self._sent, []
        sizes, self._sizes = self._sizes, []
        return list(zip(await asyncio.gather(*sent), sizes, strict=True)) if sent else []


async def send_changelog(producer: Any, topic: str,
                         records: list[tuple[int, bytes, bytes | None]]) -> dict[int, int]:
    """Send table changelog records (partition, key, value or tombstone) and confirm them;
    returns, per partition, the offset after the last record written.

    Used instead of Faust's ``Table.send_changelog``, which costs a future and a buffer
    round per record; the partitions' states are restored from the topic by
    ``streams/restore.py``.
    """
    if not records:
        return {}
    out = BatchPublisher(producer)
    for p, key, value in records:
        await out.add(topic, p, key, value)
    offsets: dict[int, int] = {}
    for sent, size in await out.flush():
        offsets[sent.partition] = max(offsets.get(sent.partition, 0), sent.offset + size)
    return offsets
