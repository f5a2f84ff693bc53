"""What the worker's Kafka consumer is built with (``streams/faust_adapter.py``)."""

from __future__ import annotations

import asyncio

from leadline.config.definitions import load_definitions
from leadline.config.settings import load_settings
from leadline.streams.app import create_app
from leadline.streams.faust_adapter import BatchConsumer, BatchConsumerThread


def test_the_fetch_wait_is_batch_seconds_not_fausts_fixed_1500_ms() -> None:
    async def build() -> int:
        worker = create_app(load_settings(batch_seconds=0.25), load_definitions())
        consumer = worker.app.consumer
        assert isinstance(consumer, BatchConsumer)
        thread = consumer._thread
        assert isinstance(thread, BatchConsumerThread)
        client = thread._create_worker_consumer(worker.app.transport)
        try:
            return int(client._fetch_max_wait_ms)
        finally:
            await client.stop()

    assert asyncio.run(build()) == 250
