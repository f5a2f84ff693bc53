"""Faults injected into real workers, brokers and Redis; what the fault tests share."""

from __future__ import annotations

import time
from dataclasses import dataclass

from leadline.embedded.processes import Samples
from tests.support.oracle import Truth, generate
from tests.support.worker import Pipeline, StartWorker, WorkerProcess, value, wait_for


def folded(samples: Samples) -> float:
    """Events folded in: ``leadline_events_processed_total`` over every event name."""
    return sum(v for (n, _), v in samples.items() if n == "leadline_events_processed_total")


def processed(worker: WorkerProcess) -> float:
    """Events ``worker`` has folded in, as its ``/metrics`` says now."""
    return folded(worker.scrape())


def health(worker: WorkerProcess, metric: str) -> float:
    """One unlabelled sample of ``worker``'s ``/metrics`` now (0 when absent)."""
    return value(worker.scrape(), metric)


@dataclass
class HalfSent:
    """A worker that has read the first half of a generated log; the rest is still to send."""

    worker: WorkerProcess
    pid: int
    messages: list[tuple[bytes | None, bytes]]
    truth: Truth
    half: int


def start_and_send_half(pipeline: Pipeline, start_worker: StartWorker, *, seed: int,
                        events: int) -> HalfSent:
    """Generate a log, start a worker, send the first half and wait until it is read."""
    messages, truth = generate(time.time(), seed=seed, events=events)
    half = len(messages) // 2
    worker = start_worker(pipeline).wait_ready()
    assert worker.proc is not None
    pid = worker.proc.pid
    pipeline.send(messages[:half])
    wait_for(lambda: health(worker, "leadline_events_received_total") == half,
             timeout=30, what="first half read")
    return HalfSent(worker, pid, messages, truth, half)
