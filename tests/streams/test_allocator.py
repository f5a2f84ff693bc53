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
sys.path.insert(0, {root!r})
from reliability.harness import rss_kib
from streams import allocator
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
