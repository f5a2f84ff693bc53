"""The soak's memory probe: its parts say where memory went (real allocations, measured
in a fresh interpreter), and the summary fits each part's growth."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reliability import memprobe
from reliability.soak import Point, memory_parts

ROOT = Path(__file__).resolve().parents[2]

ALLOCATE = """
import json, sys, time
from reliability import memprobe
started = time.monotonic()
rows = [memprobe.sample(started)]
heap = [bytearray(100 * 1024) for _ in range(500)]       # ~49 MiB on glibc's heap
rows.append(memprobe.sample(started))
small = [[i] for i in range(300_000)]                    # CPython's own arenas
rows.append(memprobe.sample(started))
print(json.dumps(rows))
"""


def test_the_parts_follow_where_memory_was_allocated() -> None:
    out = subprocess.run([sys.executable, "-c", ALLOCATE.format(root=str(ROOT))],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    start, heaped, objects = json.loads(out.stdout)
    assert heaped["heap_in_use_mib"] - start["heap_in_use_mib"] >= 45
    assert heaped["rss_mib"] - start["rss_mib"] >= 45
    # 300k one-item lists (~80 B each, gc-tracked) live in CPython's arenas, not the heap
    assert objects["other_anon_mib"] - heaped["other_anon_mib"] >= 15
    assert abs(objects["heap_in_use_mib"] - heaped["heap_in_use_mib"]) < 5
    assert objects["objects"]["list"] >= 300_000
    # ... which pymalloc counts as blocks in use; its arenas are most of the rest
    assert objects["pymalloc_used_mib"] - heaped["pymalloc_used_mib"] >= 15
    assert objects["pymalloc_arenas_mib"] <= objects["other_anon_mib"] + 1
    for row in (start, heaped, objects):  # pymalloc's parts fill its arenas
        held = (row["pymalloc_used_mib"] + row["pymalloc_free_blocks_mib"]
                + row["pymalloc_free_pools_mib"])
        assert held <= row["pymalloc_arenas_mib"] + 0.2
    for row in (start, heaped, objects):  # the parts add up to the anonymous RSS
        parts = (row["heap_in_use_mib"] + row["heap_free_mib"] + row["mapped_mib"]
                 + row["other_anon_mib"])
        assert abs(parts - row["anon_mib"]) < 0.5
        # ... and so do live allocations and the resident memory holding none
        assert abs(row["in_use_mib"] + row["free_resident_mib"] - row["anon_mib"]) < 0.2
    assert heaped["in_use_mib"] - start["in_use_mib"] >= 45
    assert objects["in_use_mib"] - heaped["in_use_mib"] >= 15


def test_memory_parts_fits_each_part_after_warm_up(tmp_path: Path) -> None:
    rows = [{"t": 60.0 * k, "rss_mib": 100 + 10 * k, "heap_in_use_mib": 50 + 8 * k,
             "heap_free_mib": 10.0 if k < 4 else 30.0, "mapped_mib": 5.0,
             "other_anon_mib": 20 + 2 * k, "anon_mib": 0.0, "objects": {}}
            for k in range(11)]
    path = tmp_path / "memprobe.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parts = memory_parts(path, minutes=10)  # warm-up: the first 2.5 minutes
    assert parts["samples"] == 11
    assert parts["rss_mib"] == {"after_warmup": 130, "last": 200, "max": 200,
                                "slope_mib_per_min": 10.0}
    assert parts["heap_in_use_mib"]["slope_mib_per_min"] == 8.0
    assert parts["mapped_mib"]["slope_mib_per_min"] == 0.0
    assert parts["other_anon_mib"]["slope_mib_per_min"] == 2.0
    assert parts["heap_free_mib"]["after_warmup"] == 10.0
    assert parts["heap_free_mib"]["last"] == 30.0
    assert memory_parts(tmp_path / "missing.jsonl", 10) == {"samples": 0}


def test_memory_in_use_beyond_the_state_is_fitted_on_the_traffic_clock(tmp_path: Path) -> None:
    # traffic started at mono 1000 (the probe's clock), 30 s after the worker; the state
    # grows 5 MiB/min and memory in use with it, plus 0.5 MiB/min
    started = 1000.0
    points = [Point(t=10.0 * k, sent=0, received=0, folded=0, duplicates=0, invalid=0, lag=0,
                    rss_mib=0, broker_rss_mib=0, scrape_ms=0, event_ids=0, users=0, cells=0,
                    view_cells=0, state_mib=20 + 5 * k / 6) for k in range(61)]
    rows = [{"t": 30.0 + 60 * k, "mono": started + 60 * k, "rss_mib": 0.0,
             "heap_in_use_mib": 0.0, "in_use_mib": 70 + 5.5 * k,
             "free_resident_mib": 20.0 + (10 if k == 6 else 0)} for k in range(11)]
    path = tmp_path / "memprobe.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    parts = memory_parts(path, minutes=10, points=points, started=started)
    beyond = parts["in_use_beyond_state_mib"]
    assert beyond["slope_mib_per_min"] == pytest.approx(0.5)
    assert beyond["after_warmup"] == pytest.approx(51.5)  # minute 3 (warm-up: 2.5 minutes)
    assert parts["free_resident_mib"]["max"] == 30.0
    assert parts["free_resident_mib"]["last"] == 20.0


class _Consumer:
    def __init__(self) -> None:
        self.acked: dict[str, list[int]] = {"orders-0": list(range(200_000))}


class _Slotted:
    __slots__ = ("index",)

    def __init__(self) -> None:
        self.index = set(range(150_000))


def test_the_longest_containers_are_named_by_who_holds_them() -> None:
    consumer, slotted = _Consumer(), _Slotted()
    largest = memprobe.sample(0.0)["largest"]
    assert largest[0] == {"type": "list", "len": 200_000,
                          "held_by": "_Consumer.acked['orders-0']"}
    assert largest[1] == {"type": "set", "len": 150_000, "held_by": "_Slotted.index"}
    assert len(largest) == 8
    del consumer, slotted


TRACE = """
import json, sys, tracemalloc
tracemalloc.start(1)
from reliability import memprobe
held = [bytes(1000) for _ in range(20_000)]  # ~20 MiB from this line
print(json.dumps(memprobe.traced_by_line(top=3)))
"""


@pytest.mark.slow  # a subprocess tracing its allocations
def test_traced_lines_name_where_memory_is_held() -> None:
    out = subprocess.run([sys.executable, "-c", TRACE.format(root=str(ROOT))],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    traced = json.loads(out.stdout)
    (line, size), *_ = traced["lines"].items()
    assert line == "<string>:5"
    assert 20_000 * 1000 <= size < 20_000 * 1100
    assert traced["total_mib"] >= 19
    assert len(traced["lines"]) == 3
    # 1,033-byte bytes objects: glibc's heap, not CPython's arenas
    assert traced["by_allocator_mib"]["heap"] >= 19
    assert traced["by_allocator_mib"]["pymalloc"] < 5


def test_the_probe_samples_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "memprobe.jsonl"
    thread = threading.Thread(target=memprobe._run, args=(path, 3600.0, False), daemon=True)
    thread.start()
    request = memprobe.rest_request(path)
    request.touch()
    deadline = time.monotonic() + 30
    while request.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not request.exists()
    (row,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert row["rest"] is True
    assert row["in_use_mib"] > 0
    assert abs(row["mono"] - time.monotonic()) < 30
