"""The shared context of one worker process: what its agents, timers and views close over.

Every ``register(context, ...)`` module of ``streams/`` reads its collaborators from
:class:`WorkerContext` instead of importing each other; ``streams/app.py`` builds it once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import faust

from leadline.config.definitions import Definitions
from leadline.config.settings import Settings
from leadline.events.decoder import Decoder
from leadline.serving.exposition import MetricsEndpoint
from leadline.serving.health import Health
from leadline.serving.view import ServingView
from leadline.streams.faust_adapter import ConsumerHooks
from leadline.streams.store import PartitionStore


@dataclass
class WorkerContext:
    """Everything one worker process holds."""

    settings: Settings
    definitions: Definitions
    app: faust.App
    #: What the batch consumer calls: handlers per topic, the checkpoint before commits.
    hooks: ConsumerHooks
    health: Health
    view: ServingView
    endpoint: MetricsEndpoint
    store: PartitionStore
    decoder: Decoder
    source: faust.TopicT
    dlq: faust.TopicT
    by_user: faust.TopicT
    #: Owned partitions whose serving view must be rewritten whole (maintenance timer).
    republish: set[int] = field(default_factory=set)
    ready: bool = False
    #: Held by ``aggregate`` for a whole batch; a revocation waits for it (handover.py).
    folding: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: Folded by-user offsets not yet in the table: (generation, partition, offsets),
    #: acked by the next checkpoint (``streams/checkpoint.py``).
    unacked: list[tuple[int, Any, list[int]]] = field(default_factory=list)
