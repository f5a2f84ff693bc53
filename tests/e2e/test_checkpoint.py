"""The table is written once per checkpoint, not once per batch (streams/checkpoint.py).

A real worker folds many small batches a second; a cell every batch touches must reach
the changelog about once per commit interval, in its latest form.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from leadline.aggregators.cells import Cell
from tests.support.worker import Pipeline, StartWorker, value, wait_for

pytestmark = pytest.mark.slow

SENDS = 30


async def _send_in_small_batches(bootstrap: str, topic: str, now: float) -> float:
    """``SENDS`` sends of 20 events, 0.1 s apart; returns how long the sending took."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    started = time.monotonic()
    try:
        for i in range(SENDS):
            futures = []
            for j in range(20):
                event = {"event_id": f"ck-{i}-{j}", "user_id": f"user-{j}", "timestamp": now,
                         "name": "feature_used", "platform": "web",
                         "properties": {"feature": "export"}}
                futures.append(await producer.send(topic, orjson.dumps(event),
                                                   key=f"user-{j}".encode()))
            await asyncio.gather(*futures)
            await asyncio.sleep(0.1)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def _read_all(bootstrap: str, topic: str) -> list[tuple[bytes, bytes | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            await consumer._client.force_metadata_update()  # type: ignore[attr-defined]
            parts = [TopicPartition(topic, p)
                     for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[tuple[bytes, bytes | None]] = []
        idle = 0
        while idle < 3:  # the broker's reported end offsets can be short (tansu)
            batch = await consumer.getmany(timeout_ms=500)
            idle = 0 if batch else idle + 1
            for records in batch.values():
                out += [(r.key, r.value) for r in records]
        return out
    finally:
        await consumer.stop()


def test_a_cell_every_batch_touches_is_written_about_once_per_commit_interval(
        broker, redis_server, tmp_path, start_worker: StartWorker) -> None:  # type: ignore[no-untyped-def]
    pipeline = Pipeline(broker, redis_server, tmp_path)
    worker = start_worker(pipeline).wait_ready()
    took = asyncio.run(_send_in_small_batches(pipeline.bootstrap, pipeline.topic,
                                              time.time()))
    wait_for(lambda: value(worker.scrape(), "leadline_events_processed_total",
                           name="feature_used") == SENDS * 20,
             timeout=60, what="every event folded")
    time.sleep(3)  # the next checkpoint (commit interval 1 s)
    records = asyncio.run(_read_all(pipeline.bootstrap, f"{pipeline.app_id}-state-changelog"))
    cells = [(key, data) for key, data in records if b"|c|events/" in key]
    writes = Counter(key for key, _ in cells)
    assert writes, "no events cell in the changelog"
    busiest, n = writes.most_common(1)[0]
    print(f"{SENDS} sends in {took:.1f} s: the busiest events cell written {n} times")
    # ~one checkpoint a second while the batches came, plus the ones around them;
    # written per batch it would be about SENDS (one per fetch)
    assert n <= took + 4, f"{busiest!r} written {n} times in {took:.1f} s of sending"
    # the last record of each events cell holds the latest counts: all of them in all
    last = {key: data for key, data in cells}
    total = sum(Cell.decode(data).values.get("feature_used", 0)
                for key, data in last.items() if data is not None)
    resolutions = {key.split(b"/")[1] for key in last}
    assert total == SENDS * 20 * len(resolutions)
