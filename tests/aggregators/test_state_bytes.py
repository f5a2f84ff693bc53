"""``leadline_state_bytes`` estimates what the state really takes (tracemalloc's count).

The soak (``reliability/soak.py``) subtracts these estimates from the worker's RSS to
tell growth of state kept for its horizon from a leak, so they must be close.
"""

from __future__ import annotations

import asyncio
import random
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from leadline.aggregators.cells import Cell
from leadline.aggregators.dedupe import HOUR, LIVE_MAX, Deduper
from leadline.aggregators.partition import PartitionState
from leadline.config.definitions import load_definitions
from tests.aggregators.test_user_memory import NOW, typical_user

D = load_definitions()


def traced(build: Callable[[], Any]) -> tuple[Any, int]:
    """What ``build()`` returns, and the memory it still holds (traced bytes)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        made = build()
        return made, tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("ids", [LIVE_MAX // 2, 400_000])
def test_dedupe_bytes(ids: int) -> None:
    names = [f"event-{i:012d}" for i in range(ids)]
    gen = int(NOW // HOUR) * HOUR

    def build() -> Deduper:
        d = Deduper()
        for start in range(0, ids, 5000):  # two hours: one sealed, one with a live dict
            now = gen + (60.0 if start < ids // 2 else HOUR + 60.0)
            d.check_batch(names[start:start + 5000], range(start, min(start + 5000, ids)), now)
            d.take_chunk()
        return d

    d, held = traced(build)
    assert d.nbytes() == pytest.approx(held, rel=0.05)


def _state(users: int) -> PartitionState:
    rng = random.Random(1)
    state = PartitionState(D)
    offset = 0
    for i in range(users):
        for ev in typical_user(i, rng):
            state.fold(offset, ev, NOW)
            offset += 1
    state.take_dirty()
    state.take_dirty_users()
    return state


def test_user_and_cell_bytes() -> None:
    # the state as folded (sketches with growing raise logs), traced as it is built
    state, held = traced(lambda: _state(3000))
    # an equal copy of the users, traced: identity strings, records, dict
    users, users_held = traced(
        lambda: {("x" + k)[1:]: bytes(bytearray(v)) for k, v in state.users.items()})
    assert users == state.users
    size = state.nbytes()
    assert size["users"] == pytest.approx(users_held, rel=0.05)
    # the rest of what the fold holds is its cells (and a few KB of plan and labels); the
    # estimate counts each exact set's hashes as ints of their own, as after a recovery,
    # while the fold shares one int among the sketches an event touches: up to 10 % over
    assert held - users_held <= size["cells"] <= 1.10 * (held - users_held)
    # cells as a recovered worker holds them (decoded: logs without spare capacity)
    cells, cells_held = traced(
        # (fresh key tuples and ints, as the state's own; kind strings are shared constants)
        lambda: {(k[0], int(str(k[1])), int(str(k[2]))): Cell.decode(c.encode())
                 for k, c in state.cells.items()})
    assert len(cells) == len(state.cells)
    restored = PartitionState(D)
    restored.cells = cells
    assert restored.nbytes()["cells"] == pytest.approx(cells_held, rel=0.05)


def test_view_cache_bytes(redis_server) -> None:  # type: ignore[no-untyped-def]
    """The serving view's decoded copy of every partition's cells (real Redis)."""
    from redis.asyncio import Redis

    from leadline.serving.view import ServingView

    state = _state(3000)

    async def run() -> tuple[ServingView, int]:
        redis = Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/0")
        view = ServingView(redis, f"bytes-{time.time_ns()}", 1)
        try:
            await view.publish(0, state.encoded(), whole=True)
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                cells = await view.read()
                del cells  # (the list read() returns is the caller's, not the view's)
                return view, tracemalloc.get_traced_memory()[0] - base
            finally:
                tracemalloc.stop()
        finally:
            await redis.aclose()

    view, held = asyncio.run(run())
    assert view.cached() == len(state.cells)
    assert view.nbytes() == pytest.approx(held, rel=0.05)
