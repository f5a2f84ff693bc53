"""Restoring partitions from the changelog in bulk, instead of Faust's per-record recovery.

Faust recovers a table by reading its changelog through the worker's own consumer, one
event at a time into an in-memory copy of the whole table, which the partition store
then decoded a second time (``streams/store.py``). Recovery then took time and a peak of
memory proportional to the state: 86 s and ~350 MiB for a million users.

Here the table's store is :class:`ChangelogStore`, a Faust store that holds nothing
itself. When partitions are assigned, Faust first calls the store's ``on_rebalance``
(``TableManager.on_rebalance``, before the recovery service starts), where
:class:`Restorer` reads each newly assigned changelog partition to its end with a
consumer of its own (whole fetches of up to ``FETCH_BYTES``), straight into the
partition store's restore (:meth:`PartitionStore.restore`: cells decoded once, users,
sessions and links in write batches to the local store). It then reports, as the
store's persisted offset, the last offset it applied, so Faust's recovery reads only
what a zombie previous owner may have written since; those few records come through
``apply_changelog_batch`` into the same restore. The partitions go live in the table's
``on_recover`` callback (``streams/handover.py``), which runs before Faust resumes the
source partitions, so no event is folded into a partition still being restored.

Partitions this worker keeps across a rebalance are live: it wrote everything their
changelog holds, so their persisted offset is the end of the changelog and nothing is
read for them (Faust's memory store re-read every assigned partition at every
rebalance). Unless the changelog ends past this worker's own last write: then another
owner wrote to it while this worker was out of the group, and the partition is
forgotten and restored again.

Standby replicas (``LEADLINE_STANDBY_REPLICAS=1``, Faust's ``table_standby_replicas``):
Faust assigns each worker standby copies of other workers' changelog partitions and
reads them as they are written, in the background, through ``apply_changelog_batch``.
Each is a restore that is never taken live while the other worker owns it; when that
worker dies and the partition is assigned here, the bulk read starts where the standby
copy stands, so a failover reads only the changelog's tail.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores import memory
from faust.types import TP, EventT

from leadline.config.settings import Settings
from leadline.streams.security import aiokafka_security
from leadline.streams.store import PartitionStore
from leadline.streams.topics import true_end_offsets

log = logging.getLogger("leadline.restore")

#: Bytes a fetch may bring per partition (and four times that per fetch).
FETCH_BYTES = 16 << 20

#: How often a long restore logs its progress (s).
PROGRESS_EVERY = 10.0

#: A local snapshot older than this is not used: a compacted changelog keeps tombstones
#: only for a while (Kafka's ``delete.retention.ms``, 24 h by default), so the snapshot
#: could miss the deletion of a record it holds.
SNAPSHOT_MAX_AGE = 12 * 3600.0


class Restorer:
    """Restores newly assigned partitions of ``topic`` (the changelog) into ``store``."""

    def __init__(self, settings: Settings, store: PartitionStore) -> None:
        self.settings = settings
        self.store = store
        #: Per partition, the last changelog offset applied (restored or live).
        self.applied: dict[int, int] = {}

    async def on_assignment(self, topic: str, partitions: set[int],
                            standby: AbstractSet[int] = frozenset()) -> dict[int, int]:
        """Restore the assigned ``partitions`` that are not live to the changelog's end, and
        start a restore of each ``standby`` partition that Faust's standby reading then
        keeps up to date; returns, per partition, the last offset the store holds (-1:
        none)."""
        store = self.store
        store.changelog = topic
        standby = set(standby) - partitions
        store.standby = standby
        store.abandon(set(store.restoring) - partitions - standby)
        store.drop_snapshots(partitions | standby)
        for p in set(self.applied) - partitions - standby - set(store.states):
            del self.applied[p]
        ends = await self._ends(topic, partitions | standby)
        starting = (partitions | standby) - set(store.states) - set(store.restoring)
        marks = {p: mark for p in starting
                 if (mark := store.snapshot_mark(p)) is not None and 0 < mark["offset"] <= ends[p]}
        keys = await self._keys_at(topic, {p: mark["offset"] - 1 for p, mark in marks.items()})
        for p in standby - set(store.states) - set(store.restoring):
            self._start(p, topic, ends[p], keys.get(p))
        ranges: dict[int, tuple[int, int]] = {}
        for p in partitions:
            if p in store.states:
                if ends[p] <= store.written_to(p):
                    self.applied[p] = ends[p] - 1  # it wrote them
                    continue
                # Dropped from the group and given the partition back: another owner
                # wrote to it meanwhile, so what this worker holds is stale.
                log.warning("partition %d: its changelog ends at %d, past this worker's "
                            "last write (%d): restoring it again", p, ends[p],
                            store.written_to(p))
                store.forget({p})
            if p not in store.restoring:
                self._start(p, topic, ends[p], keys.get(p))
            if self.applied[p] + 1 < ends[p]:
                ranges[p] = (self.applied[p] + 1, ends[p])
        if ranges:
            await self._read(topic, ranges)
        return {p: self.applied.get(p, -1) for p in partitions | standby}

    def _start(self, p: int, topic: str, end: int, key: bytes | None) -> None:
        """Start restoring ``p``: from its local snapshot if it has a usable one, else from
        the beginning. Usable: of this changelog, which reaches the snapshot's offset with
        the record it last held there (``key``, read back: not a topic deleted and written
        anew), recent enough that no tombstone it needs can have been compacted away."""
        restoring = self.store.restore(p)
        mark = restoring.snapshot
        if mark is not None and not (
                mark["changelog"] == topic and mark["offset"] <= end
                and (mark["offset"] == 0 or key == mark["key"].encode())
                and time.time() - mark["at"] < SNAPSHOT_MAX_AGE):
            log.info("partition %d: local snapshot not usable (%s at offset %d, changelog "
                     "end %d); restoring from the changelog", p, mark["changelog"],
                     mark["offset"], end)
            self.store.abandon({p})
            restoring, mark = self.store.restore(p), None
        if mark is not None:
            log.info("partition %d: local snapshot of changelog offset %d (%d users); "
                     "reading the changelog from there", p, mark["offset"], mark["counts"]["u"])
        self.applied[p] = restoring.offset = mark["offset"] - 1 if mark else -1

    def apply(self, p: int, offset: int, key: bytes, value: bytes | None) -> bool:
        """One changelog record read by Faust's recovery; False if it was not needed."""
        if offset <= self.applied.get(p, -1) or p not in self.store.restoring:
            return False
        restoring = self.store.restoring[p]
        restoring.apply(key, value)
        self.applied[p] = restoring.offset = offset
        return True

    async def _ends(self, topic: str, partitions: set[int]) -> dict[int, int]:
        if not partitions:
            return {}
        consumer = self._consumer()
        await consumer.start()
        try:
            reported = await consumer.end_offsets(
                [TopicPartition(topic, p) for p in partitions])
        finally:
            await consumer.stop()
        ends = await true_end_offsets(
            self.settings, {TP(tp.topic, tp.partition): end for tp, end in reported.items()})
        return {tp.partition: end for tp, end in ends.items()}

    async def _keys_at(self, topic: str, offsets: Mapping[int, int]) -> dict[int, bytes]:
        """The key of the record at each partition's offset (absent: none there)."""
        if not offsets:
            return {}
        consumer = self._consumer()
        await consumer.start()
        found: dict[int, bytes] = {}
        try:
            tps = {TopicPartition(topic, p): p for p in offsets}
            consumer.assign(list(tps))
            for tp, p in tps.items():
                consumer.seek(tp, offsets[p])
            pending = set(tps)
            deadline = time.monotonic() + 10.0
            while pending and time.monotonic() < deadline:
                for tp, batch in (await consumer.getmany(*pending, timeout_ms=500)).items():
                    p = tps[tp]
                    for record in batch:
                        if record.offset == offsets[p] and record.key is not None:
                            found[p] = record.key
                    if batch and batch[-1].offset >= offsets[p]:
                        pending.discard(tp)
        finally:
            await consumer.stop()
        return found

    async def _read(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> None:
        started = time.monotonic()
        consumer = self._consumer()
        await consumer.start()
        try:
            tps = {TopicPartition(topic, p): p for p in ranges}
            consumer.assign(list(tps))
            for tp, p in tps.items():
                consumer.seek(tp, ranges[p][0])
            pending = set(tps)
            records = 0
            report = started + PROGRESS_EVERY
            while pending:
                fetched = await consumer.getmany(*pending, timeout_ms=1000)
                for tp, batch in fetched.items():
                    p = tps[tp]
                    end = ranges[p][1]
                    restoring = self.store.restoring[p]
                    for record in batch:
                        if record.offset >= end:
                            break
                        if record.key is not None:
                            restoring.apply(record.key, record.value)
                        self.applied[p] = record.offset
                        records += 1
                    restoring.offset = self.applied[p]
                for tp in list(pending):
                    # The position, not the last record: it also passes offsets that hold
                    # no record for a consumer (control records, a compacted tail).
                    if await consumer.position(tp) >= ranges[tps[tp]][1]:
                        pending.discard(tp)
                if time.monotonic() >= report:
                    report += PROGRESS_EVERY
                    log.info("restoring partitions %s: %d changelog records so far (%.0f s)",
                             sorted(ranges), records, time.monotonic() - started)
        finally:
            await consumer.stop()
        log.info("restored partitions %s from the changelog: %d records in %.2f s",
                 sorted(ranges), records, time.monotonic() - started)

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers, enable_auto_commit=False,
            auto_offset_reset="earliest", max_partition_fetch_bytes=FETCH_BYTES,
            fetch_max_bytes=4 * FETCH_BYTES, **aiokafka_security(self.settings))


class ChangelogStore(memory.Store):
    """The ``state`` table's Faust store (``store="leadline://state"``, registered as a
    ``faust.stores`` entry point): it restores through :attr:`restorer` and keeps no
    copy of the table in memory."""

    restorer: Restorer | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._persisted: dict[int, int] = {}

    def persisted_offset(self, tp: TP) -> int | None:
        return self._persisted.get(tp.partition)

    async def on_rebalance(self, assigned: set[TP], revoked: set[TP],
                           newly_assigned: set[TP], generation_id: int = 0) -> None:
        assert self.restorer is not None, "ChangelogStore used without a Restorer"
        topic = self.table.changelog_topic.get_topic_name()
        assignor = self.app.assignor
        actives = {tp.partition for tp in assignor.assigned_actives() if tp.topic == topic}
        standby = {tp.partition for tp in assignor.assigned_standbys() if tp.topic == topic}
        self._persisted = await self.restorer.on_assignment(topic, actives, standby)

    def apply_changelog_batch(self, batch: Iterable[EventT], to_key: Any,
                              to_value: Any) -> None:
        assert self.restorer is not None, "ChangelogStore used without a Restorer"
        for event in batch:
            message = event.message
            if message.key is not None:  # (every record leadline writes has one)
                self.restorer.apply(message.partition, message.offset, message.key,
                                    message.value)
