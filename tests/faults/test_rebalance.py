"""Rebalance under load: 2 -> 1 -> 2 workers while traffic flows, no gauge ever dips.

Every ~200 ms every live worker is scraped. The watched gauges only grow during the
test: ``product_events``, ``product_conversions`` and ``product_revenue`` over the 30d
window (the generated events keep clear of the 30d edge, so none leaves the window
while the test runs; traffic only adds). "The truth known at that moment" is the
largest value any scrape had returned before this scrape started: the true value is
at least that, so a scrape more than 1 % below it is a dip a dashboard would show.
At the end every worker equals the batch oracle.

Also: a second worker joining a busy one, and two workers started together sharing the
work, each answering as the oracle does.
"""

from __future__ import annotations

import threading
import time
import urllib.error
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from leadline.embedded.services import Service
from reliability.harness import PacedSender, Samples, fetch, timed_scrape
from tests.faults import processed
from tests.support import oracle_catalog as oc
from tests.support.compare import mismatches
from tests.support.oracle import generate
from tests.support.worker import Pipeline, StartWorker, WorkerProcess, value, wait_for

pytestmark = pytest.mark.slow

WATCHED = ("product_events", "product_conversions", "product_revenue")
TOLERANCE = 0.01


@dataclass
class Scrape:
    worker: str
    started: float
    ended: float
    values: dict[tuple[str, frozenset[tuple[str, str]]], float]


class Poller(threading.Thread):
    def __init__(self, workers: list[WorkerProcess], every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.workers, self.every = workers, every
        self.scrapes: list[Scrape] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for w in list(self.workers):
                if w.proc is None or w.proc.poll() is not None:
                    continue
                started = time.monotonic()
                try:
                    samples, _ = timed_scrape(w.url("/metrics"), timeout=5)
                except (OSError, RuntimeError, urllib.error.URLError):
                    continue  # not listening yet, or stopping
                self.scrapes.append(Scrape(w.name, started, time.monotonic(), watched(samples)))
            self.halt.wait(self.every)


def watched(samples: Samples) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {k: v for k, v in samples.items()
            if k[0] in WATCHED and ("window", "30d") in k[1]}


def dips(scrapes: list[Scrape]) -> list[str]:
    """Scrapes more than 1 % below the best value known before they started."""
    out = []
    done = sorted(scrapes, key=lambda s: s.ended)
    for s in sorted(scrapes, key=lambda s: s.started):
        best: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for earlier in done:
            if earlier.ended >= s.started:
                break
            for k, v in earlier.values.items():
                best[k] = max(best.get(k, 0.0), v)
        for k, known in best.items():
            got = s.values.get(k, 0.0)
            if got < known * (1 - TOLERANCE):
                out.append(f"{s.worker} at {s.started:.1f}: {k[0]}{dict(k[1])} = {got}, "
                           f"already seen {known}")
    return out


def alive(*workers: WorkerProcess) -> None:
    """Fail at once, with the crash reason, if a worker exited on its own."""
    for w in workers:
        if w.proc is not None and w.proc.poll() is not None:
            crash = [line for line in w.log_tail(400).splitlines() if "Crashed reason" in line]
            raise AssertionError(f"worker {w.name} exited {w.proc.returncode}: "
                                 f"{crash[-1][-300:] if crash else w.log_tail(5)}")


def ready(worker: WorkerProcess, *others: WorkerProcess) -> bool:
    alive(worker, *others)
    try:
        return fetch(worker.url("/healthz"), timeout=2)[0] == 200
    except OSError:
        return False


def alive_workers(*workers: WorkerProcess) -> tuple[WorkerProcess, ...]:
    alive(*workers)
    return workers


def exact(truth, *workers: WorkerProcess) -> bool:  # type: ignore[no-untyped-def]
    alive(*workers)
    return all(not mismatches(w.scrape(), truth, time.time()) for w in workers)


def test_scale_out_a_second_worker_joins_a_busy_one(
    broker: Service, redis_server: Service, tmp_path: Path, start_worker: StartWorker
) -> None:
    pipeline = Pipeline(broker, redis_server, tmp_path)
    now = time.time()
    messages, truth = generate(now, seed=73, events=6000)
    more, truth_more = generate(now, seed=74, events=3000)
    first = start_worker(pipeline, "w1").wait_ready()
    pipeline.send(messages)
    wait_for(lambda: exact(truth, first), timeout=60, what="w1 exact")
    second = start_worker(pipeline, "w2")
    wait_for(lambda: ready(second, first), timeout=60, what="w2 ready")
    pipeline.send(more)
    truth.events += truth_more.events
    wait_for(lambda: exact(truth, first, second), timeout=60,
             what="both workers exact after scaling out")


def test_two_workers_give_the_same_answers_as_the_oracle_from_either(
    broker: Service, redis_server: Service, tmp_path: Path, start_worker: StartWorker
) -> None:
    pipeline = Pipeline(broker, redis_server, tmp_path)
    messages, truth = generate(time.time(), seed=31, events=10000)
    a = start_worker(pipeline, "a")
    b = start_worker(pipeline, "b")
    a.wait_ready()
    b.wait_ready()
    pipeline.send(messages)
    for w in (a, b):
        wait_for(lambda w=w: not mismatches(w.scrape(), truth, time.time()), timeout=90,
                 what=f"worker {w.name} to equal the oracle")
    share_a, share_b = processed(a), processed(b)
    assert share_a > 0 and share_b > 0, "both workers must have done part of the work"
    assert share_a + share_b >= len(truth.events)
    assert value(a.scrape(), "leadline_events_duplicate_total") + value(
        b.scrape(), "leadline_events_duplicate_total") >= truth.duplicates


def test_two_one_two_workers_under_load_never_dip_and_end_exact(
    broker: Service, redis_server: Service, tmp_path: Path, start_worker: StartWorker,
    at_teardown: ExitStack,
) -> None:
    pipeline = Pipeline.for_catalog(broker, redis_server, tmp_path)
    # The whole catalog: activation, funnels, subscriptions, surveys and the core.
    messages, truth = oc.generate(time.time(), seed=71, users=3500)
    a = start_worker(pipeline, "a")
    b = start_worker(pipeline, "b")
    live = [a, b]
    poller = Poller(live)
    at_teardown.callback(poller.halt.set)
    sender = PacedSender.of(pipeline.bootstrap, pipeline.topic, messages, rate=1000)
    a.wait_ready()
    b.wait_ready()
    poller.start()
    sender.start()
    at_teardown.callback(sender.finish)
    time.sleep(5)
    assert b.stop() == 0  # 2 -> 1, gracefully
    for _ in range(12):
        alive(a)
        time.sleep(0.5)
    c = start_worker(pipeline, "c")  # 1 -> 2
    live.append(c)
    sender.join(60)
    assert sender.error is None and sender.sent == len(messages)
    deadline = time.monotonic() + 30
    while (bad := [f"{w.name}: {m}" for w in alive_workers(a, c)
                   for m in oc.whole_mismatches(w.scrape(), truth, time.time())]):
        assert time.monotonic() < deadline, "\n".join(bad[:40])
        time.sleep(0.5)
    poller.halt.set()
    poller.join(10)
    assert a.proc is not None and a.proc.poll() is None, "worker a must not crash"
    assert c.proc is not None and c.proc.poll() is None, "worker c must not crash"
    per_worker = {w: sum(1 for s in poller.scrapes if s.worker == w) for w in "abc"}
    print(f"{len(poller.scrapes)} scrapes {per_worker}")
    assert all(per_worker.values()), per_worker
    assert dips(poller.scrapes) == []
