"""``create_app(settings, definitions)``: the Faust app with its topics, table and agents.

Two batch agents (whole fetches, ``streams/faust_adapter.py``):

- ``ingest`` reads the source topic (keyed by anything), validates, sends rejects to
  the dead-letter topic and valid events, re-keyed by user identity, to the
  internal by-user topic. So every copy of an event and all of a user's events
  meet in one partition, whatever the producer's key was.
- ``aggregate`` reads the by-user topic, drops duplicate ids, folds events into the
  partition's cells and writes changed cells to Redis at once; the ``state`` table
  is written at each commit (``streams/checkpoint.py``).

Offsets are committed only after what they changed was sent and confirmed (the
producer is flushed, the table checkpointed before each commit), so a crash
replays, never loses; replays are made exact by the cell stamps and the
id-to-first-offset map.

The modules that register on the app (agents, handover, maintenance, web, connectivity)
receive the :class:`~leadline.streams.context.WorkerContext` built here and never
import this module, so ``streams/`` has no import cycle.
"""

from __future__ import annotations

import logging
from functools import partial
from importlib.metadata import PackageNotFoundError, version

import faust
from redis.asyncio import Redis

from leadline.aggregators.indicators import Indicators
from leadline.config.definitions import Definitions
from leadline.config.settings import Settings
from leadline.events.decoder import Decoder
from leadline.serving.exposition import MetricsEndpoint
from leadline.serving.health import Health
from leadline.serving.view import ServingView
from leadline.state.local import BUDGET_SHARE, LocalStore
from leadline.streams import agents, connectivity, handover, maintenance, web
from leadline.streams.context import WorkerContext
from leadline.streams.faust_adapter import BatchTransport, ConsumerHooks
from leadline.streams.restore import ChangelogStore, Restorer
from leadline.streams.security import faust_credentials, web_ssl_context
from leadline.streams.store import PartitionStore
from leadline.streams.topics import true_end_offsets

log = logging.getLogger("leadline")


def leadline_version() -> str:
    try:
        return version("leadline")
    except PackageNotFoundError:
        return "0+unknown"


def create_app(settings: Settings, definitions: Definitions) -> WorkerContext:
    """Build the app; nothing connects until it is started."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(0.5, settings.session_timeout / 5),
        broker_commit_interval=settings.commit_interval,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=settings.standby_replicas,
        stream_buffer_maxsize=max(settings.batch_max * 2, 4096),
        broker_max_poll_records=settings.batch_max,
        producer_linger_ms=20,
        producer_max_batch_size=1024 * 1024,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        web_ssl_context=web_ssl_context(settings),
        # Faust's built-in /table and /router pages would show state to anyone.
        web_tables_enabled=False,
        web_router_enabled=False,
        broker_credentials=faust_credentials(settings),
        datadir=str(settings.data_dir),
        key_serializer="raw",
        value_serializer="raw",
    )
    # Whole fetches to our batch handlers instead of Faust's per-message path; the
    # handlers and the checkpoint are added to the hooks by agents.register.
    hooks = ConsumerHooks(end_offsets=partial(true_end_offsets, settings),
                          fetch_max_wait_ms=round(settings.batch_seconds * 1000))
    app.transport = BatchTransport(app.conf.broker_consumer, app, hooks)
    source = app.topic(settings.topic, key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    dlq = app.topic(settings.dlq_topic, key_type=bytes, value_type=bytes,
                    key_serializer="raw", value_serializer="raw")
    by_user = app.topic(settings.by_user_topic, key_type=bytes, value_type=bytes,
                        key_serializer="raw", value_serializer="raw",
                        partitions=settings.partitions, internal=True)
    # The table is the changelog only: partitions are restored in bulk into the
    # partition store, which holds the state (streams/restore.py).
    table = app.Table("state", partitions=settings.partitions, key_type=bytes,
                      value_type=bytes, store="leadline://state")
    redis = Redis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    health = Health(leadline_version())
    health.memory_budget = settings.memory_budget
    hooks.on_fetch_failed = health.fetch_failed
    hooks.on_fetch_resumed = health.fetch_resumed
    view = ServingView(redis, settings.redis_prefix, settings.partitions)
    local = LocalStore(settings.data_dir / "state",
                       round(settings.memory_budget * BUDGET_SHARE))
    store = PartitionStore(definitions, local, ids=settings.data_dir / "ids",
                           horizon=settings.dedupe_horizon_seconds)
    changelog_store = table.data
    assert isinstance(changelog_store, ChangelogStore), "the leadline:// store is not installed"
    changelog_store.restorer = Restorer(settings, store)
    context = WorkerContext(
        settings=settings,
        definitions=definitions,
        app=app,
        hooks=hooks,
        health=health,
        view=view,
        # Scrapes use the owned partitions' cells as folded (serving/view.py).
        endpoint=MetricsEndpoint(view, Indicators(definitions), health,
                                 settings.scrape_cache_seconds,
                                 local=lambda: {p: s.cells for p, s in store.states.items()}),
        store=store,
        decoder=Decoder(definitions),
        source=source,
        dlq=dlq,
        by_user=by_user,
    )
    # Faust's default (100) makes every send_soon of a large batch wait for a flush.
    app.producer.buffer.max_messages = settings.batch_max * 2
    agents.register(context, table)
    handover.register(context, table)
    maintenance.register(context)
    web.register(context)
    connectivity.register(context, settings.publish_interval)
    return context
