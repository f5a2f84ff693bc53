"""``leadline demo-traffic``: send the simulator's traffic to the broker at a paced rate.

:func:`run_traffic` first sends the generator's history (:meth:`TrafficGenerator.backfill`,
30 days by default, as fast as the broker takes it, in whole batches per partition), then
its live messages with aiokafka at about ``rate`` events/s times the time-of-day curve
(:func:`leadline.simulator.traffic.daily_factor`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass
from typing import Any

from leadline.config.definitions import DefinitionsError, load_definitions
from leadline.config.settings import Settings
from leadline.simulator.traffic import BACKFILL_DAYS, TrafficGenerator, daily_factor

TICK = 0.1
#: Backfilled messages in flight before waiting for the broker's acknowledgements.
BACKFILL_CHUNK = 5000


def _say(message: str) -> None:
    print(f"leadline demo-traffic: {message}", file=sys.stderr, flush=True)


@dataclass(slots=True)
class Backfill:
    """How much history to send before the live traffic, and how it went."""

    days: int = BACKFILL_DAYS
    events: int = 0
    seconds: float = 0.0
    done: bool = False

    def summary(self) -> str:
        if not self.days:
            return "no history (backfill off)"
        what = f"{self.days} days of history: {self.events:,} events in {self.seconds:.1f}s"
        return what if self.done else f"sending {what} so far"


async def send_backfill(producer: Any, topic: str, generator: TrafficGenerator,
                        backfill: Backfill, stop: asyncio.Event | None = None,
                        quiet: bool = False) -> bool:
    """Send ``backfill.days`` days of history, ending now, in time order. False if
    ``stop`` was set meanwhile.

    The messages go in whole batches, one per partition (the one aiokafka's default
    partitioner picks for the key, as :meth:`send` would), a few times faster than one
    ``send`` each; a partition's batches are delivered in order.
    """
    from aiokafka.partitioner import DefaultPartitioner

    started = time.perf_counter()
    last_report = started
    partitions = sorted(await producer.partitions_for(topic))
    partitioner = DefaultPartitioner()
    partition_of: dict[bytes, int] = {}  # (murmur2 in pure Python: once per key)
    batches: dict[int, Any] = {}
    futures: list[asyncio.Future[Any]] = []
    pending = 0

    async def flush() -> None:
        nonlocal pending
        for partition, batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        batches.clear()
        await asyncio.gather(*futures)
        futures.clear()
        backfill.events += pending
        pending = 0

    try:
        for key, value in generator.backfill(time.time(), backfill.days):
            partition = partition_of.get(key)
            if partition is None:
                partition = partition_of[key] = partitioner(key, partitions, partitions)
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:  # full
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            pending += 1
            if pending >= BACKFILL_CHUNK:
                await flush()
                backfill.seconds = time.perf_counter() - started
                if stop is not None and stop.is_set():
                    return False
                if not quiet and time.perf_counter() - last_report >= 5.0:
                    last_report = time.perf_counter()
                    _say(backfill.summary())
        await flush()
    finally:
        backfill.seconds = time.perf_counter() - started
    backfill.done = True
    return True


async def run_traffic(settings: Settings, rate: float, seed: int, duration: float | None = None,
                      stop: asyncio.Event | None = None, *, quiet: bool = False,
                      generator: TrafficGenerator | None = None,
                      backfill: Backfill | None = None) -> int:
    """Publish ``backfill.days`` days of history (default 30; 0: none), then live traffic,
    to ``settings.topic`` until ``stop`` or ``duration`` (of live traffic).

    Returns 0 after a clean stop (also when cancelled, e.g. by Ctrl-C), 2 for bad
    definitions, 3 if the broker cannot be reached, 1 if sending fails later.
    ``generator`` and ``backfill`` let a caller watch :attr:`TrafficGenerator.stats` and
    the backfill's progress.
    """
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    if backfill is None:
        backfill = Backfill()

    if generator is None:
        try:
            definitions = load_definitions(settings.definitions)
        except DefinitionsError as exc:
            _say(str(exc))
            return 2
        generator = TrafficGenerator(seed, definitions)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=20,
                                max_request_size=2 * 1024 * 1024,
                                max_batch_size=256 * 1024)
    loop = asyncio.get_running_loop()
    try:
        try:
            await asyncio.wait_for(producer.start(), 15)
        except (KafkaError, OSError, TimeoutError) as exc:
            _say(f"cannot reach the Kafka broker at {','.join(settings.bootstrap_servers)}: "
                 f"{exc or type(exc).__name__}")
            return 3
        if backfill.days > 0:
            if not quiet:
                _say(f"sending {backfill.days} days of history first (--backfill-days 0: "
                     f"none)")
            if not await send_backfill(producer, settings.topic, generator, backfill, stop,
                                       quiet):
                return 0
            if not quiet:
                _say(backfill.summary())
        if not quiet:
            _say(f"sending ~{rate:g} events/s (x{daily_factor(time.time()):.2f} time of day) "
                 f"to {settings.topic} on {','.join(settings.bootstrap_servers)}; Ctrl-C stops")
        started = last = last_report = loop.time()
        carry = 0.0
        while True:
            if stop is not None and stop.is_set():
                break
            if duration is not None and loop.time() - started >= duration:
                break
            if stop is not None:
                try:
                    await asyncio.wait_for(stop.wait(), TICK)
                    break
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(TICK)
            t = loop.time()
            now = time.time()
            carry += rate * daily_factor(now) * min(t - last, 1.0)
            last = t
            n = int(carry)
            carry -= n
            futures = [await producer.send(settings.topic, value=value, key=key)
                       for key, value in generator.batch(now, n)]
            if futures:
                await asyncio.gather(*futures)
            if not quiet and t - last_report >= 10.0:
                last_report = t
                _say(f"{generator.stats['sent']:,} events sent, "
                     f"{generator.population:,} users")
        if not quiet:
            _say(f"stopped after {generator.stats['sent']:,} events")
        return 0
    except asyncio.CancelledError:
        return 0
    except KafkaError as exc:
        _say(f"sending failed: {exc}")
        return 1
    finally:
        with contextlib.suppress(KafkaError, OSError, TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(producer.stop(), 5)
