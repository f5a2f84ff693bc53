"""Records fetched and then dropped are read again after Faust's seek to committed offsets.

Faust drops records it fetched but may not deliver (partition not active, flow stopped,
rebalance) and relies on ``perform_seek`` to fetch them again. aiokafka's
``seek_to_committed`` leaves a partition that has no committed offset where prefetching
left it, past the dropped records: a worker killed before its first commit made the next
one skip part of the source topic for good (``leadline.streams.faust_adapter.seek_to_committed``).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from leadline.embedded.services import Service
from leadline.streams.faust_adapter import seek_to_committed

pytestmark = pytest.mark.slow


async def _positions_after_drop(bootstrap: str) -> dict[str, tuple[int, int]]:
    """(aiokafka's position, ours) after 10 records were fetched and dropped, per case."""
    stream, changelog = f"sk-{uuid.uuid4().hex[:8]}", f"sk-{uuid.uuid4().hex[:8]}-changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(stream, 2, 1), NewTopic(changelog, 1, 1)])
    await admin.close()
    uncommitted, committed, other = (TopicPartition(stream, 0), TopicPartition(stream, 1),
                                     TopicPartition(changelog, 0))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for tp in (uncommitted, committed, other):
            await asyncio.gather(*[await producer.send(tp.topic, b"v", partition=tp.partition)
                                   for _ in range(10)])
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4().hex}",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([uncommitted, committed, other])
        await consumer.commit({committed: OffsetAndMetadata(4, "")})
        out: dict[str, tuple[int, int]] = {}

        async def drain() -> None:  # fetched, then dropped by the caller
            left = {uncommitted: 10, committed: 6, other: 10}
            async with asyncio.timeout(10):
                while any(left.values()):
                    for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                        left[tp] -= len(records)

        await drain()
        await consumer.seek_to_committed()
        theirs = {tp: await consumer.position(tp) for tp in (uncommitted, committed, other)}
        await seek_to_committed(consumer, {stream}, "earliest")
        for name, tp in (("uncommitted", uncommitted), ("committed", committed),
                         ("other topic", other)):
            out[name] = (theirs[tp], await consumer.position(tp))
        return out
    finally:
        await consumer.stop()


def test_a_partition_without_committed_offset_is_read_again_from_the_start(
    broker: Service,
) -> None:
    positions = asyncio.run(_positions_after_drop(f"127.0.0.1:{broker.port}"))
    # aiokafka alone: the never-committed partition stays past the dropped records
    assert positions["uncommitted"] == (10, 0)
    assert positions["committed"] == (4, 4)
    # topics without a batch handler (changelogs) are left to Faust
    assert positions["other topic"] == (10, 10)
