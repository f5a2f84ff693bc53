"""What the embedded broker (tansu 0.6) gets wrong that leadline's recovery depends on.

Faust sizes changelog recovery with ListOffsets(LATEST) (``end_offsets``). tansu answers
with the base offset of the partition's last record batch + 1 instead of the high
watermark, so a worker that recovered a partition past that point and keeps it across
the next rebalance fails Faust's consistency check (``ConsistencyError: The persisted
offset for changelog topic partition ... is higher than the last offset in that topic``)
and exits. Apache Kafka answers correctly; this pins the embedded broker's behaviour so a
tansu upgrade that fixes it is noticed.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP

from leadline.config.settings import load_settings
from leadline.embedded.services import Service
from leadline.streams.topics import true_end_offsets

pytestmark = pytest.mark.slow


async def _one_batch(bootstrap: str, partitions: int, records: int) -> tuple[str, int]:
    """A new topic whose partition 0 holds one batch of ``records``: (topic, watermark)."""
    topic = f"hw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, partitions, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=100)
    await producer.start()
    try:
        futures = [await producer.send(topic, b"v", partition=0) for _ in range(records)]
        return topic, (await asyncio.gather(*futures))[-1].offset + 1
    finally:
        await producer.stop()


async def _reported_ends(bootstrap: str, tps: list[TP]) -> dict[TP, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(*tp) for tp in tps])
    finally:
        await consumer.stop()
    return {TP(tp.topic, tp.partition): end for tp, end in ends.items()}


async def _end_offset_after_one_batch(bootstrap: str, records: int) -> tuple[int, int]:
    topic, watermark = await _one_batch(bootstrap, 1, records)
    return watermark, (await _reported_ends(bootstrap, [TP(topic, 0)]))[TP(topic, 0)]


@pytest.mark.xfail(strict=True, reason="BUG (tansu 0.6, embedded broker): ListOffsets(LATEST) "
                   "returns the last batch's base offset + 1, not the high watermark")
def test_end_offsets_are_the_high_watermark(broker: Service) -> None:
    watermark, reported = asyncio.run(
        _end_offset_after_one_batch(f"127.0.0.1:{broker.port}", 10))
    assert reported == watermark  # tansu: 1 instead of 10


async def _corrected_end_offset(bootstrap: str, records: int) -> tuple[int, int, int]:
    topic, watermark = await _one_batch(bootstrap, 2, records)
    full, empty = TP(topic, 0), TP(topic, 1)
    reported = await _reported_ends(bootstrap, [full, empty])
    corrected = await true_end_offsets(load_settings(broker=f"kafka://{bootstrap}"), reported)
    return watermark, corrected[full], corrected[empty]


def test_recovery_uses_the_true_end_offset(broker: Service) -> None:
    """What Faust's recovery is given (``BatchConsumer.highwaters``) is the high watermark."""
    watermark, corrected, empty = asyncio.run(
        _corrected_end_offset(f"127.0.0.1:{broker.port}", 10))
    assert (corrected, empty) == (watermark, 0)
