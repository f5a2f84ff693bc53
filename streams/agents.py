"""The two batch agents: ``ingest`` (validate, re-key) and ``aggregate`` (dedupe, fold).

Both receive whole fetches from :class:`~leadline.streams.faust_adapter.BatchConsumer`, as a list
of (partition, records). ``ingest``'s offsets are acked when it returns;
``aggregate``'s at the next checkpoint, once the table holds what they changed
(``streams/checkpoint.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any

from faust.types import TP

from leadline.events.model import Event, Ignored, decode_link, encode_link, is_link
from leadline.events.rejection import Rejection, dlq_envelope
from leadline.streams.checkpoint import checkpoint
from leadline.streams.context import WorkerContext
from leadline.streams.faust_adapter import Records, kafka_producer
from leadline.streams.publish import BatchPublisher, partition_for

log = logging.getLogger("leadline.agents")


def register(worker: WorkerContext, table: Any) -> None:
    app, settings, health = worker.app, worker.settings, worker.health
    decoder, store = worker.decoder, worker.store
    # Subscribed and acked like agent topics, but delivered to the handlers below.
    app.topics.add(worker.source)
    app.topics.add(worker.by_user)

    dlq_partitions: list[int] = []
    changelog_topic = table.changelog_topic.get_topic_name()

    def producer() -> Any:
        return kafka_producer(app)

    async def ingest(batch: Records) -> set[TP]:
        """Validate; rejects to the DLQ, valid events re-keyed by identity to the by-user topic.

        Every send is confirmed before the batch is acked, so a crash replays, never loses.
        """
        if not dlq_partitions:  # the DLQ may pre-exist with its own partition count
            dlq_partitions.append(len(await producer().partitions_for(settings.dlq_topic)))
        out = BatchPublisher(producer())
        dlq_topic, user_topic = settings.dlq_topic, settings.by_user_topic
        partitions = settings.partitions
        now = time.time()
        for tp, records in batch:
            health.received += len(records)
            for record in records:
                result = decoder.decode(record.value, now)
                if isinstance(result, Rejection):
                    health.invalid[result.reason.value] += 1
                    log.debug("rejected %s/%s@%s: %s", tp.topic, tp.partition, record.offset,
                              result.error)
                    envelope = dlq_envelope(
                        record.value, record.key, result, topic=tp.topic,
                        partition=tp.partition, offset=record.offset, rejected_at=now)
                    await out.add(dlq_topic, tp.partition % dlq_partitions[0], record.key,
                                  envelope)
                elif isinstance(result, Ignored):
                    health.ignored[result.type] += 1
                    link = result.link
                    if link is not None:  # to where that anonymous id's events go
                        anon = link[0].encode()
                        await out.add(user_topic, partition_for(anon, partitions), anon,
                                      encode_link(link[1], now))
                else:
                    # Spend may have no identity: its id spreads it (a repeat goes along).
                    key = (result.identity or "spend:" + result.event_id).encode()
                    await out.add(user_topic, partition_for(key, partitions), key,
                                  result.encode())
        await out.flush()
        return set()

    async def aggregate(batch: Records) -> set[TP]:
        """Drop duplicates, fold events into their partition's cells and write each
        changed cell once to the serving view; the table and the offsets wait for the
        next checkpoint.

        Holds ``worker.folding`` throughout, so a revocation and a checkpoint wait for it.
        """
        async with worker.folding:
            return await fold_batch(batch)

    hooks = worker.hooks
    hooks.self_acking.add(settings.by_user_topic)
    hooks.before_commit = partial(checkpoint, worker, changelog_topic)

    async def fold_batch(batch: Records) -> set[TP]:
        now = time.time()
        generation = app.consumer_generation_id
        touched, refused = [], set()
        stitched = BatchPublisher(producer())
        for tp, records in batch:
            p = tp.partition
            state = store.states.get(p)
            if state is None:
                # Not recovered (or no longer ours): never build state from nothing, or an
                # empty cell could overwrite the owner's in the view. Fetched again later.
                refused.add(tp)
                continue
            label_name = state.labels.name
            links = store.links[p]
            events, offsets = [], []
            for record in records:
                if is_link(record.value):
                    linked, confirmed_at = decode_link(record.value)
                    links.add(record.key.decode(), record.offset, linked, confirmed_at)
                else:
                    events.append(Event.decode(record.value))
                    offsets.append(record.offset)
            seen = store.dedupers[p].check_batch([e.event_id for e in events], offsets, now)
            for event, offset, duplicate in zip(events, offsets, seen, strict=True):
                if duplicate:
                    health.duplicates += 1
                    continue
                user = links.user_at(event.identity, offset) if len(links) else None
                if user is not None:
                    # Stitched: counted as the user, in the user's partition. Forwarded
                    # there unless it is this one (where the copy would meet its own id);
                    # a replay forwards it again and that partition drops the copy as a
                    # duplicate.
                    event.identity = user
                    key = user.encode()
                    home = partition_for(key, settings.partitions)
                    if home != p:
                        await stitched.add(settings.by_user_topic, home, key, event.encode())
                        continue
                state.fold(offset, event, now)
                health.processed[label_name(event.name)] += 1
                health.observe_lag(max(0.0, now - event.ts))
                if event.ts > health.watermark:
                    health.watermark = event.ts
            touched.append(p)
            worker.unacked.append((generation, tp, [r.offset for r in records]))
        # Confirmed before this batch returns, so before a checkpoint acks its offsets.
        await stitched.flush()
        changed = {p: store.take_changed(p) for p in touched}
        await asyncio.gather(
            *(publish(p, cells) for p, cells in changed.items() if p not in worker.republish))
        return refused

    async def publish(p: int, cells: dict[Any, Any]) -> None:
        # A partition waiting for a whole republish (maintenance timer) is skipped.
        try:
            await worker.view.publish(p, cells)
            health.redis_ok()
        except Exception as exc:
            health.redis_failed(f"write of partition {p}", exc)
            worker.republish.add(p)

    hooks.handlers[settings.topic] = ingest
    hooks.handlers[settings.by_user_topic] = aggregate
