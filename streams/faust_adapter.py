"""The one module that reaches into Faust's and aiokafka's private attributes.

Everything else in ``streams/`` uses Faust and aiokafka through their public API and
the few functions here, so a Faust or aiokafka upgrade is checked in one place
(``tests/streams/test_layout.py`` enforces it).

**Whole fetches to batch handlers.** Faust delivers every message through
``wait_first(callback(message), ...)`` and a stream queue (two tasks and an Event
object per message), the ceiling of an agent's throughput (``docs/performance.md``).
For the topics that have a handler in :class:`ConsumerHooks`, :class:`BatchConsumer`
instead hands each fetch's records to the handler in one call, then acks all their
offsets at once, through the same bookkeeping Faust's own ``Consumer.ack`` uses, so
Faust's commits, rebalances, recovery and tables work unchanged. Every other topic
(changelogs, the assignor's) keeps Faust's normal per-message path.

A handler is awaited inside the fetch loop, so a slow handler applies back-pressure to
fetching. Offsets are acked when the handler returns, or, for a topic in
:attr:`ConsumerHooks.self_acking`, when the handler acks them itself through
:meth:`BatchConsumer.ack_offsets`. :attr:`ConsumerHooks.before_commit` runs before every
commit (the table checkpoint, ``streams/checkpoint.py``). A cancelled handler
(rebalance, shutdown) leaves its records unacked: whoever owns the partition next
fetches them again, which the handlers tolerate by design (offset stamps and the dedupe
map make re-processing exact).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode import Service

Records = list[tuple[TP, list[Any]]]
# A handler returns the partitions it could not take yet; those are fetched again.
BatchHandler = Callable[[Records], Awaitable[set[TP]]]
EndOffsets = Callable[[Mapping[TP, int]], Awaitable[Mapping[TP, int]]]


@dataclass
class ConsumerHooks:
    """What the worker plugs into :class:`BatchConsumer`, given to :class:`BatchTransport`."""

    #: Topic -> the handler that receives its whole fetches.
    handlers: dict[str, BatchHandler] = field(default_factory=dict)
    #: Topics whose handler acks offsets itself (:meth:`BatchConsumer.ack_offsets`).
    self_acking: set[str] = field(default_factory=set)
    #: Awaited before every offset commit; a failure acks nothing new and is retried.
    before_commit: Callable[[], Awaitable[None]] | None = None
    #: Corrects the end offsets a broker reports (``streams.topics.true_end_offsets``).
    end_offsets: EndOffsets | None = None
    #: How long the broker may hold a fetch open waiting for data (ms); Faust's: 1,500.
    fetch_max_wait_ms: int | None = None


def kafka_producer(app: faust.App) -> AIOKafkaProducer:
    """The aiokafka producer under Faust's producer (started with the app)."""
    return cast(AIOKafkaProducer, app.producer._ensure_producer())  # type: ignore[attr-defined]


def recovery_generation(app: faust.App) -> int:
    """The consumer generation the table recovery last started for."""
    return cast(int, app.tables.recovery._generation_id)  # type: ignore[attr-defined]


def hooks_of(transport: Any) -> ConsumerHooks:
    if not isinstance(transport, BatchTransport):
        raise TypeError(f"the consumer needs a BatchTransport, not {type(transport).__name__}")
    return transport.hooks


async def seek_to_committed(consumer: AIOKafkaConsumer, topics: Collection[str],
                            reset: str) -> dict[TopicPartition, int | None]:
    """aiokafka's ``seek_to_committed``, except that a partition of ``topics`` with no
    committed offset is also moved: to where ``reset`` says a fresh group starts.

    Faust drops records it has fetched but may not deliver (flow stopped, partition not
    active, generation changed) and relies on this seek to fetch them again. aiokafka
    only seeks partitions whose committed offset is > 0 and leaves the others where
    prefetching left them, past the dropped records. At the end of a changelog recovery
    Faust pauses the changelog partitions before it resumes the stream ones, and a fetch
    in flight during that instant (an empty set of active partitions means "all" to
    aiokafka) drains up to ``max_poll_records`` of a source or by-user partition that
    ``_drain_messages`` then drops as not active (seen after most recoveries). If no
    worker had committed that partition yet (the previous one was killed within its
    first commit interval), those records were never read again: source records never
    re-keyed, by-user records never folded, and the metrics short for good.
    """
    committed: dict[TopicPartition, int | None] = await consumer.seek_to_committed()
    mine = {tp: offset for tp, offset in committed.items() if tp.topic in topics}
    # A committed 0 means "from the start", whatever the reset policy says.
    to_start = [tp for tp, offset in mine.items()
                if offset == 0 or (offset is None and reset != "latest")]
    to_end = [tp for tp, offset in mine.items() if offset is None and reset == "latest"]
    if to_start:
        await consumer.seek_to_beginning(*to_start)
    if to_end:
        await consumer.seek_to_end(*to_end)
    return committed


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the fetch wait of :attr:`ConsumerHooks.fetch_max_wait_ms`.

    Faust fixes how long the broker may hold a fetch open waiting for data at 1,500 ms,
    which every event pays on each of its two topic hops when traffic is light; an idle
    worker sends one empty fetch per wait instead (``docs/performance.md``).
    """

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = hooks_of(transport).fetch_max_wait_ms
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = wait_ms  # read when its fetcher starts
        return consumer

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Faust's ``perform_seek``: see :func:`seek_to_committed`."""
        topics = set(hooks_of(self.transport).handlers)
        reset = self.app.conf.consumer_auto_offset_reset
        return cast(Mapping[TP, int], await self.call_thread(
            seek_to_committed, self._ensure_consumer(), topics, reset))


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, with whole-fetch delivery for topics that have a handler."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    @property
    def hooks(self) -> ConsumerHooks:
        return hooks_of(self.transport)

    def read_position(self, tp: TP) -> int | None:
        """The next offset this consumer will hand out for ``tp`` (None before the first)."""
        return cast(int | None, self._read_offset.get(tp))

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """End offsets, corrected where the broker reports them short (Faust sizes
        changelog recovery with these; see ``streams.topics.true_end_offsets``)."""
        reported = await super().highwaters(*partitions)
        correct = self.hooks.end_offsets
        return reported if correct is None else await correct(reported)

    #: Seeks so far; a batch handled across a seek must not overwrite its read offsets.
    _seeks = 0

    async def perform_seek(self) -> None:
        self._seeks += 1
        await super().perform_seek()

    async def seek(self, partition: TP, offset: int) -> None:
        self._seeks += 1
        await super().seek(partition, offset)

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        """Faust's commit, after :attr:`ConsumerHooks.before_commit` (the table checkpoint).

        Faust commits on its timer, on revocation and on stop. A failed checkpoint acks
        nothing, so what the commit makes durable stays covered by the changelog.
        """
        before = self.hooks.before_commit
        if before is not None:
            try:
                await before()
            except Exception as exc:
                self.log.warning("checkpoint before commit failed (retried at the next "
                                 "commit): %r", exc)
        # This commit covers what the checkpoint acked: it must not count toward the
        # next "commit every N acks" of the fetch loop (an extra checkpoint at once).
        self._n_acked = 0
        return await super().commit(topics, start_new_transaction=start_new_transaction)

    def ack_offsets(self, tp: TP, offsets: list[int]) -> None:
        """Ack many offsets of one partition (same bookkeeping as ``Consumer.ack``)."""
        with ack_lock:
            committed = self._committed_offset[tp]
            index = self._acked_index[tp]
            acked = self._acked[tp]
            n = 0
            for offset in offsets:
                if (committed is None or offset >= committed) and offset not in index:
                    index.add(offset)
                    acked.append(offset)
                    n += 1
            self._n_acked += n

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - via e2e tests
        callback = self.callback
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        read_offset = self._read_offset
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                records, active = await self._wait_next_records(1.0)
                await asyncio.sleep(0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    # As Faust's own getmany: mid-rebalance a partition may already be
                    # gone (IllegalStateError); the next assignment seeks again.
                    try:
                        await self.perform_seek()
                    except Exception as exc:
                        self.log.warning("seek while flow is stopped failed: %r", exc)
                    continue
                generation = self.app.consumer_generation_id
                hooks = self.hooks
                handlers = hooks.handlers
                batches: dict[str, Records] = {}
                for tp, recs in records.items():
                    if active is not None and tp not in active and tp not in (
                        self._buffered_partitions
                    ):
                        continue
                    r_offset = read_offset[tp]
                    fresh = [r for r in recs if r_offset is None or r.offset >= r_offset]
                    if not fresh:
                        continue
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    if tp.topic in handlers:
                        batches.setdefault(tp.topic, []).append((tp, fresh))
                        continue
                    for record in fresh:  # Faust's own per-message path
                        if not self.flow_active or generation != self.app.consumer_generation_id:
                            break
                        await self.wait_first(callback(self._to_message(tp, record)),
                                              self.suspend_flow.wait())
                        read_offset[tp] = record.offset
                for topic, items in batches.items():
                    if not self.flow_active or generation != self.app.consumer_generation_id:
                        break  # rebalancing: leave these records to the next owner
                    seeks = self._seeks
                    refused = await handlers[topic](items)
                    # Faust's recovery may seek to the committed offsets while a handler
                    # runs (records fetched before the seek): the read offsets the seek
                    # set must stand, or the records it fetches again are not fresh.
                    sought = self._seeks != seeks
                    acks = topic not in hooks.self_acking
                    for tp, recs in items:
                        if tp in refused:
                            await self.seek(tp, recs[0].offset)
                            continue
                        if acks:
                            self.ack_offsets(tp, [r.offset for r in recs])
                        if not sought:
                            read_offset[tp] = recs[-1].offset + 1
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport, building a :class:`BatchConsumer` that calls ``hooks``."""

    Consumer = BatchConsumer

    def __init__(self, url: Any, app: faust.App, hooks: ConsumerHooks, **kwargs: Any) -> None:
        super().__init__(url, app, **kwargs)
        self.hooks = hooks
