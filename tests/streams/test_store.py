"""PartitionStore: write order, restore from changelog records, expiry of users.

Every test runs twice: users in memory, and users in the worker's local store on disk
(``state/local.py``), as the worker keeps them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from leadline.config.definitions import load_definitions
from leadline.events.model import Event
from leadline.state.local import LocalStore
from leadline.streams.store import USER_PRUNE_INTERVAL, PartitionStore, user_table_key

D = load_definitions()
NOW = time.time()


NewStore = Callable[[], PartitionStore]
Records = list[tuple[int, bytes, "bytes | None"]]


def restored(new_store: NewStore, records: Records, owned: set[int]) -> PartitionStore:
    """A new store fed changelog records in order, as ``streams/restore.py`` feeds it,
    then with ``owned`` taken live."""
    fresh = new_store()
    for p, key, value in records:
        fresh.restore(p).apply(key, value)
    assert fresh.rebuild(owned) == owned
    return fresh


@pytest.fixture(params=["memory", "local"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewStore]:
    """A factory of stores; with "local", each has its own local store and id files
    under tmp_path."""
    opened: list[LocalStore] = []

    def new() -> PartitionStore:
        if request.param == "memory":
            return PartitionStore(D)
        n = len(opened)
        local = LocalStore(tmp_path / f"state{n}", 16 << 20)
        opened.append(local)
        return PartitionStore(D, local, ids=tmp_path / f"ids{n}")

    yield new
    for local in opened:
        local.close()


def _store(new_store: NewStore) -> PartitionStore:
    store = new_store()
    store.rebuild({0, 1})
    return store


def _fold(store: PartitionStore, p: int, offset: int, ev: Event) -> None:
    assert not store.dedupers[p].is_duplicate(ev.event_id, offset, NOW)
    store.states[p].fold(offset, ev, NOW)


def _flush(store: PartitionStore, p: int) -> list[tuple[int, bytes, bytes | None]]:
    """What a batch then a checkpoint do: the changed cells, then the changelog records."""
    store.take_changed(p)
    return store.checkpoint(NOW)


def test_checkpoint_sends_cells_then_ids_then_users(new_store: NewStore) -> None:
    store = _store(new_store)
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    _fold(store, 0, 1, Event("e1", "u1", NOW - 4, "activation", "web"))
    _fold(store, 0, 2, Event("e2", "u2", NOW - 3, "product_viewed", "ios"))
    changed = store.take_changed(0)
    sent = store.checkpoint(NOW)
    kinds = [key.decode().split("|")[1] for _, key, _ in sent]
    assert kinds == sorted(kinds, key="cdu".index)          # every c, then d, then every u
    assert kinds.count("u") == 2 and kinds.count("d") == 1
    assert {key for _, key, _ in sent if b"|c|" in key} == {
        f"0|c|{k[0]}/{k[1]}/{k[2]}".encode() for k in changed}
    assert all(p == 0 for p, _, _ in sent)


def test_rebuild_restores_users_and_replay_skips_what_they_hold(new_store: NewStore) -> None:
    store = _store(new_store)
    ev = Event("e0", "weird|id", NOW - 5, "signup", "web")
    _fold(store, 1, 7, ev)
    records = _flush(store, 1)
    users = dict(store.states[1].users)
    fresh = restored(new_store, records, {1})
    assert fresh.states[1].users == users
    fresh.states[1].fold(7, ev, NOW)                       # a replay of offset 7
    assert fresh.states[1].take_dirty() == {}
    assert fresh.states[1].take_dirty_users() == {}
    assert not fresh.dedupers[1].is_duplicate("e0", 7, NOW)  # its own replay
    assert fresh.dedupers[1].is_duplicate("e0", 8, NOW)      # a true duplicate


def test_a_restore_applies_tombstones_and_keeps_the_last_value_of_each_key(
        new_store: NewStore) -> None:
    """An uncompacted changelog holds every value a key had and the tombstones after
    them: the restore must end with the last of each, and nothing tombstoned."""
    store = _store(new_store)
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    first = _flush(store, 0)
    _fold(store, 0, 1, Event("e1", "u1", NOW - 4, "activation", "web"))
    second = _flush(store, 0)
    users, cells = dict(store.states[0].users), set(store.states[0].cells)
    store.expire(0, NOW + 26 * 3600)                        # the id chunk's hour is past
    store.expire(0, NOW + 401 * 86400)                      # and u1 is forgotten
    tombstones = store.checkpoint(NOW)
    assert any(v is None and b"|d|" in k for _, k, v in tombstones)
    fresh = restored(new_store, first + second, {0})
    assert dict(fresh.states[0].users) == users != {}
    assert set(fresh.states[0].cells) == cells
    assert fresh.dedupers[0].is_duplicate("e0", 5, NOW)
    gone = restored(new_store, first + second + tombstones, {0})
    assert dict(gone.states[0].users) == {} and not gone.states[0].cells
    assert not gone.dedupers[0].is_duplicate("e0", 5, NOW)  # its chunk was tombstoned


def test_a_restore_of_a_partition_not_taken_live_is_dropped(new_store: NewStore) -> None:
    store = _store(new_store)
    _fold(store, 1, 0, Event("e0", "u", NOW, "signup"))
    fresh = new_store()
    for p, key, value in _flush(store, 1):
        fresh.restore(p).apply(key, value)
    fresh.restoring[1].finish()                             # written to the store
    users = fresh.restoring[1].state.users
    assert list(users.items())
    assert fresh.rebuild({0}) == {0}                        # partition 1 went elsewhere
    assert not fresh.restoring and list(users.items()) == []
    assert fresh.ids is None or not list(fresh.ids.glob("1.*"))


def test_expire_tombstones_id_chunks_past_the_retention_also_after_recovery(
        new_store: NewStore) -> None:
    store = _store(new_store)
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    records = _flush(store, 0)
    chunks = [k for _, k, _ in records if b"|d|" in k]
    assert len(chunks) == 1
    fresh = restored(new_store, records, {0})
    for s in (store, fresh):
        s.expire(0, NOW + 3600)                              # within the 25 h: kept
        assert not [k for _, k, v in s.checkpoint(NOW) if b"|d|" in k]
        s.expire(0, NOW + 26 * 3600)
        assert [(k, v) for _, k, v in s.checkpoint(NOW) if b"|d|" in k] == [(chunks[0], None)]


def test_expire_prunes_users_at_most_once_per_interval(new_store: NewStore) -> None:
    store = _store(new_store)
    _fold(store, 0, 0, Event("e0", "old", NOW - 29 * 86400, "signup"))
    _fold(store, 0, 1, Event("e1", "new", NOW - 60, "signup"))
    _fold(store, 0, 2, Event("e2", "new", NOW + 2 * 86400, "page_view"))
    _flush(store, 0)
    later = NOW + 401 * 86400  # "old" silent for retention.forget_after (400 d), "new" not
    store.expire(0, later)
    sent = store.checkpoint(NOW)
    tombstones = [key for _, key, value in sent if b"|u|" in key and value is None]
    assert tombstones == [user_table_key(0, "old")]
    assert "old" not in store.states[0].users and "new" in store.states[0].users
    store.expire(0, later + USER_PRUNE_INTERVAL / 2)       # too soon for another sweep
    assert not [key for _, key, _ in store.checkpoint(NOW) if b"|u|" in key]


def test_losing_a_partition_forgets_its_users(new_store: NewStore) -> None:
    store = _store(new_store)
    _fold(store, 1, 0, Event("e0", "u", NOW, "signup"))
    _flush(store, 1)
    users = store.states[1].users
    assert list(users.items())
    store.rebuild({0})
    assert set(store.states) == {0}
    assert list(users.items()) == []                       # nor in the local store
    assert store.ids is None or not list(store.ids.glob("1.*"))  # nor its id files


def test_a_checkpoint_writes_each_cell_changed_since_the_last_once_in_its_latest_form(
        new_store: NewStore) -> None:
    store = _store(new_store)
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    first = store.take_changed(0)
    _fold(store, 0, 1, Event("e1", "u2", NOW - 5, "signup", "web"))
    second = store.take_changed(0)
    assert set(first) == set(second)                        # two batches, the same cells
    sent = store.checkpoint(NOW)
    cells = [(k, v) for _, k, v in sent if b"|c|" in k]
    assert len(cells) == len({k for k, _ in cells}) == len(second)
    latest = {f"0|c|{k[0]}/{k[1]}/{k[2]}".encode(): data for k, (_, data) in second.items()}
    assert dict(cells) == latest and latest != {
        f"0|c|{k[0]}/{k[1]}/{k[2]}".encode(): data for k, (_, data) in first.items()}
    users = [k for _, k, _ in sent if b"|u|" in k]
    assert sorted(users) == [user_table_key(0, "u1"), user_table_key(0, "u2")]
    assert store.checkpoint(NOW) == []                       # nothing changed since


def test_records_the_broker_did_not_confirm_go_first_at_the_next_checkpoint(
        new_store: NewStore) -> None:
    store = _store(new_store)
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    lost = _flush(store, 0)
    store.unsent(lost)
    _fold(store, 0, 1, Event("e1", "u1", NOW - 4, "activation", "web"))
    again = _flush(store, 0)
    assert again[:len(lost)] == lost and len(again) > len(lost)


def test_an_expired_cell_is_not_written_after_its_tombstone(new_store: NewStore) -> None:
    store = _store(new_store)
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    store.take_changed(0)                                   # a batch; no checkpoint yet
    later = NOW + 40 * 86400
    assert store.expire(0, later)
    sent = store.checkpoint(later)
    tombstoned = {k for _, k, v in sent if v is None and b"|c|" in k}
    written = {k for _, k, v in sent if v is not None and b"|c|" in k}
    assert tombstoned and not tombstoned & written


def test_records_put_back_for_a_partition_handed_over_are_never_sent(new_store: NewStore) -> None:
    store = _store(new_store)
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    _fold(store, 1, 0, Event("e1", "u2", NOW - 5, "signup", "web"))
    store.take_changed(0)
    store.take_changed(1)
    store.unsent(store.checkpoint(NOW))                    # the broker did not confirm
    store.rebuild({0})                                     # partition 1 went elsewhere
    assert {p for p, _, _ in store.checkpoint(NOW)} == {0}


def test_records_a_failed_checkpoint_put_back_outlive_expiry_and_precede_its_tombstones(
        new_store: NewStore) -> None:
    """Expiry only queues tombstones: what a failed checkpoint put back is sent by the
    next checkpoint, first, so its offsets are never acked without it."""
    store = _store(new_store)
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "signup", "web"))
    store.take_changed(0)
    lost = store.checkpoint(NOW)
    store.unsent(lost)                                     # the broker did not confirm
    later = NOW + 40 * 86400
    assert store.expire(0, later)
    sent = store.checkpoint(later)
    assert sent[:len(lost)] == lost
    assert any(v is None for _, _, v in sent[len(lost):])  # then the tombstones


def test_the_changelog_has_one_writer_the_checkpoint() -> None:
    """Only streams/checkpoint.py sends changelog records: a second writer (expiry used
    to send the outbox itself) could take records a failed checkpoint put back, lose them
    on a failed send, and let the next checkpoint ack their offsets."""
    import ast

    streams = Path(__file__).resolve().parents[2] / "streams"
    callers = set()
    for path in streams.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "send_changelog":
                callers.add(path.name)
    assert callers == {"checkpoint.py"}


def test_open_empties_the_id_files_a_previous_process_left(tmp_path: Path) -> None:
    ids = tmp_path / "ids"
    (ids / "2.0").mkdir(parents=True)                     # a partition this worker lost
    (ids / "2.0" / "490000-0").write_bytes(b"x" * 16)
    local = LocalStore(tmp_path / "state", 16 << 20)
    store = PartitionStore(D, local, ids=ids)
    store.open()
    assert not ids.exists()
    store.rebuild({0})
    assert [p.name for p in ids.iterdir()] == ["0.0"]      # a directory per incarnation
    store.rebuild(set())
    store.rebuild({0})
    assert [p.name for p in ids.iterdir()] == ["0.1"]
    store.close()


def test_sessions_are_written_after_users_recovered_and_expire(new_store: NewStore) -> None:
    store = _store(new_store)
    _fold(store, 0, 0, Event("e0", "u1", NOW - 5, "page_view", "web", session_id="s|1"))
    _fold(store, 0, 1, Event("e1", "u1", NOW - 2, "page_view", "web", session_id="s|1"))
    sent = _flush(store, 0)
    kinds = [key.decode().split("|")[1] for _, key, _ in sent]
    assert kinds == sorted(kinds, key="cdus".index) and kinds.count("s") == 1
    fresh = restored(new_store, sent, {0})
    assert dict(fresh.states[0].sessions) == dict(store.states[0].sessions)
    later = NOW + 33 * 86400  # past every per-user time kept (the longest horizon + 1 d)
    fresh.expire(0, later)
    gone = [key for _, key, value in fresh.checkpoint(later) if b"|s|" in key and value is None]
    assert gone == [b'0|s|["u1","s|1"]'] and len(fresh.states[0].sessions) == 0


def test_links_live_in_the_store_are_recovered_and_expire(new_store: NewStore) -> None:
    """Identity links (forward stitching) in the partition's local store (or on the heap
    without one): written with the checkpoint, rebuilt from it, tombstoned after
    LINK_RETENTION, dropped with the partition."""
    store = _store(new_store)
    links = store.links[0]
    links.add("anon:a", 3, "u1", NOW)
    links.add("anon:b", 4, "u2", NOW - 500 * 86400)
    assert len(links) == 2 and links.user_at("anon:a", 5) == "u1"
    sent = _flush(store, 0)
    assert sorted(k for _, k, _ in sent if b"|l|" in k) == [b"0|l|anon:a", b"0|l|anon:b"]
    assert len(links) == 2 and links.user_at("anon:a", 5) == "u1"  # read back from records
    assert links.user_at("anon:a", 3) is None and links.user_at("u1", 9) is None
    fresh = restored(new_store, sent, {0})
    assert len(fresh.links[0]) == 2 and fresh.links[0].user_at("anon:b", 9) == "u2"
    fresh.expire(0, NOW)
    gone = [k for _, k, v in fresh.checkpoint(NOW) if b"|l|" in k and v is None]
    assert gone == [b"0|l|anon:b"] and len(fresh.links[0]) == 1
    records = fresh.links[0].records
    fresh.forget({0})
    assert len(records) == 0
