"""``python -m bench.probe``: ``leadline worker``, plus a progress log of its batch handlers.

The same entry point and code as ``leadline worker`` (``leadline.cli.main.main(["worker"])``);
the only addition is a wrapper around the two batch handlers that appends one line
per handled fetch to ``$BENCH_PROGRESS``:

    <handler> <start epoch s> <end epoch s> <records in the fetch> <messages done>

where *messages done* is processed + invalid + ignored + duplicate so far in this worker (every
source message ends in exactly one of them). Throughput is read from these lines:
first handler start to last handler end. Cost: one ``time.time()`` pair and one short
line per fetch of up to ``LEADLINE_BATCH_MAX`` records. Polling ``/metrics`` instead
would cost the worker a Redis read and a full indicator computation per poll.
"""

from __future__ import annotations

import os
import time
from typing import Any


def install(path: str) -> None:
    import leadline.streams.agents as agents

    original = agents.register

    def register(worker: Any, table: Any) -> None:
        original(worker, table)
        health = worker.health
        out = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the worker

        def done() -> int:
            return (sum(health.processed.values()) + sum(health.invalid.values())
                    + sum(health.ignored.values()) + health.duplicates)

        def wrap(label: str, handler: Any) -> Any:
            async def timed(batch: Any) -> Any:
                t0 = time.time()
                refused = await handler(batch)
                t1 = time.time()
                n = sum(len(records) for _, records in batch)
                out.write(f"{label} {t0:.6f} {t1:.6f} {n} {done()}\n")
                return refused
            return timed

        # Wrapped in place: whether a topic's handler acks itself is the hooks' business
        # (ConsumerHooks.self_acking), so the production commit path is measured.
        handlers = worker.hooks.handlers
        settings = worker.settings
        handlers[settings.topic] = wrap("ingest", handlers[settings.topic])
        handlers[settings.by_user_topic] = wrap("aggregate", handlers[settings.by_user_topic])

    agents.register = register


def main() -> None:
    path = os.environ.get("BENCH_PROGRESS")
    if path:
        install(path)
    from leadline.cli.main import main as leadline_main

    leadline_main(["worker"])


if __name__ == "__main__":
    main()
