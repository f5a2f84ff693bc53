"""The dedupe map stays compact: bytes per remembered id, as a regression test.

Run as a script for the figures: ``python -m tests.aggregators.test_dedupe_memory 1000000``.
"""

from __future__ import annotations

import sys
import tracemalloc

from leadline.aggregators.dedupe import HOUR, LIVE_MAX, Deduper

NOW = 1_700_000_000.0
GEN = int(NOW // HOUR) * HOUR


def sealed_bytes_per_id(ids: int, hours: int = 3, batch: int = 5000) -> float:
    """Traced bytes per id once ``ids`` new ids over ``hours`` hours are sealed.

    The ids go through ``check_batch``, a chunk taken per batch as the store does; a
    lookup in the next hour then seals the last hour.
    """
    names = [f"event-{i:012d}" for i in range(ids)]  # made before tracing: not counted
    offsets = list(range(ids))
    per_hour = -(-ids // hours)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        d = Deduper()
        for start in range(0, ids, batch):
            now = GEN + (start // per_hour) * HOUR + 60.0
            d.check_batch(names[start:start + batch], offsets[start:start + batch], now)
            d.take_chunk()
        assert d.check_batch([], [], GEN + hours * HOUR) == []  # seals the last hour
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(d) == ids
    assert sorted(d.hours()) == [GEN + k * HOUR for k in range(hours)]
    return held / ids


def live_bytes_per_id(ids: int = LIVE_MAX - 1) -> float:
    """Traced bytes per id in the live dict (the current hour, up to ``LIVE_MAX`` ids)."""
    names = [f"event-{i:012d}" for i in range(ids)]
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        d = Deduper()
        d.check_batch(names, range(ids), NOW)
        d.take_chunk()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(d._live) == ids
    return held / ids


def test_a_million_ids_take_at_most_48_bytes_each() -> None:
    per_id = sealed_bytes_per_id(1_000_000)
    assert per_id <= 48, f"{per_id:.1f} bytes per id"


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    print(f"{n:,} ids over 3 hours, sealed: {sealed_bytes_per_id(n):.1f} bytes/id traced")
    print(f"live dict ({LIVE_MAX - 1:,} ids): {live_bytes_per_id():.1f} bytes/id traced")
