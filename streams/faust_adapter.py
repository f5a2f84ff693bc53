"""The one module that reaches into Faust's and aiokafka's private attributes.

Everything else in ``streams/`` uses Faust and aiokafka through their public API and
the few functions here, so a Faust or aiokafka upgrade is checked in one place
(``tests/packaging/test_layout.py`` enforces it).

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

**A partition that cannot be read stalls; the worker goes on.** aiokafka decodes a
fetched batch when it is consumed, so a batch it cannot decode (a codec whose library is
missing, a corrupt batch) raises out of ``getmany``, and so does a fetch error it holds
for a partition (no read permission): under Faust that stops the worker, and a restarted
worker meets the same batch again. :class:`PartitionReader` (in the consumer thread)
consumes the fetched records partition by partition instead: the records before the
failure are delivered, the partition stays at the first record it could not read
(nothing is skipped), is fetched again after 1 s, then 2, 4... up to
:data:`STALL_RETRY_MAX`, and resumes by itself once it reads. The other partitions, the
tables and ``/metrics`` go on. :attr:`ConsumerHooks.on_fetch_failed` hears of every
failed attempt (the health metrics); one log line names the partition and the offset,
again only when that changes or the partition moves on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.consumer.fetcher import FetchResult
from aiokafka.errors import ConsumerStoppedError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode import Service

Records = list[tuple[TP, list[Any]]]
# A handler returns the partitions it could not take yet; those are fetched again.
BatchHandler = Callable[[Records], Awaitable[set[TP]]]
EndOffsets = Callable[[Mapping[TP, int]], Awaitable[Mapping[TP, int]]]
#: (topic, partition, offset, error): a fetch of that partition failed at that offset.
FetchFailed = Callable[[str, int, int, BaseException], None]
#: (topic, partition): a stalled partition read past its offset, or is no longer ours.
FetchResumed = Callable[[str, int], None]

#: A stalled partition is fetched again after 1 s, then twice as long each time, up to this.
STALL_RETRY_FIRST = 1.0
STALL_RETRY_MAX = 30.0

log = logging.getLogger("leadline.fetch")


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
    #: Called (in the consumer thread) for every failed fetch of a partition.
    on_fetch_failed: FetchFailed | None = None
    #: Called (in the consumer thread) when a stalled partition moves on or is revoked.
    on_fetch_resumed: FetchResumed | None = None


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


@dataclass
class FetchStall:
    """A partition whose records at ``offset`` could not be read.

    While a retry is not due, it also stands in aiokafka's fetch buffer for the
    partition, where a buffered result keeps the fetch routine from fetching it again;
    the methods are the ones aiokafka calls on what it buffers.
    """

    offset: int
    error: BaseException
    since: float
    delay: float = STALL_RETRY_FIRST
    retry_at: float = 0.0
    failures: int = 1

    def calculate_backoff(self) -> float:
        return 0.0  # never holds back the fetches of the broker's other partitions

    def check_raise(self) -> None:
        raise self.error

    def same_as(self, offset: int, error: BaseException) -> bool:
        return (offset, type(error), str(error)) == (
            self.offset, type(self.error), str(self.error))


def describe(error: BaseException) -> str:
    """``Type: message`` (aiokafka's errors already start with their type)."""
    name, text = type(error).__name__, str(error)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def _take(result: Any, tp: TopicPartition,
          max_records: int | None) -> tuple[list[Any], BaseException | None]:
    """aiokafka's ``FetchResult.getall``, except that an error decoding a batch returns the
    records before it, with the partition's position at the first one not returned."""
    if not result.check_assignment(tp) or not result.has_more():
        return [], None
    out: list[Any] = []
    try:
        for record in result._partition_records:
            out.append(record)
            if max_records is not None and len(out) >= max_records:
                result._update_position()
                return out, None
    except Exception as exc:
        result._update_position()
        result._partition_records = None
        return out, exc
    result._update_position()
    result._partition_records = None
    return out, None


class PartitionReader:
    """aiokafka's ``Fetcher.fetched_records`` (0.14.0), partition by partition: a partition
    whose buffered fetch cannot be read, or for which aiokafka holds a fetch error, stalls
    (:meth:`stall`) and the others are returned. Used by the consumer thread only."""

    def __init__(self, hooks: ConsumerHooks) -> None:
        self.hooks = hooks
        #: Partitions that cannot be read at their position.
        self.stalls: dict[TopicPartition, FetchStall] = {}

    async def fetched_records(self, fetcher: Any, partitions: Any, timeout: float,
                              max_records: int | None) -> dict[TopicPartition, list[Any]]:
        subscriptions = fetcher._subscriptions
        buffered = fetcher._records
        while True:
            if subscriptions.reassignment_in_progress:
                await subscriptions.wait_for_assignment()
            start_time = time.monotonic()
            self.forget_revoked(subscriptions)
            drained: dict[TopicPartition, list[Any]] = {}
            for tp in list(buffered):
                if partitions and tp not in partitions:
                    if not subscriptions.is_assigned(tp):
                        del buffered[tp]
                    continue
                entry = buffered[tp]
                if isinstance(entry, FetchStall):
                    if time.monotonic() >= entry.retry_at:
                        del buffered[tp]  # fetched again, from the stalled offset
                        fetcher._notify(fetcher._wait_consume_future)
                    continue
                if type(entry) is not FetchResult:  # aiokafka's FetchError
                    del buffered[tp]
                    fetcher._notify(fetcher._wait_consume_future)
                    if subscriptions.is_assigned(tp):
                        self.stall(fetcher, tp, entry._error)
                    continue
                records, error = _take(entry, tp, max_records)
                if error is not None:
                    self.stall(fetcher, tp, error)
                else:
                    if not entry.has_more():
                        del buffered[tp]
                        fetcher._notify(fetcher._wait_consume_future)
                    if tp in self.stalls:
                        self.maybe_resumed(fetcher, tp)
                if not records:
                    continue
                drained[tp] = records
                if max_records is not None:
                    max_records -= len(records)
                    if max_records <= 0:
                        break
            if drained or not timeout:
                return drained
            waiter = fetcher._create_fetch_waiter()
            done, pending = await asyncio.wait([waiter], timeout=timeout)
            if not done or fetcher._closed:
                for fut in pending:
                    fut.cancel()
                return {}
            if waiter.done():
                waiter.result()  # aiokafka: raises authorization errors
            timeout = max(0.0, timeout - (time.monotonic() - start_time))

    def stall(self, fetcher: Any, tp: TopicPartition, error: BaseException) -> None:
        """The records of ``tp`` at its position could not be read: hold it there and
        fetch it again later. One log line when a partition stalls, or stalls at another
        offset or with another error; :attr:`ConsumerHooks.on_fetch_failed` each time."""
        offset = position(fetcher, tp)
        if offset is None:
            offset = -1  # awaiting an offset reset: not known yet
        now = time.monotonic()
        stall = self.stalls.get(tp)
        if stall is not None and stall.same_as(offset, error):
            stall.failures += 1
            stall.delay = min(stall.delay * 2, STALL_RETRY_MAX)
        else:
            stall = FetchStall(offset, error, since=now)
            self.stalls[tp] = stall
            log.error(
                "cannot read partition %s[%d] at offset %d: %s. The partition is stalled "
                "there (no record is skipped) and fetched again every %d s at most; the "
                "other partitions go on. See docs/runbook.md (LeadlinePartitionStalled).",
                tp.topic, tp.partition, offset, describe(error), STALL_RETRY_MAX)
        stall.retry_at = now + stall.delay
        fetcher._records[tp] = stall
        if self.hooks.on_fetch_failed is not None:
            self.hooks.on_fetch_failed(tp.topic, tp.partition, offset, error)

    def maybe_resumed(self, fetcher: Any, tp: TopicPartition) -> None:
        """A fetch of stalled ``tp`` was read: it has resumed if it is past its offset
        (a seek back to the committed offset reads what comes before it first)."""
        now_at = position(fetcher, tp)
        stall = self.stalls[tp]
        if now_at is None or now_at <= stall.offset:
            return
        del self.stalls[tp]
        log.info("partition %s[%d] is read again past offset %d (now at %d), after %d "
                 "failed fetches in %.0f s", tp.topic, tp.partition, stall.offset, now_at,
                 stall.failures, time.monotonic() - stall.since)
        self.report_resumed(tp)

    def forget_revoked(self, subscriptions: Any) -> None:
        for tp in [tp for tp in self.stalls if not subscriptions.is_assigned(tp)]:
            stall = self.stalls.pop(tp)
            log.info("partition %s[%d], stalled at offset %d, is no longer assigned to "
                     "this worker", tp.topic, tp.partition, stall.offset)
            self.report_resumed(tp)

    def report_resumed(self, tp: TopicPartition) -> None:
        if self.hooks.on_fetch_resumed is not None:
            self.hooks.on_fetch_resumed(tp.topic, tp.partition)


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the fetch wait of :attr:`ConsumerHooks.fetch_max_wait_ms`,
    and a partition that cannot be read stalled instead of the worker stopped
    (:class:`PartitionReader`).

    Faust fixes how long the broker may hold a fetch open waiting for data at 1,500 ms,
    which every event pays on each of its two topic hops when traffic is light; an idle
    worker sends one empty fetch per wait instead (``docs/performance.md``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reader = PartitionReader(hooks_of(self.transport))

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

    async def _fetch_records(self, consumer: AIOKafkaConsumer, active_partitions: Any,
                             timeout: float | None = None,
                             max_records: int | None = None) -> Any:
        """Faust's, with :meth:`PartitionReader.fetched_records` for aiokafka's."""
        if not self.consumer.flow_active:
            return {}
        fetcher = consumer._fetcher
        if consumer._closed or fetcher._closed:
            raise ConsumerStoppedError()
        with fetcher._subscriptions.fetch_context():
            return await self.reader.fetched_records(fetcher, active_partitions,
                                                     timeout or 0, max_records)


def position(fetcher: Any, tp: TopicPartition) -> int | None:
    """The fetch position of ``tp`` (None if unassigned or awaiting an offset reset)."""
    subscription = fetcher._subscriptions.subscription
    if subscription is None or subscription.assignment is None:
        return None
    if tp not in subscription.assignment.tps:
        return None
    state = subscription.assignment.state_value(tp)
    return cast(int, state.position) if state.has_valid_position else None


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
