"""Topics leadline reads and writes, created at start-up when missing."""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from config.settings import Settings
from streams.security import aiokafka_security


class BrokerUnreachable(RuntimeError):
    """The Kafka broker did not answer; the message says where we looked."""


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
    except (TimeoutError, KafkaConnectionError, KafkaError, OSError) as exc:
        raise BrokerUnreachable(
            f"cannot reach the Kafka broker at {','.join(settings.bootstrap_servers)} "
            f"(LEADLINE_BROKER={settings.broker}): {exc or type(exc).__name__}"
        ) from None
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
