"""PartitionStore against a stand-in table: write order, recovery, expiry of users."""

from __future__ import annotations

import time

from config.definitions import load_definitions
from events.model import Event
from streams.store import USER_PRUNE_INTERVAL, PartitionStore, user_table_key

D = load_definitions()
NOW = time.time()


class Table:
    """What PartitionStore uses of a Faust table: ``data``."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}


def recover(table: Table, records: list[tuple[int, bytes, bytes | None]]) -> None:
    """What Faust's recovery does with changelog records: the last value per key."""
    for _, key, value in records:
        if value is None:
            table.data.pop(key, None)
        else:
            table.data[key] = value


def _store() -> tuple[PartitionStore, Table]:
    table = Table()
    store = PartitionStore(D, table)
    store.rebuild({0, 1})
    return store, table


def _fold(store: PartitionStore, p: int, offset: int, ev: Event) -> None:
    assert not store.dedupers[p].is_duplicate(ev.event_id, offset, NOW)
    store.states[p].fold(offset, ev, NOW)


def test_flush_sends_cells_then_ids_then_users() -> None:
    store, _ = _store()
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    _fold(store, 0, 1, Event("e1", "u1", NOW - 4, "activation", "web"))
    _fold(store, 0, 2, Event("e2", "u2", NOW - 3, "product_viewed", "ios"))
    changed = store.flush(0, NOW)
    sent = store.take_outbox()
    kinds = [key.decode().split("|")[1] for _, key, _ in sent]
    assert kinds == sorted(kinds, key="cdu".index)          # every c, then d, then every u
    assert kinds.count("u") == 2 and kinds.count("d") == 1
    assert {key for _, key, _ in sent if b"|c|" in key} == {
        f"0|c|{k[0]}/{k[1]}/{k[2]}".encode() for k in changed}
    assert all(p == 0 for p, _, _ in sent)


def test_rebuild_restores_users_and_replay_skips_what_they_hold() -> None:
    store, _ = _store()
    ev = Event("e0", "weird|id", NOW - 5, "signup", "web")
    _fold(store, 1, 7, ev)
    store.flush(1, NOW)
    users = dict(store.states[1].users)
    table = Table()
    recover(table, store.take_outbox())
    fresh = PartitionStore(D, table)
    assert fresh.rebuild({1}) == {1}
    assert fresh.states[1].users == users
    fresh.states[1].fold(7, ev, NOW)                       # a replay of offset 7
    assert fresh.states[1].take_dirty() == {}
    assert fresh.states[1].take_dirty_users() == {}
    assert not fresh.dedupers[1].is_duplicate("e0", 7, NOW)  # its own replay
    assert fresh.dedupers[1].is_duplicate("e0", 8, NOW)      # a true duplicate


def test_the_table_copy_is_dropped_after_recovery_and_nothing_else_reads_it() -> None:
    store, table = _store()
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    store.flush(0, NOW)
    recover(table, store.take_outbox())
    fresh = PartitionStore(D, table)
    fresh.rebuild({0})
    assert fresh.drop_table_copy() > 0 and not table.data
    _fold(fresh, 0, 1, Event("e1", "u1", NOW - 4, "activation", "web"))
    fresh.flush(0, NOW)
    assert not table.data                                   # written to the changelog only
    assert [k for _, k, _ in fresh.take_outbox() if b"|u|" in k] == [user_table_key(0, "u1")]


def test_expire_tombstones_id_chunks_past_the_retention_also_after_recovery() -> None:
    store, table = _store()
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    store.flush(0, NOW)
    records = store.take_outbox()
    chunks = [k for _, k, _ in records if b"|d|" in k]
    assert len(chunks) == 1
    recover(table, records)
    fresh = PartitionStore(D, table)
    fresh.rebuild({0})
    fresh.drop_table_copy()
    for s in (store, fresh):
        s.expire(0, NOW + 3600)                              # within the 25 h: kept
        assert not [k for _, k, v in s.take_outbox() if b"|d|" in k]
        s.expire(0, NOW + 26 * 3600)
        assert [(k, v) for _, k, v in s.take_outbox() if b"|d|" in k] == [(chunks[0], None)]


def test_expire_prunes_users_at_most_once_per_interval() -> None:
    store, _ = _store()
    _fold(store, 0, 0, Event("e0", "old", NOW - 29 * 86400, "signup"))
    _fold(store, 0, 1, Event("e1", "new", NOW - 60, "signup"))
    store.flush(0, NOW)
    later = NOW + 20 * 86400
    store.take_outbox()
    store.expire(0, later)
    sent = store.take_outbox()
    tombstones = [(key, value) for _, key, value in sent if b"|u|" in key]
    assert tombstones == [(user_table_key(0, "old"), None)]
    assert "old" not in store.states[0].users and "new" in store.states[0].users
    store.expire(0, later + USER_PRUNE_INTERVAL / 2)       # too soon for another sweep
    assert not [key for _, key, _ in store.take_outbox() if b"|u|" in key]


def test_losing_a_partition_forgets_its_users() -> None:
    store, table = _store()
    _fold(store, 1, 0, Event("e0", "u", NOW, "signup"))
    store.flush(1, NOW)
    recover(table, store.take_outbox())  # e.g. Faust recovered them in a later rebalance
    assert any(k.startswith(b"1|") for k in table.data)
    store.rebuild({0})
    assert set(store.states) == {0}
    assert not any(k.startswith(b"1|") for k in table.data)  # no stale copy left
