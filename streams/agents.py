"""The two batch agents: ``ingest`` (validate, re-key) and ``aggregate`` (dedupe, fold)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from events.model import Event
from events.rejection import Rejection, dlq_envelope

if TYPE_CHECKING:
    from streams.app import Worker

log = logging.getLogger("leadline.agents")


def register(worker: Worker, table: Any) -> None:
    app, settings, health = worker.app, worker.settings, worker.health
    decoder = worker.decoder

    @app.agent(worker.source, name="ingest")
    async def ingest(stream: Any) -> None:
        # Straight to the producer, not through Faust's one-message-at-a-time send
        # buffer (the bottleneck measured in DESIGN.md); the batch is acked only after
        # every send is confirmed, so a crash replays it rather than losing it.
        producer = app.producer
        dlq_topic, user_topic = settings.dlq_topic, settings.by_user_topic
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_seconds):
            now = time.time()
            health.received += len(batch)
            pending = []
            for event in batch:
                msg = event.message
                result = decoder.decode(msg.value, now)
                if isinstance(result, Rejection):
                    health.invalid[result.reason.value] += 1
                    log.debug("rejected %s/%s@%s: %s", msg.topic, msg.partition, msg.offset,
                              result.error)
                    envelope = dlq_envelope(
                        msg.value, msg.key, result, topic=msg.topic, partition=msg.partition,
                        offset=msg.offset, rejected_at=now)
                    pending.append(await producer.send(dlq_topic, msg.key, envelope,
                                                       None, None, None))
                else:
                    pending.append(await producer.send(user_topic, result.identity.encode(),
                                                       result.encode(), None, None, None))
            if pending:
                await asyncio.gather(*pending)

    @app.agent(worker.by_user, name="aggregate")
    async def aggregate(stream: Any) -> None:
        store = worker.store
        label_name = None
        async for batch in stream.take_events(settings.batch_max, within=settings.batch_seconds):
            now = time.time()
            touched: dict[int, int] = defaultdict(int)
            for item in batch:
                msg = item.message
                p, offset = msg.partition, msg.offset
                event = Event.decode(msg.value)
                state = store.state(p)
                if label_name is None:
                    label_name = state.labels.name
                if store.dedupers[p].is_duplicate(event.event_id, offset, now):
                    health.duplicates += 1
                    continue
                state.fold(offset, event, now)
                touched[p] += 1
                health.processed[label_name(event.name)] += 1
                health.observe_lag(max(0.0, now - event.ts))
                if event.ts > health.watermark:
                    health.watermark = event.ts
            for p in touched:
                changed = store.flush(p, now)
                if p in worker.republish:
                    continue  # the maintenance timer republishes the whole partition
                try:
                    await worker.view.publish(p, changed)
                    health.redis_up = 1
                except Exception as exc:
                    health.redis_up = 0
                    health.redis_errors += 1
                    worker.republish.add(p)
                    log.warning("serving view write failed (partition %s): %s", p, exc)
