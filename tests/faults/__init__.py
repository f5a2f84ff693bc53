"""Faults injected into real workers, brokers and Redis; what the fault tests share."""

from __future__ import annotations

from leadline.embedded.processes import Samples
from tests.support.worker import WorkerProcess, value


def folded(samples: Samples) -> float:
    """Events folded in: ``leadline_events_processed_total`` over every event name."""
    return sum(v for (n, _), v in samples.items() if n == "leadline_events_processed_total")


def processed(worker: WorkerProcess) -> float:
    """Events ``worker`` has folded in, as its ``/metrics`` says now."""
    return folded(worker.scrape())


def health(worker: WorkerProcess, metric: str) -> float:
    """One unlabelled sample of ``worker``'s ``/metrics`` now (0 when absent)."""
    return value(worker.scrape(), metric)
