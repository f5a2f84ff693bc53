"""Background duties of a worker: heal the Redis view, expire, measure lag."""

from __future__ import annotations

import logging
import time

from leadline.streams import allocator
from leadline.streams.context import WorkerContext
from leadline.streams.faust_adapter import BatchConsumer

log = logging.getLogger("leadline.maintenance")


def owned_partitions(worker: WorkerContext) -> set[int]:
    assignment = worker.app.consumer.assignment()
    return {tp.partition for tp in assignment if tp.topic == worker.settings.by_user_topic}


async def republish(worker: WorkerContext, partitions: set[int]) -> None:
    """Write whole partitions to the serving view (after recovery, or Redis lost them)."""
    for p in sorted(partitions):
        state = worker.store.states.get(p)
        if state is None:
            worker.republish.discard(p)
            continue
        try:
            await worker.view.publish(p, state.encoded(), whole=True)
        except Exception as exc:
            worker.health.redis_failed(f"rebuild of partition {p}", exc)
            worker.republish.add(p)
        else:
            worker.health.redis_ok()
            worker.health.view_rebuilds += 1
            worker.republish.discard(p)
            log.info("serving view: partition %s rebuilt from the tables", p)


def register(worker: WorkerContext) -> None:
    app, settings = worker.app, worker.settings

    @app.timer(settings.publish_interval)
    async def heal_view() -> None:
        owned = set(worker.store.states)
        try:
            lost = set(await worker.view.missing(owned))
            worker.health.redis_ok()
        except Exception as exc:
            worker.health.redis_failed("check", exc)
            return
        if lost:
            log.warning("serving view lost partitions %s; rebuilding from the tables",
                        sorted(lost))
        await republish(worker, (lost | worker.republish) & owned)

    @app.timer(60.0)
    async def expire() -> None:
        """Drop what every window has left behind. The tombstones are only queued: the
        next checkpoint sends them, behind any records a failed checkpoint put back, so
        the changelog has one writer and nothing is acked past a record not sent."""
        async with worker.folding:  # tombstones in order with the aggregate batches
            now = time.time()
            gone = {p: worker.store.expire(p, now) for p in list(worker.store.states)}
        for p, cells in gone.items():
            if cells and p not in worker.republish:
                try:
                    await worker.view.publish(p, {}, cells)
                except Exception as exc:
                    worker.health.redis_failed(f"expiry of partition {p}", exc)

    @app.timer(5.0)
    async def measure() -> None:
        """Consumer lag and what memory holds, for the pipeline-health gauges.

        First the heap's free pages go back to the OS (``allocator.py``; 1-25 ms): the
        dedupe map's merges and the fetches free megabytes between two calls, and the
        RSS is then what the state gauges account for, not what happened to be free.
        """
        allocator.trim()
        consumer = app.consumer
        if not isinstance(consumer, BatchConsumer):
            raise TypeError(f"expected the batch consumer, not {type(consumer).__name__}")
        lag = {}
        for tp in consumer.assignment():
            if tp.topic not in (settings.topic, settings.by_user_topic):
                continue
            high = consumer.highwater(tp)
            position = consumer.read_position(tp)
            if high is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - (position or 0))
        worker.health.consumer_lag = lag
        store = worker.store
        worker.health.state_entries = {
            "event_ids": sum(d.held for d in store.dedupers.values()),
            "users": sum(len(s.users) for s in store.states.values()),
            "sessions": sum(len(s.sessions) for s in store.states.values()),
            "links": sum(len(links) for links in store.links.values()),
            "cells": sum(len(s.cells) for s in store.states.values()),
            "view_cells": worker.view.cached(),
        }
        sizes = [s.nbytes() for s in store.states.values()]
        worker.health.state_bytes = {
            "event_ids": sum(d.nbytes() for d in store.dedupers.values()),
            "users": sum(size["users"] for size in sizes),
            "cells": sum(size["cells"] for size in sizes),
            "view_cells": worker.view.nbytes(),
        }
        if store.local is not None:
            worker.health.state_bytes["local_store"] = store.local.memory()
