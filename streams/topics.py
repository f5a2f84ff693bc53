"""Topics leadline reads and writes, created at start-up when missing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP

from leadline.config.settings import Settings
from leadline.streams.security import aiokafka_security

log = logging.getLogger("leadline.topics")


class BrokerUnreachable(RuntimeError):
    """The Kafka broker did not answer; the message says where we looked."""


def unreachable(settings: Settings, exc: BaseException) -> BrokerUnreachable:
    """The one-line error for a broker that cannot be reached or refuses the login."""
    reason = str(exc) or type(exc).__name__
    if settings.kafka_security_protocol != "PLAINTEXT":
        # aiokafka reports a refused SCRAM login as KeyError('v'), a bad certificate as SSLError
        reason = (f"{type(exc).__name__}: {reason} (LEADLINE_KAFKA_SECURITY_PROTOCOL="
                  f"{settings.kafka_security_protocol}: check the credentials / CA file)")
    return BrokerUnreachable(
        f"cannot reach the Kafka broker at {','.join(settings.bootstrap_servers)} "
        f"(LEADLINE_BROKER={settings.broker}): {reason}")


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10_000,
        **aiokafka_security(settings),
    )


async def ensure_topics(settings: Settings, timeout: float = 15.0) -> None:
    """Create the source, dead-letter and by-user topics if they do not exist yet.

    The source topic is created with ``settings.partitions`` partitions only when it
    is missing; an existing one is left as it is.
    """
    admin = _admin(settings)
    try:
        await asyncio.wait_for(admin.start(), timeout)
    except Exception as exc:  # refused, timed out, TLS or SASL refused (aiokafka: KeyError)
        with contextlib.suppress(Exception):
            await admin.close()
        raise unreachable(settings, exc) from None
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.topic, settings.dlq_topic, settings.by_user_topic]
        missing = [
            NewTopic(name, settings.partitions, 1) for name in wanted if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
    finally:
        await admin.close()


async def true_end_offsets(settings: Settings, reported: Mapping[TP, int],
                           timeout: float = 10.0) -> dict[TP, int]:
    """The real end offsets of partitions whose broker-reported ends may fall short.

    The embedded broker (tansu 0.6) reports a partition's end offset as the base offset
    of its last record batch + 1, so Faust's changelog recovery would stop short of the
    rest of the batch a worker wrote last, and lose it (a crashed worker's, or one that
    handed its partitions over). Reading from the reported end - 1 returns that whole
    batch; its last offset + 1 is the true end. On Kafka it is the reported end.
    """
    out = dict(reported)
    wanted = {TopicPartition(tp.topic, tp.partition): tp for tp, end in reported.items()
              if end is not None and end > 0}
    if not wanted:
        return out
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                enable_auto_commit=False, **aiokafka_security(settings))
    await consumer.start()
    try:
        consumer.assign(list(wanted))
        for atp, tp in wanted.items():
            consumer.seek(atp, reported[tp] - 1)
        pending = set(wanted)
        async with asyncio.timeout(timeout):
            while pending:
                fetched = await consumer.getmany(*pending, timeout_ms=500)
                for atp, records in fetched.items():
                    if records:
                        tp = wanted[atp]
                        out[tp] = max(out[tp], records[-1].offset + 1)
                        pending.discard(atp)
    except TimeoutError:
        log.warning("end offsets of %s not confirmed within %.0f s; using the broker's",
                    sorted(f"{tp.topic}/{tp.partition}" for tp in pending), timeout)
    finally:
        await consumer.stop()
    return out
