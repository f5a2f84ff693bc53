"""Is the broker answering? ``leadline_broker_up`` and one log line per change.

Faust and aiokafka reconnect by themselves after a broker outage, but say little while
they wait: a stalled broker (paused, partitioned away) keeps its TCP connections open
and simply stops answering. A cheap ``ApiVersions`` request on the producer's client,
with a short deadline, tells an SRE which side is stuck.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka.protocol.admin import ApiVersionRequest

from leadline.streams.context import WorkerContext
from leadline.streams.faust_adapter import kafka_producer

log = logging.getLogger("leadline.broker")


async def probe(worker: WorkerContext, timeout: float) -> bool:
    """One round trip to a broker of the cluster within ``timeout`` seconds."""
    try:
        client = kafka_producer(worker.app).client
        node = client.get_random_node()
        if node is None:
            return False
        await asyncio.wait_for(client.send(node, ApiVersionRequest()), timeout)
    except Exception:  # not started yet, refused, timed out: all mean "not answering"
        return False
    return True


def register(worker: WorkerContext, interval: float) -> None:
    """Probe every ``interval`` seconds; two misses in a row count as down (no flapping
    on one slow answer from a busy broker)."""
    app, health = worker.app, worker.health
    misses = [0]
    down_since: list[float] = []

    @app.timer(interval)
    async def broker_probe() -> None:
        up = await probe(worker, timeout=interval * 0.8)
        misses[0] = 0 if up else misses[0] + 1
        if up:
            health.broker_up = 1
            if down_since:
                log.warning("Kafka broker answering again after %.1fs",
                            time.monotonic() - down_since.pop())
        elif misses[0] >= 2:
            health.broker_up = 0
            if not down_since:
                down_since.append(time.monotonic() - interval)
                log.warning("Kafka broker not answering (%s); consuming resumes when it does",
                            worker.settings.broker_url)
