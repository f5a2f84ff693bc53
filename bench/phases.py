"""The measurements, one function per phase; each returns a JSON-ready dict.

Every phase runs on the run's broker and Redis with its own app id, records the
1-minute load average (``uptime``) when it ends, and stops its processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench import workload
from bench.kafka import preload, produce_steadily
from bench.processes import Fleet, Proc, handler_stats, read_progress
from bench.profile import summarize
from leadline.embedded.processes import Samples


@dataclass
class Context:
    bootstrap: str
    redis_url: str
    workdir: Path
    seed: int
    partitions: int = 4
    session_timeout: float | None = None  # None: leadline's default (10 s)

    def fleet(self, label: str, topic: str) -> Fleet:
        return Fleet(f"b{label}-{uuid.uuid4().hex[:6]}", topic, self.bootstrap, self.redis_url,
                     self.workdir, self.partitions, self.session_timeout)


def load() -> list[float]:
    """``uptime``'s load averages (1, 5, 15 min)."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_seconds(procs: list[Proc]) -> float:
    total = 0
    for proc in procs:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / os.sysconf("SC_CLK_TCK")


def preload_mixed(ctx: Context, topic: str, n: int) -> dict[str, Any]:
    t = time.time()
    written = preload(ctx.bootstrap, topic, ctx.partitions,
                      workload.mixed(n, time.time(), ctx.seed))
    return {"events": written, "seconds": round(time.time() - t, 1)}


def _run_to_completion(procs: list[Proc], n: int, timeout: float) -> dict[str, Any]:
    """Start ``procs`` together, wait until their progress logs count ``n`` messages."""
    for proc in procs:
        proc.start()
    paths = [p.progress for p in procs if p.progress is not None]
    deadline = time.monotonic() + timeout
    cpu0 = None
    while True:
        for proc in procs:
            proc.check()
        progress = read_progress(paths)
        if progress.first_start is not None and cpu0 is None:
            cpu0 = cpu_seconds(procs)
        if progress.done >= n:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {progress.done}/{n} messages done in {timeout:.0f}s:\n"
                               f"{procs[0].log_tail()}")
        time.sleep(0.2)
    cpu1 = cpu_seconds(procs)
    time.sleep(0.5)
    progress = read_progress(paths)
    assert progress.first_start is not None and progress.last_end is not None
    seconds = progress.last_end - progress.first_start
    return {
        "events": n, "done": progress.done, "seconds": round(seconds, 2),
        "events_per_s": round(n / seconds), "cpu_seconds": round(cpu1 - (cpu0 or 0.0), 1),
        "handlers": handler_stats(progress), "load": load(),
    }


def throughput(ctx: Context, topic: str, n: int, workers: int) -> dict[str, Any]:
    """``workers`` leadline workers over the pre-loaded topic: first to last event processed."""
    with ctx.fleet(f"tp{workers}", topic) as fleet:
        procs = [fleet.leadline(f"w{i}") for i in range(workers)]
        result = _run_to_completion(procs, n, timeout=300 + n / 500)
        result["done_per_worker"] = [read_progress([p.progress]).done for p in procs
                                     if p.progress is not None]
        samples = [p.scrape() for p in procs]
        result["metrics_done"] = int(sum(_done(s) for s in samples))
        result["workers"] = workers
    return result


def _done(s: Samples) -> float:
    return sum(v for (name, _), v in s.items() if name in (
        "leadline_events_processed_total", "leadline_events_invalid_total",
        "leadline_events_duplicate_total", "leadline_messages_ignored_total"))


def idiomatic(ctx: Context, topic: str, n: int) -> dict[str, Any]:
    """bench/idiomatic_faust.py over the same pre-loaded topic."""
    with ctx.fleet("idio", topic) as fleet:
        proc = fleet.idiomatic("w0", expected=n)
        return _run_to_completion([proc], n, timeout=300 + n / 200)


_EVENTS_5M = re.compile(rb'^product_events\{([^}]*)\} (\S+)$', re.M)


def visible_events(body: bytes) -> int:
    """Sum of ``product_events{window="5m"}`` over names in a /metrics body."""
    return int(sum(float(v) for labels, v in _EVENTS_5M.findall(body) if b'window="5m"' in labels))


async def _freshness(proc: Proc, bootstrap: str, topic: str, partitions: int, rate: float,
                     seconds: float, seed: int, poll: float) -> tuple[list, list, list]:
    import aiohttp

    rng = random.Random(seed)
    polls: list[tuple[float, int]] = []
    durations: list[float] = []
    stop = asyncio.Event()

    async def poller() -> None:
        async with aiohttp.ClientSession() as session:
            while not stop.is_set():
                t0 = time.time()
                async with session.get(proc.url("/metrics")) as resp:
                    body = await resp.read()
                t1 = time.time()
                polls.append((t1, visible_events(body)))
                durations.append(t1 - t0)
                await asyncio.sleep(max(0.0, poll - (time.time() - t0)))

    task = asyncio.create_task(poller())
    produced = await produce_steadily(
        bootstrap, topic, partitions, rate, seconds,
        lambda start, k, now: workload.live(rng, start, k, now))
    total = produced[-1][1]
    deadline = time.time() + 30
    while time.time() < deadline and (not polls or polls[-1][1] < total):
        await asyncio.sleep(poll)
    stop.set()
    await task
    return produced, polls, durations


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def freshness(ctx: Context, rate: float, seconds: float, poll: float = 0.1) -> dict[str, Any]:
    """Produce ``rate`` events/s for ``seconds``; for each produce tick, the time until
    ``/metrics`` counts every event produced up to and including that tick. Ticks of the
    first ``min(5 s, seconds / 4)`` (warm-up) are not counted."""
    warmup = min(5.0, seconds / 4)
    topic = f"live-{uuid.uuid4().hex[:6]}"
    with ctx.fleet("fresh", topic) as fleet:
        proc = fleet.leadline("w0").start()
        proc.wait_healthy()
        produced, polls, durations = asyncio.run(_freshness(
            proc, ctx.bootstrap, topic, ctx.partitions, rate, seconds, ctx.seed, poll))
        assert proc.progress is not None
        handlers = handler_stats(read_progress([proc.progress]))
    start = produced[0][0]
    latencies, missing, j = [], 0, 0
    for t_produce, cumulative in produced:
        while j < len(polls) and (polls[j][1] < cumulative or polls[j][0] < t_produce):
            j += 1
        if t_produce < start + warmup:
            continue
        if j == len(polls):
            missing += 1
            continue
        latencies.append(polls[j][0] - t_produce)
    achieved = produced[-1][1] / (produced[-1][0] - start) if len(produced) > 1 else 0.0
    return {
        "rate": rate, "seconds": seconds, "warmup_seconds": warmup, "produced": produced[-1][1],
        "achieved_rate": round(achieved), "samples": len(latencies), "never_visible": missing,
        "p50_s": round(percentile(latencies, 0.5), 3) if latencies else None,
        "p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None,
        "poll_interval_s": poll, "scrape_mean_s": round(statistics.fmean(durations), 4),
        "visible_at_end": polls[-1][1] if polls else 0, "handlers": handlers, "load": load(),
    }


def startup(ctx: Context, repeats: int) -> dict[str, Any]:
    """``leadline worker`` launch to first /healthz 200, fresh app id and topic each time."""
    times = []
    for _ in range(repeats):
        with ctx.fleet("ready", f"ready-{uuid.uuid4().hex[:6]}") as fleet:
            proc = fleet.leadline("w0", probe=False).start()
            times.append(proc.wait_healthy() - proc.started_at)
    return {"runs": [round(t, 2) for t in times], "median_s": round(statistics.median(times), 2),
            "max_s": round(max(times), 2), "load": load()}


def product_samples(proc: Proc) -> Samples:
    return {k: v for k, v in proc.scrape().items() if k[0].startswith("product_")}


def _wait_equal(proc: Proc, expected: Samples, timeout: float) -> tuple[float | None, Samples]:
    """Poll until the product samples equal ``expected``: (time they did or None, last)."""
    deadline = time.monotonic() + timeout
    last: Samples = {}
    while time.monotonic() < deadline:
        proc.check()
        try:
            last = product_samples(proc)
        except OSError:
            continue
        if last == expected:
            return time.time(), last
        time.sleep(0.1)
    return None, last


def _difference(expected: Samples, got: Samples) -> dict[str, Any]:
    differ = [k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k)]
    key = ("product_active_users", frozenset({("window", "30d"), ("platform", "all")}))
    return {"series_differing": len(differ), "series": len(expected),
            "active_users_30d_before": round(expected.get(key, 0.0)),
            "active_users_30d_after": round(got.get(key, 0.0))}


def memory_and_recovery(ctx: Context, users: int, equal_timeout: float = 120.0
                        ) -> dict[str, Any]:
    """Peak RSS of a worker holding ``users`` distinct users over 30 days; then SIGKILL it
    and time a worker to /healthz 200 and to identical product metrics, three times: one
    restarted on the killed worker's data dir (its local snapshots), then a new worker with
    an empty data dir (another host), with the Redis view intact, then with the view
    deleted too (rebuilt from the changelog)."""
    topic = f"users-{uuid.uuid4().hex[:6]}"
    t = time.time()
    preload(ctx.bootstrap, topic, ctx.partitions,
            workload.distinct_users(users, time.time(), ctx.seed + 1))
    preload_s = time.time() - t
    out: dict[str, Any] = {"users": users, "preload_seconds": round(preload_s, 1)}
    with ctx.fleet("mem", topic) as fleet:
        first = fleet.leadline("w0")
        run = _run_to_completion([first], users, timeout=300 + users / 500)
        before = _settled(first)
        active = before.get(("product_active_users",
                             frozenset({("window", "30d"), ("platform", "all")})), 0.0)
        out["memory"] = {
            "peak_rss_bytes": first.vm_hwm_bytes(), "rss_after_bytes": first.vm_rss_bytes(),
            "processing_events_per_s": run["events_per_s"],
            "active_users_30d_estimate": round(active), "load": load(),
        }
        for variant in ("same_host", "view_kept", "view_lost"):
            victim = fleet.procs[-1]
            victim.kill()
            killed = time.time()
            if variant == "view_lost":
                client = redis.Redis.from_url(ctx.redis_url)
                keys = list(client.scan_iter(match=f"{fleet.app_id}:v1:*", count=1000))
                if keys:
                    client.delete(*keys)
                client.close()
            # same_host: on the killed worker's data dir (its local snapshots); else a
            # new one, as on another host.
            name = victim.name if variant == "same_host" else f"r-{variant}"
            proc = fleet.leadline(name, probe=False).start()
            ready = proc.wait_healthy(timeout=600)
            equal, last = _wait_equal(proc, before, timeout=equal_timeout)
            out[f"recovery_{variant}"] = {
                "to_ready_s": round(ready - killed, 2),
                "to_metrics_equal_s": None if equal is None else round(equal - killed, 2),
                "equal_timeout_s": equal_timeout, "peak_rss_bytes": proc.vm_hwm_bytes(),
                "rss_after_bytes": proc.vm_rss_bytes(),
                "load": load(), **({} if equal else _difference(before, last)),
            }
    return out


def _live_partitions(proc: Proc) -> list[int]:
    """The partitions a worker has taken live (/healthz), [] while it cannot answer."""
    try:
        with urllib.request.urlopen(proc.url("/healthz"), timeout=2) as resp:
            return list(json.loads(resp.read())["partitions"])
    except (OSError, ValueError):
        return []


RESTORED = re.compile(r"restored partitions \[[\d, ]*\] from the changelog: (\d+) records")
LIVE = re.compile(r"partitions \[[\d, ]*\] live \(\{([^}]*)\} changelog records restored\)")


def standby_failover(ctx: Context, users: int) -> dict[str, Any]:
    """Two workers with a standby copy of each other's partitions
    (``LEADLINE_STANDBY_REPLICAS=1``) fold ``users`` distinct users; one is SIGKILLed, and
    the survivor is timed until it has every partition live (its copies caught up to the
    changelog's end). Also: how many changelog records the takeover read, against the
    records the dead worker's partitions hold."""
    topic = f"standby-{uuid.uuid4().hex[:6]}"
    preload(ctx.bootstrap, topic, ctx.partitions,
            workload.distinct_users(users, time.time(), ctx.seed + 2))
    everything = list(range(ctx.partitions))
    with ctx.fleet("standby", topic) as fleet:
        pair = [fleet.leadline(f"w{i}", settings={"LEADLINE_STANDBY_REPLICAS": "1"})
                for i in (1, 2)]
        run = _run_to_completion(pair, users, timeout=300 + users / 500)
        survivor, victim = pair
        deadline = time.monotonic() + 120
        while len(_live_partitions(victim)) == 0 or \
                sorted(_live_partitions(victim) + _live_partitions(survivor)) != everything:
            if time.monotonic() > deadline:
                raise RuntimeError("the two workers never split the partitions")
            time.sleep(0.5)
        _settled(survivor)
        theirs = _live_partitions(victim)
        time.sleep(5)  # the standby copies follow the last checkpoint's records
        log_before = survivor.log_path.stat().st_size
        victim.kill()
        killed = time.time()
        while _live_partitions(survivor) != everything:
            survivor.check()
            if time.time() - killed > 300:
                raise RuntimeError("the survivor never took every partition")
            time.sleep(0.05)
        took_over = time.time()
        time.sleep(0.5)  # the takeover's log lines, written around the same moment
        with survivor.log_path.open("rb") as f:
            f.seek(log_before)
            takeover_log = f.read().decode(errors="replace")
        return {
            "users": users, "processing_events_per_s": run["events_per_s"],
            "partitions_taken": theirs,
            "to_all_partitions_live_s": round(took_over - killed, 2),
            "changelog_records_read_at_takeover": sum(
                int(n) for n in RESTORED.findall(takeover_log)),
            "changelog_records_of_taken_partitions": sum(
                int(n) for live in LIVE.findall(takeover_log)
                for n in re.findall(r"\d+: (\d+)", live)),
            "peak_rss_bytes": survivor.vm_hwm_bytes(), "load": load(),
        }


def _settled(proc: Proc, timeout: float = 60.0) -> Samples:
    """Product samples once two scrapes 1 s apart agree (the view caught up)."""
    deadline = time.monotonic() + timeout
    last = product_samples(proc)
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = product_samples(proc)
        if now == last:
            return now
        last = now
    raise RuntimeError("product metrics did not settle")


def profile(ctx: Context, topic: str, n: int, seconds: float, out_dir: Path) -> dict[str, Any]:
    """py-spy on one leadline worker draining the pre-loaded topic, ``seconds`` long.

    Recording starts once 5 % of the ``n`` messages are done, so both stages run (the
    first seconds are nearly all ``ingest``: the by-user topic is still empty)."""
    pyspy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if pyspy is None:
        return {"skipped": "py-spy not found (pip install py-spy)"}
    raw = out_dir / "profile.collapsed.txt"
    with ctx.fleet("prof", topic) as fleet:
        proc = fleet.leadline("w0").start()
        assert proc.progress is not None
        deadline = time.monotonic() + 120
        while read_progress([proc.progress]).done < max(1, n // 20):
            proc.check()
            if time.monotonic() > deadline:
                raise RuntimeError("profiled worker never started processing")
            time.sleep(0.1)
        started = time.time()
        done_before = read_progress([proc.progress]).done
        spy = subprocess.run([pyspy, "record", "--pid", str(proc.pid), "--duration",
                              str(round(seconds)), "--rate", "100", "--format", "raw",
                              "--function", "--output", str(raw)], capture_output=True, text=True)
        if spy.returncode != 0:  # e.g. no ptrace permission in a container
            return {"skipped": f"py-spy failed: {spy.stderr.strip()[-300:]}"}
        progress = read_progress([proc.progress])
    summary = summarize(raw.read_text())
    summary.update({"seconds": seconds, "events_done_before": done_before,
                    "events_done_while_profiling": progress.done - done_before,
                    "started_at": round(started, 1), "load": load(),
                    "raw": str(raw.relative_to(out_dir.parent.parent))})
    return summary
