"""Compressed batches through a real worker (SPEC section 1: "Producers may compress
batches with any Kafka codec"), and a batch the worker cannot decode.

Each codec's corpus is produced with aiokafka's ``compression_type`` into the source
topic, after the previous one has settled, and the worker's ``/metrics`` must equal the
oracle for everything sent so far; the dead letters of every codec keep their original
(decompressed) bytes. The worker's own producer re-produces to the by-user and
dead-letter topics uncompressed, so the product metrics equal to the oracle also show
that hop working on records that came in compressed.

Then a worker that cannot decode snappy (``cramjam`` blocked by a ``sitecustomize`` on
its ``PYTHONPATH``): the partition holding the snappy batch stalls at that batch's offset,
``/metrics`` says so, one log line names it, the other partitions and the records before
the batch are counted, and a worker started with the codec reads it all, exactly.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.compare import mismatches
from tests.support.oracle import Truth, generate
from tests.support.worker import ROOT, Pipeline, WorkerProcess, value, wait_for

pytestmark = pytest.mark.slow

CODECS = (None, "gzip", "snappy", "lz4", "zstd")
Messages = list[tuple[bytes | None, bytes]]


async def produce(bootstrap: str, topic: str, messages: Messages, codec: str | None,
                  partition: int | None = None) -> None:
    """``messages`` in as few batches as the producer makes, compressed with ``codec``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type=codec,
                                linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=v, key=k, partition=partition)
                   for k, v in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def merged(truths: list[Truth]) -> Truth:
    out = Truth()
    for t in truths:
        out.events += t.events
        for reason, n in t.invalid.items():
            out.invalid[reason] += n
        out.duplicates += t.duplicates
        out.sent += t.sent
    return out


def settle(worker: WorkerProcess, received: int, truth: Truth) -> list[str]:
    """What is still wrong once ``received`` messages are in (empty: all equal the oracle)."""
    try:
        wait_for(lambda: value(worker.scrape(), "leadline_events_received_total") == received,
                 timeout=30, interval=0.25, what=f"{received} messages received")
        wait_for(lambda: not mismatches(worker.scrape(), truth, time.time()), timeout=15,
                 interval=0.25, what="metrics to equal the oracle")
    except AssertionError as exc:
        return [str(exc)[:2000]]
    return []


@pytest.fixture(scope="module")
def run(broker, redis_server, tmp_path_factory):  # type: ignore[no-untyped-def]
    """One worker; each codec's corpus sent after the previous settled. Yields the
    pipeline, every message sent, the merged truth and, per codec, what was still wrong
    (an empty list: the metrics equal the oracle of everything sent so far)."""
    pipeline = Pipeline(broker, redis_server, tmp_path_factory.mktemp("compression"))
    with pipeline.worker() as worker:
        worker.wait_ready()
        sent: Messages = []
        truths: list[Truth] = []
        problems: dict[str, list[str]] = {}
        for i, codec in enumerate(CODECS):
            # Distinct event ids per codec (the seed is in them); one bad event per reason.
            messages, truth = generate(time.time(), seed=100 + i, users=400, events=1200,
                                       bad_per_reason=1)
            asyncio.run(produce(pipeline.bootstrap, pipeline.topic, messages, codec))
            sent += messages
            truths.append(truth)
            problems[str(codec)] = settle(worker, len(sent), merged(truths))
            worker.check()
        yield pipeline, worker, sent, merged(truths), problems


def test_every_codec_gives_metrics_equal_to_the_oracle(run) -> None:  # type: ignore[no-untyped-def]
    _, worker, sent, truth, problems = run
    assert problems == {str(codec): [] for codec in CODECS}
    samples = worker.scrape()
    assert value(samples, "leadline_events_received_total") == len(sent)
    for reason, n in truth.invalid.items():
        assert value(samples, "leadline_events_invalid_total", reason=reason) == n, reason
    assert value(samples, "leadline_events_duplicate_total") == truth.duplicates
    assert not [k for k, v in samples.items() if k[0] == "leadline_partition_stalled" and v]
    assert not [k for k in samples if k[0] == "leadline_fetch_errors_total"]


def test_dead_letters_of_compressed_input_keep_the_original_bytes(run) -> None:  # type: ignore[no-untyped-def]
    pipeline, _, sent, truth, _ = run
    expected = sum(truth.invalid.values())

    envelopes = pipeline.read_dlq(expected, timeout=20)
    assert len(envelopes) == expected
    originals = {v for _, v in sent}
    by_reason: dict[str, int] = {}
    for env in envelopes:
        assert base64.b64decode(env["value_b64"]) in originals
        assert env["source"]["topic"] == pipeline.topic
        by_reason[env["reason"]] = by_reason.get(env["reason"], 0) + 1
    assert by_reason == dict(truth.invalid)


BLOCK_CRAMJAM = '''\
"""Test only: this interpreter has no snappy, lz4 or zstd (aiokafka takes all three
from cramjam), as on a worker installed without aiokafka's codec extras."""
import builtins

_import = builtins.__import__


def _no_cramjam(name, *args, **kwargs):
    if name == "cramjam" or name.startswith("cramjam."):
        raise ImportError("cramjam is blocked for this test")
    return _import(name, *args, **kwargs)


builtins.__import__ = _no_cramjam
'''


def events(tag: str, n: int) -> Messages:
    now = time.time()
    return [(f"{tag}-user-{i % 7}".encode(),
             orjson.dumps({"event_id": f"{tag}-{i}", "name": "session_start",
                           "user_id": f"{tag}-user-{i % 7}", "timestamp": now - 5}))
            for i in range(n)]


def stalled(worker: WorkerProcess, topic: str) -> dict[int, float]:
    """``leadline_partition_stalled`` of ``topic`` by partition (the worker must be up)."""
    worker.check()
    return {int(dict(labels)["partition"]): v for (name, labels), v in worker.scrape().items()
            if name == "leadline_partition_stalled" and dict(labels)["topic"] == topic}


def test_a_batch_the_worker_cannot_decode_stalls_its_partition_not_the_worker(
        broker, redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    block = tmp_path / "no-cramjam"
    block.mkdir()
    (block / "sitecustomize.py").write_text(BLOCK_CRAMJAM)
    pipeline = Pipeline(broker, redis_server, tmp_path,
                        extra_env={"PYTHONPATH": f"{block}{os.pathsep}{ROOT}"})
    topic = pipeline.topic

    def send(messages: Messages, codec: str | None, partition: int) -> None:
        asyncio.run(produce(pipeline.bootstrap, topic, messages, codec, partition))

    before, snappy, after = events("p1-before", 20), events("p1-snappy", 100), events(
        "p1-after", 20)
    elsewhere = events("p0", 40) + events("p2", 30)
    with pipeline.worker("nocodec") as worker:
        worker.wait_ready()
        send(before, None, 1)  # offsets 0..19 of partition 1
        send(snappy, "snappy", 1)  # 20..119: one snappy batch this worker cannot decode
        send(after, None, 1)
        send(elsewhere[:40], None, 0)
        send(elsewhere[40:], "gzip", 2)  # gzip needs no extra library

        wait_for(lambda: stalled(worker, topic).get(1) == 1.0, timeout=30,
                 what="partition 1 reported stalled")
        # Retried (1 s, then 2 s...), still one log line; the worker stays up.
        wait_for(lambda: value(worker.scrape(), "leadline_fetch_errors_total", topic=topic,
                               partition="1", error="UnsupportedCodecError") >= 3,
                 timeout=20, what="three failed fetches of partition 1")
        # The records before the batch and the other partitions are read and counted.
        wait_for(lambda: value(worker.scrape(), "leadline_events_received_total")
                 == len(before) + len(elsewhere), timeout=20, what="the readable events")
        send(events("p0-later", 10), None, 0)  # a stalled partition holds up no other
        wait_for(lambda: value(worker.scrape(), "leadline_events_received_total")
                 == len(before) + len(elsewhere) + 10, timeout=20,
                 what="events sent while partition 1 is stalled")
        wait_for(lambda: stalled(worker, topic) == {0: 0.0, 1: 1.0, 2: 0.0, 3: 0.0},
                 timeout=10, what="partition 1 alone stalled")
        worker.check()
        log = worker.log_path.read_text(errors="replace")
        lines = [line for line in log.splitlines() if "cannot read partition" in line]
        assert len(lines) == 1, lines
        assert f"{topic}[1] at offset 20" in lines[0]
        assert "Libraries for snappy compression codec not found" in lines[0]

    # The codec installed (the block gone): a new worker reads partition 1 from offset
    # 20 on and every event counts once.
    pipeline.extra_env = {}
    with pipeline.worker("codec") as worker:
        worker.wait_ready()
        total = len(before) + len(snappy) + len(after) + len(elsewhere) + 10

        def counted() -> float:
            return value(worker.scrape(), "product_events", window="5m", name="session_start")

        wait_for(lambda: counted() == total, timeout=40,
                 what=f"all {total} events counted once")
        assert set(stalled(worker, topic).values()) <= {0.0}
        assert "cannot read partition" not in worker.log_path.read_text(errors="replace")
