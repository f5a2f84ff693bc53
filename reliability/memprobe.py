"""Where a worker's memory is: ``leadline worker`` with a sampling thread.

``python -m reliability.memprobe worker`` runs the worker exactly as ``leadline
worker`` does, and every ``MEMPROBE_EVERY`` seconds (default 60) appends one JSON line
to ``MEMPROBE_FILE``: the resident memory, glibc's share of it (``mallinfo2``: heap
bytes in use, heap bytes free but still part of the heap, blocks mapped on their own),
the rest of the anonymous memory (mostly CPython's 1 MiB small-object arenas, which
glibc does not see), and the gc-tracked objects by type. ``make soak`` runs it with
``--probe`` and reports how each part grew (``reliability/soak.py``); this is how the
heap's resident free space was found (``streams/allocator.py``).

Investigation only: it costs a ``gc.get_objects()`` pass per sample (tens of ms).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from streams.allocator import libc_function

MIB = 1 << 20
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
    row: dict[str, Any] = {"t": round(time.monotonic() - started, 1),
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
    objects = Counter(type(o).__name__ for o in gc.get_objects())
    row["objects"] = dict(objects.most_common(10))
    return row


def _run(path: Path, every: float) -> None:
    started = time.monotonic()
    while True:
        time.sleep(every)
        with path.open("a") as out:
            out.write(json.dumps(sample(started)) + "\n")


def main() -> None:
    path = Path(os.environ["MEMPROBE_FILE"])
    every = float(os.environ.get("MEMPROBE_EVERY", "60"))
    threading.Thread(target=_run, args=(path, every), daemon=True, name="memprobe").start()
    from cli.main import main as leadline

    leadline()


if __name__ == "__main__":
    main()
