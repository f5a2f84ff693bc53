"""Where a worker's memory is: ``leadline worker`` with a sampling thread.

``python -m reliability.memprobe worker`` runs the worker exactly as ``leadline
worker`` does, and every ``MEMPROBE_EVERY`` seconds (default 60) appends one JSON line
to ``MEMPROBE_FILE``: the resident memory, glibc's share of it (``mallinfo2``: heap
bytes in use, heap bytes free but still part of the heap, blocks mapped on their own),
the rest of the anonymous memory (mostly CPython's 1 MiB small-object arenas, which
glibc does not see), CPython's blocks in use and free, the memory in use (live
allocations of both allocators) and the resident rest, and the gc-tracked objects by
type. It also samples whenever the file :func:`rest_request` names appears (the soak's
samples at rest). ``make soak`` runs it with ``--probe`` and reports how each part grew
(``reliability/soak.py``); this is how the heap's resident free space was found
(``streams/allocator.py``).

Investigation only: it costs a ``gc.get_objects()`` pass per sample (tens of ms).
``MEMPROBE_TRACE=1`` also traces allocations (tracemalloc, one frame) and adds the
source lines holding most to every sample: slower, and a snapshot pauses the worker.
"""

from __future__ import annotations

import ctypes
import gc
import heapq
import json
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter, deque
from pathlib import Path
from types import FrameType
from typing import Any

from leadline.streams.allocator import libc_function

MIB = 1 << 20
_ROOT = Path(__file__).resolve().parents[1]
_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
           "uordblks", "fordblks", "keepcost")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _FIELDS]


def _mallinfo2() -> Any:
    function: Any = libc_function("mallinfo2")  # glibc >= 2.33
    if function is not None:
        function.restype = _MallInfo2
    return function


_MALLINFO2 = _mallinfo2()


def _status_kib(*fields: str) -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in fields:
            out[name] = int(rest.split()[0])
    return out


def sample(started: float) -> dict[str, Any]:
    """One row: memory in MiB, and the 10 most numerous gc-tracked object types."""
    status = _status_kib("VmRSS", "RssAnon")
    mono = time.monotonic()  # system-wide: the soak lines samples up with its own
    row: dict[str, Any] = {"t": round(mono - started, 1), "mono": round(mono, 1),
                           "rss_mib": round(status["VmRSS"] / 1024, 1),
                           "anon_mib": round(status["RssAnon"] / 1024, 1)}
    if _MALLINFO2 is not None:
        info = _MALLINFO2()
        heap = info.arena / MIB
        row |= {"heap_in_use_mib": round(info.uordblks / MIB, 1),
                "heap_free_mib": round(info.fordblks / MIB, 1),
                "mapped_mib": round(info.hblkhd / MIB, 1),
                # what glibc does not hand out: CPython's arenas, thread stacks
                "other_anon_mib": round(row["anon_mib"] - heap - info.hblkhd / MIB, 1)}
    row |= pymalloc()
    if "heap_in_use_mib" in row and "pymalloc_used_mib" in row:
        # Live allocations, and the resident rest: CPython's free blocks and pools, glibc's
        # free chunks not yet trimmed, thread stacks. (glibc's ``fordblks`` is no measure of
        # the latter: it still counts free pages ``malloc_trim`` gave back to the kernel.)
        in_use = row["heap_in_use_mib"] + row["mapped_mib"] + row["pymalloc_used_mib"]
        row |= {"in_use_mib": round(in_use, 1),
                "free_resident_mib": round(row["anon_mib"] - in_use, 1)}
    tracked = gc.get_objects()
    row["objects"] = dict(Counter(type(o).__name__ for o in tracked).most_common(10))
    row["largest"] = largest_containers(tracked)
    del tracked
    return row


_CONTAINERS = (list, dict, set, frozenset, deque)
_PYMALLOC = {"# bytes in allocated blocks": "pymalloc_used_mib",
             "# bytes in available blocks": "pymalloc_free_blocks_mib",
             "unused pools": "pymalloc_free_pools_mib"}


def pymalloc() -> dict[str, float]:
    """CPython's small-object allocator: blocks in use, and free space it keeps.

    Free blocks sit in pools that still hold live blocks; a pool whose blocks are all
    free can serve any size; an arena (1 MiB) goes back to the OS only when all its
    pools are free. ``sys._debugmallocstats`` prints to the C stderr only, so fd 2 is
    pointed at a file for the call: a line another thread writes to stderr meanwhile
    lands there, not in the log. Empty while tracemalloc runs (its hooks replace
    the allocator's statistics).
    """
    with tempfile.TemporaryFile("w+") as out:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    row = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        for marker, field in _PYMALLOC.items():
            if marker in name and field not in row:
                row[field] = round(int(value.replace(",", "")) / MIB, 1)
        if name.startswith("Total"):  # the arenas' total; per-type free lists follow
            row["pymalloc_arenas_mib"] = round(int(value.replace(",", "")) / MIB, 1)
            break
    return row


def largest_containers(tracked: list[Any], n: int = 8) -> list[dict[str, Any]]:
    """The ``n`` longest lists, dicts, sets and deques, each with where it is held.

    A growing container is how a few bytes an event stay behind (an offset never
    acknowledged, an id never forgotten); its length tells it apart from the state.
    Only gc-tracked ones: CPython stops tracking a dict that holds only atoms (str,
    bytes, int keys and values), so the users and the live dedupe dict are not here;
    the state gauges count those.
    """
    top = heapq.nlargest(n, (o for o in tracked if type(o) in _CONTAINERS), key=len)
    return [{"type": type(o).__name__, "len": len(o), "held_by": held_by(o, tracked)}
            for o in top]


def held_by(target: Any, tracked: list[Any], depth: int = 3) -> str:
    """A readable path to ``target``: ``Class.attribute`` or ``Class.attribute[key]``."""
    path: list[str] = []
    for _ in range(depth):
        owner = _referrer(target, tracked)
        if owner is None:
            break
        name, holder = owner
        path.insert(0, name)
        if not isinstance(holder, dict):
            path.insert(0, type(holder).__qualname__)
            break
        target = holder
    return "".join(path) if path else "?"


def _referrer(target: Any, tracked: list[Any]) -> tuple[str, Any] | None:
    """One object that holds ``target``, and under what name."""
    for ref in gc.get_referrers(target):
        if ref is tracked or isinstance(ref, FrameType):
            continue
        if isinstance(ref, dict):
            for key, value in ref.items():
                if value is target:
                    # an instance's __dict__ is named by its attribute, other dicts by key
                    owners = [o for o in gc.get_referrers(ref)
                              if getattr(o, "__dict__", None) is ref]
                    if owners:
                        return f".{key}", owners[0]
                    return f"[{key!r:.40}]", ref
        elif not isinstance(ref, _CONTAINERS):
            # an attribute: in __slots__, or in an instance dict CPython holds inline
            names = list(getattr(type(ref), "__slots__", ())) + list(
                getattr(ref, "__dict__", {}))
            for name in names:
                if getattr(ref, name, None) is target:
                    return f".{name}", ref
    return None


def traced_by_line(top: int = 40) -> dict[str, Any]:
    """What tracemalloc holds, in total and at the ``top`` source lines holding most.

    Lines, not a diff, so that any two samples can be compared afterwards. The
    snapshot holds the GIL for a second or more with millions of blocks.
    """
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)])
    stats = snapshot.statistics("lineno")
    total = sum(stat.size for stat in stats)
    lines = {f"{_short(s.traceback[0].filename)}:{s.traceback[0].lineno}": s.size
             for s in stats[:top]}
    # where each block lives, by size: CPython's arenas, glibc's heap, its own mapping
    by_allocator = {"pymalloc": 0, "heap": 0, "mapped": 0}
    for trace in snapshot.traces:
        size = trace.size
        by_allocator["pymalloc" if size <= 512 else "heap" if size < 1 << 20
                     else "mapped"] += size
    return {"total_mib": round(total / MIB, 2), "lines": lines,
            "by_allocator_mib": {k: round(v / MIB, 2) for k, v in by_allocator.items()}}


def _short(filename: str) -> str:
    for marker in ("site-packages/", f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/",
                   f"{_ROOT}/"):
        filename = filename.rsplit(marker, 1)[-1]
    return filename


def rest_request(path: Path) -> Path:
    """The file that asks the probe for a sample now (see :func:`_run`)."""
    return path.with_name(path.name + ".now")


def _run(path: Path, every: float, trace: bool) -> None:
    """A row every ``every`` seconds, and one whenever :func:`rest_request` appears.

    The soak asks for the latter when it has paused the traffic and the worker has
    drained: with nothing in flight, memory in use is the state and the fixed rest.
    """
    started = time.monotonic()
    request = rest_request(path)
    due = started + every
    while True:
        time.sleep(0.5)
        asked = request.exists()
        if not asked and time.monotonic() < due:
            continue
        row = sample(started)
        if asked:
            row["rest"] = True
        else:  # (after a stop, SIGSTOP included, one row: not one per period missed)
            due = max(due + every, time.monotonic())
        if trace:
            row["traced"] = traced_by_line()
        with path.open("a") as out:
            out.write(json.dumps(row) + "\n")
        if asked:  # answered: the row is in the file
            request.unlink()


def main() -> None:
    path = Path(os.environ["MEMPROBE_FILE"])
    every = float(os.environ.get("MEMPROBE_EVERY", "60"))
    # MEMPROBE_TRACE=N: trace allocations with N frames (slows the worker down)
    frames = int(os.environ.get("MEMPROBE_TRACE", "0"))
    if frames:
        tracemalloc.start(frames)
    threading.Thread(target=_run, args=(path, every, bool(frames)), daemon=True,
                     name="memprobe").start()
    from leadline.cli.main import main as leadline

    leadline()


if __name__ == "__main__":
    main()
