"""The serving view against a real Redis: stamp-checked writes, and reads that use the
owned partitions' cells as folded (no second, decoded copy of them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from leadline.aggregators.cells import Cell
from leadline.serving.view import ServingView

A, B, C = ("events", 60, 0), ("events", 60, 60), ("events", 60, 120)


def _cells(**stamps: int) -> dict[tuple[str, int, int], Cell]:
    keys = {"a": A, "b": B, "c": C}
    return {keys[k]: Cell(stamp, {"x": stamp}) for k, stamp in stamps.items()}


def _encoded(cells: dict[Any, Cell]) -> dict[Any, tuple[int, bytes]]:
    return {key: (cell.offset, cell.encode()) for key, cell in cells.items()}


def with_view(redis_server: Any, test: Callable[[ServingView], Awaitable[None]]) -> None:
    async def run() -> None:
        redis = Redis.from_url(f"redis://127.0.0.1:{redis_server.port}/0")
        try:
            await test(ServingView(redis, f"view-{time.time_ns()}", 2))
        finally:
            await redis.aclose()
    asyncio.run(run())


def test_owned_cells_are_read_as_folded_unless_redis_is_newer(redis_server) -> None:  # type: ignore[no-untyped-def]
    async def test(view: ServingView) -> None:
        await view.publish(0, _encoded(_cells(a=5, b=9)), whole=True)
        await view.publish(1, _encoded(_cells(a=3)), whole=True)
        # partition 0 is ours: A folded further than Redis, B behind it (a new owner
        # replaying), C not published yet
        local = _cells(a=7, b=4, c=8)
        got = await view.read({0: local})
        by_source = {(key, cell.offset): cell for key, cell in got}
        assert set(by_source) == {(A, 7), (B, 9), (C, 8), (A, 3)}
        assert by_source[(A, 7)] is local[A] and by_source[(C, 8)] is local[C]
        assert view.cached() == 2            # B of partition 0, A of partition 1
        # the owner catches up: nothing of partition 0 is held twice any more
        local[B] = Cell(9, {"x": 9})
        got = await view.read({0: local})
        assert view.cached() == 1 and sorted(c.offset for _, c in got) == [3, 7, 8, 9]
        # not ours any more: everything from Redis
        got = await view.read({})
        assert view.cached() == 3 and sorted(c.offset for _, c in got) == [3, 5, 9]
    with_view(redis_server, test)


def test_an_older_stamp_never_overwrites_a_newer_one(redis_server) -> None:  # type: ignore[no-untyped-def]
    async def test(view: ServingView) -> None:
        await view.publish(0, _encoded(_cells(a=9)), whole=True)
        await view.publish(0, _encoded(_cells(a=4)))   # a worker that lost the partition
        got = await view.read()
        assert [(key, cell.offset) for key, cell in got] == [(A, 9)]
    with_view(redis_server, test)
