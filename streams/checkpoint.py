"""Checkpoints: the table written and the by-user offsets acked together, once per commit.

``aggregate`` folds every batch and publishes its cells to the serving view at once
(freshness), but leaves its offsets unacked (:attr:`WorkerContext.unacked`). Each consumer
commit first runs :func:`checkpoint`: under ``worker.folding`` it sends every cell,
id chunk and user changed since the last checkpoint to the changelog, waits for the
broker to confirm them, and only then acks the offsets folded into them, which the
commit that follows makes durable. So a committed offset is always covered by the
changelog, as when every batch wrote its own records, with one write per changed key
per commit interval instead of one per batch.

Faust commits on its timer, on revocation (before it hands partitions over) and on
stop, so those three write the table too; a crash loses only the folds of the
current interval, which the next owner replays from the committed offsets exactly
(offset stamps and the dedupe map).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from leadline.streams.context import WorkerContext
from leadline.streams.faust_adapter import kafka_producer
from leadline.streams.publish import send_changelog
from leadline.streams.store import is_stamped_record

Records = list[tuple[int, bytes, bytes | None]]


async def send_in_order(send: Callable[[Records], Awaitable[dict[int, int]]],
                        records: Records) -> dict[int, int]:
    """Send a checkpoint's records in two confirmed steps: first everything but the user
    records, then, once the broker has confirmed all of that, the user and session records.
    Returns what ``send`` returned for the last step that sent to each partition.

    A restored user stamp says that every cell its offset touched holds it
    (``streams/store.py``). One send may span several producer batches, and a failed
    batch does not stop a later one from landing; so user records wait until the cells
    of the same checkpoint have landed, whatever happens to the batches in between.
    """
    first = [r for r in records if not is_stamped_record(r[1])]
    users = [r for r in records if is_stamped_record(r[1])]
    offsets: dict[int, int] = {}
    if first:
        offsets |= await send(first)
    if users:
        offsets |= await send(users)
    return offsets


async def checkpoint(worker: WorkerContext, changelog_topic: str) -> None:
    """Write what changed since the last checkpoint to the table, then ack its offsets.

    Records the broker did not confirm are put back, ahead of newer ones, and their
    offsets stay unacked: the next checkpoint sends them again (a repeated record is
    harmless, each holds the whole value of its key).
    """
    app, store = worker.app, worker.store
    async with worker.folding:
        records = store.checkpoint(time.time())
        acks, worker.unacked = worker.unacked, []
        try:
            last_batches: dict[int, int] = {}
            if records:  # (a batch of duplicates only changes nothing)
                producer = kafka_producer(app)
                last_batches = await send_in_order(
                    lambda part: send_changelog(producer, changelog_topic, part), records)
        except BaseException:
            store.unsent(records)
            worker.unacked[:0] = acks
            raise
        store.confirmed(records, last_batches)
        generation = app.consumer_generation_id
        consumer: Any = app.consumer
        for acked_in, tp, offsets in acks:
            # Offsets of an older generation belong to an assignment that was revoked
            # (its own checkpoint ran then); the next owner replays them exactly.
            if acked_in == generation:
                consumer.ack_offsets(tp, offsets)
