"""Background duties of a worker: recover states, heal the Redis view, expire, measure lag."""

from __future__ import annotations

import gc
import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streams.app import Worker

log = logging.getLogger("leadline.maintenance")


def owned_partitions(worker: Worker) -> set[int]:
    assignment = worker.app.consumer.assignment()
    return {tp.partition for tp in assignment if tp.topic == worker.settings.by_user_topic}


async def republish(worker: Worker, partitions: set[int]) -> None:
    """Write whole partitions to the serving view (after recovery, or Redis lost them)."""
    for p in sorted(partitions):
        state = worker.store.states.get(p)
        if state is None:
            worker.republish.discard(p)
            continue
        try:
            await worker.view.publish(p, state.encoded(), whole=True)
        except Exception as exc:
            worker.health.redis_up = 0
            worker.health.redis_errors += 1
            worker.republish.add(p)
            log.warning("serving view rebuild of partition %s failed: %s", p, exc)
        else:
            worker.health.redis_up = 1
            worker.health.view_rebuilds += 1
            worker.republish.discard(p)
            log.info("serving view: partition %s rebuilt from the tables", p)


def register(worker: Worker, table: Any) -> None:
    app, settings = worker.app, worker.settings

    @table.on_recover
    async def on_recovered() -> None:
        owned = owned_partitions(worker)
        loaded = worker.store.rebuild(owned)
        gc.freeze()  # recovered state is long-lived: keep it out of full collections
        worker.republish |= loaded
        await republish(worker, set(worker.republish))
        worker.ready = True

    @app.timer(settings.publish_interval)
    async def heal_view() -> None:
        owned = set(worker.store.states)
        try:
            lost = set(await worker.view.missing(owned))
            worker.health.redis_up = 1
        except Exception as exc:
            worker.health.redis_up = 0
            worker.health.redis_errors += 1
            log.warning("serving view check failed: %s", exc)
            return
        if lost:
            log.warning("serving view lost partitions %s; rebuilding from the tables",
                        sorted(lost))
        await republish(worker, (lost | worker.republish) & owned)

    @app.timer(60.0)
    async def expire() -> None:
        now = time.time()
        for p in list(worker.store.states):
            gone = worker.store.expire(p, now)
            if gone and p not in worker.republish:
                try:
                    await worker.view.publish(p, {}, gone)
                except Exception as exc:
                    log.warning("serving view expiry of partition %s failed: %s", p, exc)

    @app.timer(5.0)
    async def consumer_lag() -> None:
        consumer = app.consumer
        lag = {}
        for tp in consumer.assignment():
            if tp.topic not in (settings.topic, settings.by_user_topic):
                continue
            high = consumer.highwater(tp)
            position = consumer._read_offset.get(tp)  # type: ignore[attr-defined]
            if high is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - (position or 0))
        worker.health.consumer_lag = lag
