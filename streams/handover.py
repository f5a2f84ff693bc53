"""Partitions moving between workers: hand over cleanly, take over only what is recovered.

Two rules make a rebalance under load exact:

- **Giving a partition up.** Faust does not wait for our batch handlers (they are not
  agents, see ``streams/faust_adapter.py``), so on revocation we wait for the ``aggregate``
  batch in flight and flush the producer, so its changelog writes reach the broker
  before the next owner reads them. Once the new assignment is known, the partitions
  that went elsewhere are forgotten, states and table records: one that comes back
  later is restored afresh from a changelog that holds what the other owner did
  meanwhile, never from our stale copy.
- **Taking a partition over.** Faust calls ``on_recover`` also for a recovery that a
  newer rebalance has already superseded (``Recovery.on_recovery_completed`` runs the
  table callbacks before it checks the generation). A newly assigned partition may not
  be restored yet (``streams/restore.py``), so such a call is ignored: the current
  recovery calls again when every partition is restored.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

from faust.types import TP

from leadline.streams.context import WorkerContext
from leadline.streams.faust_adapter import recovery_generation
from leadline.streams.maintenance import owned_partitions, republish

log = logging.getLogger("leadline.handover")

#: How long a revocation waits for the batch in flight (s); Faust's own rebalance
#: budget is the session timeout.
IN_FLIGHT_WAIT = 10.0


def recovery_superseded(app: Any) -> bool:
    """True when a rebalance newer than the recovery that just completed is pending."""
    recovery = app.tables.recovery
    return bool(recovery.signal_recovery_start.is_set()
                or recovery_generation(app) != app.consumer_generation_id)


def register(worker: WorkerContext, table: Any) -> None:
    app, store = worker.app, worker.store

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        revoked: set[TP] = args[0]
        # aiokafka's eager protocol revokes the whole assignment at every rebalance.
        if not any(tp.topic == worker.settings.by_user_topic for tp in revoked):
            return
        try:
            async with asyncio.timeout(IN_FLIGHT_WAIT):
                async with worker.folding:  # the aggregate batch in flight, if any
                    await app.producer.flush()
        except TimeoutError:
            log.warning("rebalance: the batch in flight did not finish within %.0f s; "
                        "the next owner replays it", IN_FLIGHT_WAIT)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        assigned: set[TP] = args[0]
        mine = {tp.partition for tp in assigned if tp.topic == worker.settings.by_user_topic}
        gone = set(store.states) - mine
        if gone:
            store.forget(gone)
            worker.republish -= gone
            log.info("handed over partitions %s", sorted(gone))

    @table.on_recover
    async def on_recovered() -> None:
        if recovery_superseded(app):
            log.info("recovery superseded by a newer rebalance; waiting for its recovery")
            return
        owned = owned_partitions(worker)
        unrestored = owned - set(store.states) - set(store.restoring)
        if unrestored:
            # Taken live empty, they would serve and checkpoint nothing over the
            # changelog's state; left out, their events are refused and fetched again.
            log.error("partitions %s assigned but not restored: not taken live",
                      sorted(unrestored))
        loaded = store.rebuild(owned - unrestored)
        gc.freeze()  # recovered state is long-lived: keep it out of full collections
        worker.republish |= loaded
        await republish(worker, set(worker.republish))
        worker.ready = True
