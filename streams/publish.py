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
        self._sent: list[asyncio.Future[Any]] = []

    async def add(self, topic: str, partition: int, key: bytes | None,
                  value: bytes | None) -> None:
        slot = (topic, partition)
        batch = self._open.get(slot)
        if batch is None:
            batch = self._open[slot] = self._producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:  # full: ship it
            self._sent.append(await self._producer.send_batch(batch, topic, partition=partition))
            batch = self._open[slot] = self._producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes does not fit a batch")

    async def flush(self) -> None:
        """Send every open batch and wait until the broker has acknowledged all of them."""
        for (topic, partition), batch in self._open.items():
            self._sent.append(await self._producer.send_batch(batch, topic, partition=partition))
        self._open.clear()
        sent, self._sent = self._sent, []
        if sent:
            await asyncio.gather(*sent)


async def send_changelog(producer: Any, topic: str,
                         records: list[tuple[int, bytes, bytes | None]]) -> None:
    """Send table changelog records (partition, key, value or tombstone) and confirm them.

    Used instead of Faust's ``Table.send_changelog``, which costs a future and a buffer
    round per record; the table's in-memory data is written by ``streams/store.py``
    itself, and Faust's recovery reads the topic either way.
    """
    if not records:
        return
    out = BatchPublisher(producer)
    for p, key, value in records:
        await out.add(topic, p, key, value)
    await out.flush()
