"""``leadline send``: publish JSON lines as they are, keyed by their user id when present."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import orjson
from aiokafka import AIOKafkaProducer

from leadline.config.settings import Settings
from leadline.streams.security import aiokafka_security
from leadline.streams.topics import unreachable


def key_of(line: bytes) -> bytes | None:
    """The message key: ``user_id`` / ``userId``, else ``anonymous_id``; None if unreadable."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    for field in ("user_id", "userId", "anonymous_id", "anonymousId"):
        value = obj.get(field)
        if isinstance(value, str) and value:
            return value.encode()
    return None


async def send_lines(settings: Settings, lines: Iterable[bytes], topic: str) -> int:
    """Send every non-blank line unchanged (bad ones too: the worker dead-letters them)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                linger_ms=5, max_request_size=2 * 1024 * 1024,
                                **aiokafka_security(settings))
    try:
        await asyncio.wait_for(producer.start(), 15)
    except Exception as exc:  # unreachable, TLS refused, SASL login refused (aiokafka: KeyError)
        with contextlib.suppress(Exception):
            await producer.stop()
        raise unreachable(settings, exc) from None
    sent = 0
    try:
        pending = []
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            pending.append(await producer.send(topic, value=line, key=key_of(line)))
            sent += 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent
