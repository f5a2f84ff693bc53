"""The local state store (RocksDB): a mapping per partition, a cache bounded in RAM,
snapshots that survive a crash only while their mark says they are whole.

Checked against plain dicts: every sequence of writes leaves the same records, and a
partition's users folded through it give the same cells, users and prunes as in memory.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rocksdict import Rdict, WriteBatch

from leadline.aggregators.partition import PartitionState
from leadline.state.local import CELLS, USERS, LocalStore, StoreInUse
from tests.aggregators.test_catalog_fold import NOW, D, decoded


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalStore]:
    store = LocalStore(tmp_path / "state", 8 << 20)
    yield store
    store.close()


keys = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
               min_size=0, max_size=12)
values = st.binary(min_size=0, max_size=64)
op = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 2), keys, values),
    st.tuples(st.just("del"), st.integers(0, 2), keys, st.none()),
    st.tuples(st.just("update"), st.integers(0, 2),
              st.dictionaries(keys, st.one_of(values, st.none()), max_size=6), st.none()),
    st.tuples(st.just("clear"), st.integers(0, 2), st.none(), st.none()),
    st.tuples(st.just("hold"), st.integers(0, 2), st.none(), st.none()),
    st.tuples(st.just("release"), st.integers(0, 2), st.none(), st.none()),
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # views empty their range
@given(ops=st.lists(op, max_size=40))
def test_partition_records_behave_like_dicts(local: LocalStore, ops: list) -> None:
    # p 255 and 256 differ only in the low byte of the prefix; 0 is the first range
    parts = [0, 255, 256]
    views = [local.records(USERS, p) for p in parts]  # emptied when created
    models: list[dict[str, bytes]] = [{} for _ in parts]
    for kind, i, a, b in ops:
        view, model = views[i], models[i]
        if kind == "set":
            view[a] = b
            model[a] = b
        elif kind == "del":
            if a in model:
                del view[a]
                del model[a]
            else:
                with pytest.raises(KeyError):
                    del view[a]
        elif kind == "update":
            view.update(a)
            for k, v in a.items():
                if v is None:
                    model.pop(k, None)
                else:
                    model[k] = v
        elif kind == "hold":  # writes wait in the view, readable, until released
            view.hold()
        elif kind == "release":
            batch = WriteBatch(raw_mode=True)
            view.release(batch)
            local._db.write(batch)  # type: ignore[union-attr]
        else:
            view.clear()
            model.clear()
        assert dict(view.items()) == model
    for view, model in zip(views, models, strict=True):
        assert dict(view.items()) == model
        assert list(view) == sorted(model, key=str.encode)
        assert len(view) == len(model)
        for k, v in model.items():
            assert view[k] == v and view.get(k) == v and k in view
        assert view.get("\x00absent") is None and "\x00absent" not in view
        batch = WriteBatch(raw_mode=True)                   # what was held, written
        view.release(batch)
        local._db.write(batch)  # type: ignore[union-attr]
    again = [local.records(USERS, p, len(m)) for p, m in zip(parts, models, strict=True)]
    assert [dict(view.items()) for view in again] == models


def test_a_store_of_another_layout_is_emptied_when_opened(tmp_path: Path) -> None:
    """What a previous version left (no format key) is not read as a snapshot."""
    old = Rdict(str(tmp_path / "state"))
    old.put(b"u\x00\x01u", b"x")
    old.put(b"m\x00\x01", b'{"offset": 3}')
    old.close()
    planted = tmp_path / "state" / "left-by-a-previous-version"
    planted.write_bytes(b"x")
    again = LocalStore(tmp_path / "state", 8 << 20)
    again.open()
    assert not planted.exists() and again.snapshots == {}
    assert list(again.records(USERS, 1, 1).items()) == []
    again.close()


_CRASHING_WRITER = """
import os, signal, sys
from pathlib import Path
from leadline.state.local import CELLS, USERS, LocalStore
store = LocalStore(Path(sys.argv[1]), 8 << 20)
store.records(USERS, 1).update({"kept": b"u1"})
store.write_snapshot([(CELLS, 1, "users/300/0", b"cell")],
                     {1: {"offset": 7, "counts": {"u": 1}}})
store.invalidate([2])
if sys.argv[2] == "then-change":  # a checkpoint begins: the mark goes before the records
    store.invalidate([1])
    store.records(USERS, 1, 1).update({"kept": b"u2"})
os.kill(os.getpid(), signal.SIGKILL)  # no close: only the write-ahead log has them
"""


@pytest.mark.parametrize("after", ["nothing", "then-change"])
def test_a_snapshot_survives_a_crash_with_its_mark_and_only_while_it_holds(
        tmp_path: Path, after: str) -> None:
    crashed = subprocess.run([sys.executable, "-c", _CRASHING_WRITER, str(tmp_path / "s"),
                              after], check=False)
    assert crashed.returncode == -signal.SIGKILL
    again = LocalStore(tmp_path / "s", 8 << 20)
    again.open()
    if after == "nothing":
        assert again.snapshots == {1: {"offset": 7, "counts": {"u": 1}}}
        assert list(again.snapshot_entries(CELLS, 1)) == [("users/300/0", b"cell")]
        assert dict(again.records(USERS, 1, 1).items()) == {"kept": b"u1"}
    else:
        assert again.snapshots == {}                       # changed after: not whole
    again.drop(1)
    assert list(again.snapshot_entries(CELLS, 1)) == [] and again.snapshots == {}
    again.close()


def test_its_memory_stays_within_the_cache_however_many_records(local: LocalStore) -> None:
    """200,000 users of 100 bytes (~20 MB of records) through an 8 MiB cache: the block
    cache, memtables charged to it, stays under its capacity while the rest is on disk."""
    users = local.records(USERS, 3)
    record = bytes(range(100))
    # ~1 MB written and nothing read yet: only memtables, charged to the cache
    users.update({f"first-{i:09d}": record for i in range(10_000)})
    assert local.memory() >= 1 << 20
    peak = 0
    for start in range(0, 200_000, 10_000):
        users.update({f"user-{i:09d}": record for i in range(start, start + 10_000)})
        peak = max(peak, local.memory())
    for i in range(0, 200_000, 97):
        assert users[f"user-{i:09d}"] == record
        peak = max(peak, local.memory())
    assert len(users) == 210_000
    assert 0 < peak <= local.cache_bytes
    assert local.disk() > 0


def test_users_in_the_local_store_fold_and_prune_as_in_memory(
        local: LocalStore) -> None:
    events, _, _ = decoded(11, users=400)
    in_memory = PartitionState(D)
    on_disk = PartitionState(D, local.records(USERS, 0))
    half = len(events) // 2
    for state in (in_memory, on_disk):
        for offset, ev in enumerate(events[:half]):
            state.fold(offset, ev, NOW)
        state.take_dirty()
        state.take_dirty_users()
    assert len(on_disk.users) == len(in_memory.users) > 0
    later = NOW + 10 * 86400
    pruned = in_memory.prune_users(later)
    assert pruned and on_disk.prune_users(later) == pruned
    for state in (in_memory, on_disk):
        for offset, ev in enumerate(events[half:], start=half):
            if ev.ts >= later - 31 * 86400:
                state.fold(offset, ev, later)
    assert on_disk.take_dirty() == in_memory.take_dirty()
    assert on_disk.take_dirty_users() == in_memory.take_dirty_users()
    assert dict(on_disk.users.items()) == in_memory.users
    assert on_disk.nbytes()["users"] == 0 < in_memory.nbytes()["users"]


def test_a_second_process_on_the_same_directory_fails_and_empties_nothing(
        tmp_path: Path) -> None:
    first = LocalStore(tmp_path / "state", 8 << 20)
    users = first.records(USERS, 0)
    users.update({"u": b"x"})
    second = LocalStore(tmp_path / "state", 8 << 20)
    with pytest.raises(StoreInUse, match="two workers with one LEADLINE_DATA_DIR"):
        second.open()
    assert dict(users.items()) == {"u": b"x"}              # the first one's data intact
    first.close()
    second.open()                                          # free again
    second.close()


def test_nothing_is_opened_or_emptied_until_used(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "kept").write_text("x")
    store = LocalStore(tmp_path / "state", 8 << 20)
    assert store.memory() == 0 and store.disk() == 0
    assert (tmp_path / "state" / "kept").exists()
    store.close()
