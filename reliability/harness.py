"""Tools shared by the soak run and the fault / hostile-input tests.

A paced background sender, scrapes that are timed and parsed, and a process's
resident memory: the measurements docs/reliability.md reports.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from leadline.embedded.processes import Samples, parse_metrics, proc_status_kib

Message = tuple[bytes | None, bytes]


def rss_kib(pid: int) -> int:
    """Resident set size of a process (VmRSS), KiB."""
    return proc_status_kib(pid, "VmRSS")


def fetch(url: str, *, headers: dict[str, str] | None = None,
          context: ssl.SSLContext | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET ``url``: (status, body); HTTP errors are answers too, not exceptions."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def timed_scrape(url: str, **kwargs: Any) -> tuple[Samples, float]:
    """Scrape and parse; also how long the worker took to answer (seconds)."""
    started = time.perf_counter()
    status, body = fetch(url, **kwargs)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"{url}: HTTP {status}")
    return parse_metrics(body.decode()), elapsed


def sample(samples: Samples, metric: str, /, **labels: str) -> float:
    """One sample's value (0 when absent); any label name, ``name`` included."""
    return samples.get((metric, frozenset(labels.items())), 0.0)


def series_count(samples: Samples, prefix: str = "") -> int:
    return sum(1 for name, _ in samples if name.startswith(prefix))


async def produce(bootstrap: str, topic: str, messages: Sequence[Message],
                  **client: Any) -> int:
    """Send every message and wait for all acknowledgements."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10,
                                max_request_size=4 * 1024 * 1024, **client)
    await producer.start()
    try:
        for i in range(0, len(messages), 20_000):
            futures = [await producer.send(topic, value=v, key=k)
                       for k, v in messages[i : i + 20_000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(messages)


class PacedSender(threading.Thread):
    """Sends messages at ``rate`` per second from a background thread.

    ``source(now, n)`` returns the next ``n`` messages (a list slice, or a traffic
    generator); the sender stops when it returns fewer than asked for, or on
    :meth:`finish`. ``sent`` counts acknowledged messages; an error stops the thread
    and is kept in ``error``.
    """

    def __init__(self, bootstrap: str, topic: str,
                 source: Callable[[float, int], Sequence[Message]],
                 rate: float, tick: float = 0.1, **client: Any) -> None:
        super().__init__(daemon=True, name="paced-sender")
        self.bootstrap, self.topic, self.source, self.rate = bootstrap, topic, source, rate
        self.tick, self.client = tick, client
        self.sent = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._paused = threading.Event()
        self.done = threading.Event()

    @classmethod
    def of(cls, bootstrap: str, topic: str, messages: Sequence[Message], rate: float,
           **client: Any) -> PacedSender:
        position = [0]

        def take(now: float, n: int) -> list[Message]:
            chunk = list(messages[position[0] : position[0] + n])
            position[0] += len(chunk)
            return chunk

        return cls(bootstrap, topic, take, rate, **client)

    def pause(self) -> None:
        """Stop sending until :meth:`resume`; what was due meanwhile is never sent."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def finish(self, timeout: float = 30.0) -> None:
        self._halt.set()
        self.join(timeout)

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by the test that owns the sender
            self.error = exc
        finally:
            self.done.set()

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=10,
                                    max_request_size=4 * 1024 * 1024, **self.client)
        await producer.start()
        try:
            started, base = time.monotonic(), 0  # the pace counts from the last resume
            while not self._halt.is_set():
                if self._paused.is_set():
                    await asyncio.sleep(self.tick)
                    started, base = time.monotonic(), self.sent
                    continue
                due = int((time.monotonic() - started) * self.rate) - (self.sent - base)
                if due > 0:
                    batch = self.source(time.time(), due)
                    futures = [await producer.send(self.topic, value=v, key=k) for k, v in batch]
                    await asyncio.gather(*futures)
                    self.sent += len(batch)
                    if len(batch) < due:
                        return
                await asyncio.sleep(self.tick)
        finally:
            await producer.stop()
