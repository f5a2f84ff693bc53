"""Talking to the broker from the bench: create topics, pre-load them, produce at a rate.

Records go out as whole aiokafka batches per partition (``send_batch``), so the bench
producer is far faster than the pipeline it feeds and never the bottleneck. A keyed
record goes to ``crc32(key) % partitions``, an unkeyed one round-robin.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from bench.workload import Message


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1,
                            max_batch_size=1024 * 1024, max_request_size=8 * 1024 * 1024,
                            request_timeout_ms=60_000)


class Batcher:
    """Appends records to one open batch per partition; ``flush`` ships and confirms them."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, partitions: int) -> None:
        self.producer, self.topic, self.partitions = producer, topic, partitions
        self._open: dict[int, Any] = {}
        self._sent: list[asyncio.Future[Any]] = []
        self._rr = 0

    def partition(self, key: bytes | None) -> int:
        if key is None:
            self._rr += 1
            return self._rr % self.partitions
        return zlib.crc32(key) % self.partitions

    async def add(self, key: bytes | None, value: bytes) -> None:
        p = self.partition(key)
        batch = self._open.get(p)
        if batch is None:
            batch = self._open[p] = self.producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            self._sent.append(await self.producer.send_batch(batch, self.topic, partition=p))
            batch = self._open[p] = self.producer.create_batch()
            batch.append(key=key, value=value, timestamp=None)
        if len(self._sent) > 64:  # bound what is in flight
            done, self._sent = self._sent[:32], self._sent[32:]
            await asyncio.gather(*done)

    async def flush(self) -> None:
        for p, batch in self._open.items():
            self._sent.append(await self.producer.send_batch(batch, self.topic, partition=p))
        self._open.clear()
        sent, self._sent = self._sent, []
        await asyncio.gather(*sent)


async def _preload(bootstrap: str, topic: str, partitions: int,
                   messages: Iterable[Message]) -> int:
    await create_topic(bootstrap, topic, partitions)
    producer = _producer(bootstrap)
    await producer.start()
    n = 0
    try:
        out = Batcher(producer, topic, partitions)
        for key, value in messages:
            await out.add(key, value)
            n += 1
        await out.flush()
    finally:
        await producer.stop()
    return n


def preload(bootstrap: str, topic: str, partitions: int, messages: Iterable[Message]) -> int:
    """Create ``topic`` and write every message to it; returns how many were written."""
    return asyncio.run(_preload(bootstrap, topic, partitions, messages))


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> int:
    """Sum of the partitions' end offsets (records written so far)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return sum(ends.values())
    finally:
        await consumer.stop()


async def produce_steadily(bootstrap: str, topic: str, partitions: int, rate: float,
                           seconds: float, make: Callable[[int, int, float], list[Message]],
                           tick: float = 0.01) -> list[tuple[float, int]]:
    """Produce ``rate`` events/s for ``seconds``, ``rate * tick`` at a time.

    ``make(start, n, now)`` builds the messages of one tick. Returns the produce log:
    (time just before the tick's records were handed to the producer, cumulative
    count including them).
    """
    producer = _producer(bootstrap)
    await producer.start()
    log: list[tuple[float, int]] = []
    try:
        out = Batcher(producer, topic, partitions)
        start = time.time()
        sent = 0
        while True:
            now = time.time()
            if now - start >= seconds:
                break
            due = int((now - start) * rate) - sent
            if due > 0:
                messages = make(sent, due, now)
                t = time.time()
                for key, value in messages:
                    await out.add(key, value)
                await out.flush()
                sent += due
                log.append((t, sent))
            await asyncio.sleep(tick)
    finally:
        await producer.stop()
    return log
