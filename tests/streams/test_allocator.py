"""streams/allocator.py: freed memory really leaves the process (RSS, measured in a
fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Blocks on the heap with long-lived small ones between them, then the big ones freed:
# the holes stay part of the RSS until trimmed.
FRAGMENT = """
import json, sys
from reliability.harness import rss_kib
from leadline.streams import allocator
import os
big, keep = [], []
for i in range(2000):
    big.append(bytearray(100 * 1024))
    keep.append(bytearray(2048))
before = rss_kib(os.getpid())
big.clear()
freed = rss_kib(os.getpid())
{after}
print(json.dumps([before, freed, rss_kib(os.getpid())]))
"""

def _run(template: str, after: str = "") -> list[int]:
    code = template.format(root=str(ROOT), after=after)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    return list(json.loads(out.stdout))


def test_trim_returns_the_holes_of_a_fragmented_heap() -> None:
    before, freed, trimmed = _run(FRAGMENT, after="assert allocator.trim()")
    held = before - freed                  # what free() alone gave back (little)
    assert before - trimmed > 150_000, (before, freed, trimmed)  # most of ~200 MB
    assert before - trimmed > 2 * held


# A big block freed first (glibc then raises its mmap threshold to that size), then
# 2 MiB blocks with long-lived small ones between them, then the 2 MiB ones freed.
RAISED = """
import json, sys
from reliability.harness import rss_kib
from leadline.streams import allocator
import os
{setup}
big = bytearray(30 << 20)
del big
blocks, keep = [], []
for i in range(100):
    blocks.append(bytearray(2 << 20))
    keep.append(bytearray(1024))
before = rss_kib(os.getpid())
blocks.clear()
freed = rss_kib(os.getpid())
print(json.dumps([before, freed]))
"""


def test_a_fixed_mmap_threshold_returns_big_blocks_when_they_are_freed() -> None:
    raised = _run(RAISED.replace("{setup}", ""))
    fixed = _run(RAISED.replace("{setup}", "assert allocator.configure()"))
    # glibc's own rule: the 2 MiB blocks went onto the heap, and their pages stay
    assert raised[0] - raised[1] < 50_000, raised
    # fixed at 1 MiB: each was mapped on its own and unmapped by free() (~200 MB)
    assert fixed[0] - fixed[1] > 150_000, fixed
