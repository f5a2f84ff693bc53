"""Topics leadline reads and writes, created at start-up when missing."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from config.settings import Settings
from streams.security import aiokafka_security


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
        changelog = f"{settings.app_id}-state-changelog"
        if changelog in existing:
            await fence_changelog(settings, changelog)
    finally:
        await admin.close()


async def fence_changelog(settings: Settings, changelog: str) -> None:
    """End every changelog partition with a one-record batch before recovery reads it.

    The embedded broker (tansu 0.6) reports a partition's end offset as the base offset
    of its last record batch + 1, so Faust's recovery would stop short of the rest of
    a batch a crashed worker wrote last, and lose it. A tombstone for a key leadline
    never uses, sent alone, makes that reported end the true end. Harmless on Kafka.
    """
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=0,
                                **aiokafka_security(settings))
    await producer.start()
    try:
        for p in sorted(await producer.partitions_for(changelog)):
            await producer.send_and_wait(changelog, key=f"{p}|f|fence".encode(), value=None,
                                         partition=p)
    finally:
        await producer.stop()
