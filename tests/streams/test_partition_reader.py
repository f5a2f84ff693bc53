"""``PartitionReader``: a partition that cannot be read stalls, the others are returned.

Real aiokafka fetch results over real record batches (one with a broken checksum, the
error a batch that cannot be decoded raises) and a real subscription state; the
health collector hears of it. The end-to-end case (a worker without the snappy codec)
is ``tests/e2e/test_compression.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.consumer.fetcher import FetchError, FetchResult, PartitionRecords
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.errors import CorruptRecordException, TopicAuthorizationFailedError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from leadline.serving.health import Health
from leadline.streams.faust_adapter import ConsumerHooks, FetchStall, PartitionReader

TOPIC = "product-events"
P0, P1, P2 = (TopicPartition(TOPIC, p) for p in range(3))


def batch(base: int, n: int, corrupt: bool = False) -> bytes:
    """A record batch of ``n`` records from offset ``base`` (checksum broken if ``corrupt``)."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    for i in range(n):
        builder.append(i, timestamp=1_700_000_000_000, key=None, value=b"v%d" % (base + i),
                       headers=[])
    data = bytearray(builder.build())
    data[0:8] = base.to_bytes(8, "big")  # the base offset, outside the checksum
    if corrupt:
        data[-1] ^= 0xFF
    return bytes(data)


class Fetcher(SimpleNamespace):
    """The parts of aiokafka's ``Fetcher`` that ``PartitionReader`` uses."""

    def buffer(self, tp: TopicPartition, offset: int, data: bytes) -> None:
        records = PartitionRecords(tp, MemoryRecords(data), None, offset, None, None,
                                   check_crcs=True, isolation_level=0)
        assignment = self._subscriptions.subscription.assignment
        self._records[tp] = FetchResult(tp, assignment=assignment,
                                        partition_records=records, backoff=0)

    def retry_now(self, tp: TopicPartition) -> None:
        stall = self._records[tp]
        assert isinstance(stall, FetchStall)
        stall.retry_at = 0.0


def offsets(drained: dict[TopicPartition, list[Any]]) -> dict[int, list[int]]:
    return {tp.partition: [r.offset for r in recs] for tp, recs in drained.items()}


def samples(health: Health, name: str) -> dict[tuple[str, ...], float]:
    family = next(f for f in health.collect() if f.name == name)
    return {tuple(s.labels.values()): s.value for s in family.samples}


def test_an_unreadable_partition_stalls_at_its_offset_and_resumes(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="leadline.fetch")
    health = Health("test")
    reader = PartitionReader(ConsumerHooks(on_fetch_failed=health.fetch_failed,
                                           on_fetch_resumed=health.fetch_resumed))

    async def scenario() -> None:
        subscriptions = SubscriptionState()
        subscriptions.assign_from_user({P0, P1, P2})
        for tp in (P0, P1, P2):
            subscriptions.seek(tp, 0)
        fetcher = Fetcher(_subscriptions=subscriptions, _records=OrderedDict(),
                          _notify=lambda future: None, _wait_consume_future=None,
                          _closed=False)

        async def fetched() -> dict[int, list[int]]:
            return offsets(await reader.fetched_records(fetcher, None, 0, None))

        # Partition 0: a readable batch, then one that is not. Partition 1: aiokafka
        # holds a fetch error. Partition 2: readable.
        fetcher.buffer(P0, 0, batch(0, 5) + batch(5, 5, corrupt=True))
        fetcher._records[P1] = FetchError(error=TopicAuthorizationFailedError(TOPIC),
                                          backoff=0)
        fetcher.buffer(P2, 0, batch(0, 3))
        assert await fetched() == {0: [0, 1, 2, 3, 4], 2: [0, 1, 2]}
        assert reader.stalls[P0].offset == 5
        assert isinstance(reader.stalls[P0].error, CorruptRecordException)
        assert reader.stalls[P1].offset == 0
        assert subscriptions.subscription.assignment.state_value(P0).position == 5
        assert isinstance(fetcher._records[P0], FetchStall)  # not fetched again yet

        # Not due: nothing happens. Due: fetched again (the marker goes), fails the same.
        assert await fetched() == {}
        assert isinstance(fetcher._records[P0], FetchStall)
        fetcher.retry_now(P0)
        assert await fetched() == {}
        assert P0 not in fetcher._records
        fetcher.buffer(P0, 5, batch(5, 5, corrupt=True))
        assert await fetched() == {}
        assert reader.stalls[P0].failures == 2 and reader.stalls[P0].delay == 2.0

        # The batch reads (the cause fixed): delivered from offset 5, the stall is over.
        fetcher.retry_now(P0)
        await fetched()
        fetcher.buffer(P0, 5, batch(5, 5))
        assert await fetched() == {0: [5, 6, 7, 8, 9]}
        assert P0 not in reader.stalls

        # Partition 1 goes to another worker: no longer reported here.
        subscriptions.assign_from_user({P0, P2})
        for tp in (P0, P2):
            subscriptions.seek(tp, 10)
        await fetched()
        assert reader.stalls == {}

    asyncio.run(scenario())
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2, errors  # one per stall, none for the retry that failed alike
    assert errors[0].startswith(f"cannot read partition {TOPIC}[0] at offset 5: "
                                "CorruptRecordException")
    assert errors[1].startswith(f"cannot read partition {TOPIC}[1] at offset 0: "
                                "TopicAuthorizationFailedError")
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("[0] is read again past offset 5 (now at 10), after 2 failed" in m
               for m in infos), infos
    assert any("[1], stalled at offset 0, is no longer assigned" in m for m in infos), infos
    assert samples(health, "leadline_fetch_errors") == {
        (TOPIC, "0", "CorruptRecordException"): 2.0,
        (TOPIC, "1", "TopicAuthorizationFailedError"): 1.0,
    }
    assert samples(health, "leadline_partition_stalled") == {}


def test_the_stalled_gauge_covers_every_assigned_partition() -> None:
    health = Health("test")
    health.consumer_lag = {(TOPIC, 0): 0, (TOPIC, 1): 12}
    health.fetch_failed(TOPIC, 1, 40, CorruptRecordException("bad"))
    assert samples(health, "leadline_partition_stalled") == {(TOPIC, "0"): 0.0,
                                                             (TOPIC, "1"): 1.0}
    health.fetch_resumed(TOPIC, 1)
    assert samples(health, "leadline_partition_stalled") == {(TOPIC, "0"): 0.0,
                                                             (TOPIC, "1"): 0.0}
