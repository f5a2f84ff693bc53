"""Restorer against the real broker: a changelog read in bulk equals the records applied
one by one, live partitions are not read, Faust's tail reaches only restores.

The changelog is written as the worker writes it (``send_changelog``: several producer
batches per partition, tombstones of expired cells, ids and users among them), so the
embedded broker's short end offsets (``tests/faults/test_embedded_broker.py``) are met
too: a restore that stopped at the reported end would miss the last batch's records.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from leadline.config.definitions import load_definitions
from leadline.config.settings import Settings, load_settings
from leadline.embedded.services import Service
from leadline.events.model import Event
from leadline.state.local import LocalStore
from leadline.streams.publish import partition_for, send_changelog
from leadline.streams.restore import Restorer
from leadline.streams.store import PartitionStore
from tests.support.fold import scrape

D = load_definitions()
NOW = time.time()
PARTITIONS = 4
Records = list[tuple[int, bytes, bytes | None]]


def _events(n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    names = ["signup", "activation", "page_view", "product_viewed", "purchase",
             "subscription_started"]
    out = []
    for i in range(n):
        name = rng.choice(names)
        props = {"amount": 12.5, "currency": "USD"} if name == "purchase" else None
        if name == "subscription_started":
            props = {"plan": "pro", "mrr": 20.0, "currency": "USD"}
        out.append(Event(f"e{seed}-{i}", f"u{rng.randrange(300)}", NOW - rng.uniform(0, 40 * 3600),
                         name, rng.choice(["web", "ios"]), props=props,
                         session_id=f"s{rng.randrange(50)}"))
    return out


def _changelog(store: PartitionStore, seeds: list[int]) -> Records:
    """What a worker folding these events writes: a checkpoint per seed, then expiry."""
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    records: Records = []
    for seed in seeds:
        for ev in _events(600, seed):
            p = partition_for(ev.identity.encode(), PARTITIONS)
            if not store.dedupers[p].is_duplicate(ev.event_id, offsets[p], NOW):
                store.states[p].fold(offsets[p], ev, NOW)
            offsets[p] += 1
        for p in store.states:
            store.take_changed(p)
        records += store.checkpoint(NOW)
    for p in store.states:
        store.expire(p, NOW + 2 * 3600)  # the 5m and 1h cells of the first hours go
    records += store.checkpoint(NOW)
    assert any(value is None for _, _, value in records)
    return records


async def _produce(bootstrap: str, topic: str, records: Records) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=16384)
    await producer.start()
    try:
        for start in range(0, len(records), 500):  # many batches, as checkpoints write them
            await send_changelog(producer, topic, records[start:start + 500])
    finally:
        await producer.stop()


NewStore = Callable[[str], PartitionStore]


@pytest.fixture
def new_store(tmp_path: Path) -> Iterator[NewStore]:
    """``new_store(name)``: a partition store with its own local store, closed at the end."""
    opened: list[LocalStore] = []

    def new(name: str) -> PartitionStore:
        opened.append(LocalStore(tmp_path / name, 16 << 20))
        return PartitionStore(D, opened[-1], ids=tmp_path / f"{name}.ids")

    yield new
    for local in opened:
        local.close()


def _settings(broker: Service) -> Settings:
    return load_settings(broker=f"kafka://127.0.0.1:{broker.port}")


def _written(broker: Service, new_store: NewStore, seeds: list[int]
             ) -> tuple[PartitionStore, Records, str]:
    """A store that folded the seeds' events, the changelog it wrote, and the new topic
    that holds it."""
    source = new_store("source")
    source.rebuild(set(range(PARTITIONS)))
    records = _changelog(source, seeds)
    topic = f"changelog-{uuid.uuid4().hex[:8]}"
    asyncio.run(_produce(f"127.0.0.1:{broker.port}", topic, records))
    return source, records, topic


def _by_hand(new_store: NewStore, records: Records, partitions: set[int]) -> PartitionStore:
    """A store given ``partitions``' changelog records one by one, then taken live."""
    store = new_store("by-hand")
    for p, key, value in records:
        if p in partitions:
            store.restore(p).apply(key, value)
    store.rebuild(partitions)
    return store


def _same(a: PartitionStore, b: PartitionStore, partitions: set[int]) -> None:
    assert set(a.states) == set(b.states) == partitions
    assert scrape([a.states[p] for p in partitions]) == scrape([b.states[p] for p in partitions])
    for p in partitions:
        assert dict(a.states[p].users) == dict(b.states[p].users)
        assert dict(a.states[p].sessions) == dict(b.states[p].sessions)
        assert a._chunk_keys[p] == b._chunk_keys[p]


def test_a_bulk_restore_equals_the_changelog_applied_record_by_record(
        broker: Service, new_store: NewStore) -> None:
    _, records, topic = _written(broker, new_store, [1, 2, 3])

    by_hand = _by_hand(new_store, records, {0, 1, 2})

    bulk = new_store("bulk")
    restorer = Restorer(_settings(broker), bulk)
    applied = asyncio.run(restorer.on_assignment(topic, {0, 1, 2}))
    counts = {p: sum(1 for q, _, _ in records if q == p) for p in range(PARTITIONS)}
    assert applied == {p: counts[p] - 1 for p in (0, 1, 2)}  # each read to its true end
    assert set(bulk.restoring) == {0, 1, 2} and not bulk.states  # not live before rebuild
    bulk.rebuild({0, 1, 2})
    _same(bulk, by_hand, {0, 1, 2})
    assert scrape([bulk.states[p] for p in (0, 1, 2)]) != {}


def test_live_partitions_are_not_read_and_faust_s_tail_reaches_only_restores(
        broker: Service, new_store: NewStore) -> None:
    _, first, topic = _written(broker, new_store, [4])
    ends = {p: sum(1 for q, _, _ in first if q == p) for p in range(PARTITIONS)}

    store = new_store("worker")
    restorer = Restorer(_settings(broker), store)
    asyncio.run(restorer.on_assignment(topic, {0}))
    store.rebuild({0})                                     # 0 is live: this worker's
    live = scrape([store.states[0]])

    # A rebalance: 0 kept, 1 new. Nothing of 0 is read again, 1 is read to its end.
    applied = asyncio.run(restorer.on_assignment(topic, {0, 1}))
    assert applied == {0: ends[0] - 1, 1: ends[1] - 1}
    assert set(store.restoring) == {1}
    assert scrape([store.states[0]]) == live

    # Faust's recovery then reads from the persisted offset: the record at it again
    # (already applied), then what a zombie previous owner wrote since.
    key, value = next((k, v) for q, k, v in first if q == 1 and v is not None)
    assert not restorer.apply(1, ends[1] - 1, key, value)   # already applied
    assert restorer.apply(1, ends[1], key, None)            # a tombstone written since
    assert not restorer.apply(0, ends[0], key, None)        # live: this worker wrote it
    assert restorer.applied == {0: ends[0] - 1, 1: ends[1]}


def test_a_restore_superseded_by_a_rebalance_goes_on_from_where_it_was(
        broker: Service, new_store: NewStore) -> None:
    source, first, topic = _written(broker, new_store, [5])
    bootstrap = f"127.0.0.1:{broker.port}"

    store = new_store("worker")
    restorer = Restorer(_settings(broker), store)
    asyncio.run(restorer.on_assignment(topic, {2, 3}))     # then a newer rebalance
    later = _changelog(source, [6])                        # the other owner went on
    asyncio.run(_append(bootstrap, topic, later))
    applied = asyncio.run(restorer.on_assignment(topic, {2}))
    assert set(store.restoring) == {2}                     # 3 went elsewhere: dropped
    assert applied[2] == sum(1 for q, _, _ in first + later if q == 2) - 1
    store.rebuild({2})

    _same(store, _by_hand(new_store, first + later, {2}), {2})


async def _append(bootstrap: str, topic: str, records: Records) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await send_changelog(producer, topic, records)
    finally:
        await producer.stop()


def test_a_local_snapshot_of_a_changelog_written_anew_is_not_used(
        broker: Service, new_store: NewStore) -> None:
    """Same topic name and long enough, but deleted and written anew: the record the
    snapshot last held is not at its place, so the restore starts from the beginning."""
    _, _, topic = _written(broker, new_store, [7])
    bootstrap = f"127.0.0.1:{broker.port}"
    worker = new_store("worker")
    asyncio.run(Restorer(_settings(broker), worker).on_assignment(topic, {0}))
    worker.rebuild({0})                                    # its snapshot: the first log
    assert worker.local is not None
    worker.local.close()

    asyncio.run(_delete(bootstrap, topic))
    other = new_store("other")
    other.rebuild(set(range(PARTITIONS)))
    anew = _changelog(other, [8, 9, 10])                   # longer than the first
    asyncio.run(_produce(bootstrap, topic, anew))
    again = PartitionStore(D, worker.local, ids=worker.ids)
    again.open()
    assert again.snapshot_mark(0) is not None
    asyncio.run(Restorer(_settings(broker), again).on_assignment(topic, {0}))
    assert again.restoring[0].snapshot is None             # not used
    again.rebuild({0})
    _same(again, _by_hand(new_store, anew, {0}), {0})


async def _delete(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


def test_a_live_partition_another_worker_wrote_to_is_restored_again(
        broker: Service, new_store: NewStore) -> None:
    """A worker dropped from the group (a long pause) and given its partition back still
    holds it live, but another owner wrote to its changelog meanwhile: the changelog now
    ends past this worker's last write, so the partition is restored again, not kept."""
    source, first, topic = _written(broker, new_store, [11])
    bootstrap = f"127.0.0.1:{broker.port}"
    worker = new_store("worker")
    restorer = Restorer(_settings(broker), worker)
    asyncio.run(restorer.on_assignment(topic, {0}))
    worker.rebuild({0})
    asyncio.run(restorer.on_assignment(topic, {0}))        # kept: nothing to read
    assert 0 in worker.states and not worker.restoring

    later = _changelog(source, [12])                       # the other owner went on
    asyncio.run(_append(bootstrap, topic, later))
    asyncio.run(restorer.on_assignment(topic, {0}))
    assert 0 not in worker.states and 0 in worker.restoring
    worker.rebuild({0})
    _same(worker, _by_hand(new_store, first + later, {0}), {0})
