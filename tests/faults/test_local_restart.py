"""A worker restarted on its own ``LEADLINE_DATA_DIR`` restores from its local snapshot and
reads only the changelog's tail, exactly, also when another worker wrote in between.

The snapshot of a checkpoint is one atomic RocksDB write made after the broker confirmed
the checkpoint, and the users it takes wait in memory until then: a SIGKILL at any point
leaves the last whole snapshot, at worst one checkpoint behind the changelog.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from leadline.config.settings import load_settings
from leadline.embedded.services import Service
from leadline.streams.topics import true_end_offsets
from tests.faults import processed
from tests.support import oracle_catalog as oc
from tests.support.worker import Pipeline, StartWorker, WorkerProcess, wait_for

pytestmark = pytest.mark.slow

SNAPSHOT = re.compile(r"partition (\d+): local snapshot of changelog offset (\d+)")
BULK = re.compile(r"restored partitions \[[\d, ]*\] from the changelog: (\d+) records")


def _restart_log(log: Path, before: int) -> tuple[dict[int, int], int]:
    """(snapshot offset per partition, changelog records read) of the restart."""
    text = log.read_text()[before:]
    snapshots = {int(p): int(offset) for p, offset in SNAPSHOT.findall(text)}
    return snapshots, sum(int(n) for n in BULK.findall(text))


def _changelog_ends(pipeline: Pipeline) -> dict[int, int]:
    """The state changelog's true end offset per partition."""
    async def read() -> dict[int, int]:
        topic = f"{pipeline.app_id}-state-changelog"
        consumer = AIOKafkaConsumer(bootstrap_servers=pipeline.bootstrap)
        await consumer.start()
        try:
            reported = await consumer.end_offsets(
                [TopicPartition(topic, p) for p in range(pipeline.partitions)])
        finally:
            await consumer.stop()
        ends = await true_end_offsets(load_settings(broker=f"kafka://{pipeline.bootstrap}"),
                                      {TP(tp.topic, tp.partition): end
                                       for tp, end in reported.items()})
        return {tp.partition: end for tp, end in ends.items()}
    return asyncio.run(read())


def _exact(worker: WorkerProcess, truth: oc.Truth, what: str) -> None:
    wait_for(lambda: not oc.whole_mismatches(worker.scrape(), truth, time.time()),
             timeout=90, what=what)
    time.sleep(2)  # nothing may trickle in twice afterwards
    assert oc.whole_mismatches(worker.scrape(), truth, time.time()) == []


def test_a_restart_on_the_same_data_dir_reads_only_the_tail_and_is_exact(
    broker: Service, redis_server: Service, tmp_path: Path, start_worker: StartWorker
) -> None:
    pipeline = Pipeline.for_catalog(broker, redis_server, tmp_path, LEADLINE_BATCH_MAX="300")
    messages, truth = oc.generate(time.time(), seed=83, users=3000)
    log = tmp_path / "w1.log"
    first = start_worker(pipeline, "w1").wait_ready()
    pipeline.send(messages)
    wait_for(lambda: processed(first) >= len(messages) * 0.7, timeout=90, interval=0.05,
             what="70% processed")
    first.kill()                                            # mid-stream
    ends = _changelog_ends(pipeline)                        # nothing writes until the restart
    before = len(log.read_text())
    again = start_worker(pipeline, "w1").wait_ready()      # the same directory
    _exact(again, truth, "metrics to equal the oracle after the restart")
    snapshots, read = _restart_log(log, before)
    assert set(snapshots) == {0, 1, 2, 3}, log.read_text()[before:][-3000:]
    held = sum(snapshots.values())                         # records up to the snapshots
    assert held > 1000, snapshots
    # Only what lies past the snapshots is read (the whole changelog without them); how
    # much that is depends on the checkpoint in flight at the kill, not on the test.
    assert read <= sum(ends[p] - offset for p, offset in snapshots.items()), (read, snapshots, ends)
    print(f"restart: snapshots at {snapshots} of {ends}, then {read} changelog records read")


def test_a_snapshot_another_worker_wrote_past_is_caught_up_from_the_changelog(
    broker: Service, redis_server: Service, tmp_path: Path, start_worker: StartWorker
) -> None:
    """w1 is killed while it folds the first half; w2 takes every partition over and folds
    the rest, then stops; w1 comes back on its own directory: its snapshots are behind the
    changelog by all that w2 wrote, which the tail must bring in, tombstones and all."""
    pipeline = Pipeline.for_catalog(broker, redis_server, tmp_path, LEADLINE_BATCH_MAX="300")
    messages, truth = oc.generate(time.time(), seed=89, users=3000)
    half = len(messages) // 2
    first = start_worker(pipeline, "w1").wait_ready()
    pipeline.send(messages[:half])
    wait_for(lambda: processed(first) >= half * 0.6, timeout=90, interval=0.05,
             what="60% of the first half processed")
    first.kill()
    second = start_worker(pipeline, "w2").wait_ready()
    pipeline.send(messages[half:])
    _exact(second, truth, "w2 to equal the oracle")
    second.stop()
    log = tmp_path / "w1.log"
    before = len(log.read_text())
    back = start_worker(pipeline, "w1").wait_ready()
    _exact(back, truth, "w1 back on its snapshots to equal the oracle")
    snapshots, read = _restart_log(log, before)
    assert set(snapshots) == {0, 1, 2, 3}, log.read_text()[before:][-3000:]
    assert read > 0                                        # what w2 wrote meanwhile
