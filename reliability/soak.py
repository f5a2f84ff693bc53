"""Soak: one worker under steady realistic traffic for a long time (``make soak``).

Starts the embedded broker and Redis, one ``leadline worker`` and the demo traffic
generator at a fixed rate (no time-of-day factor), and every ``--every`` seconds samples
the worker's resident memory, how long ``/metrics`` takes to answer, consumer lag and
counters. At the end it lets the worker drain and checks that nothing was lost:

* the worker caught up within ``--drain-minutes`` after the traffic stopped;
* every message sent was read (``leadline_events_received_total``), and every message
  read was folded in, dropped as a duplicate, dead-lettered or ignored (identify calls);
* the worker kept up (consumer lag did not grow by a second of traffic per minute) and
  drained (lag back to ~0 at the end);
* scrape time stayed flat (median of the last quarter <= 2x the first quarter, + 50 ms);
* memory: the RSS slope after the first quarter, in MiB per minute and bytes per event,
  beside the growth of the state the worker holds for a horizon (``leadline_state_bytes``:
  event ids 25 h (``LEADLINE_DEDUPE_HORIZON`` + a generation), per-user state 30 days
  (in the local store: its cache), cells their window), which is not flat until
  the horizon is reached by design; the RSS *beyond* that state must grow by at most
  ``--max-rss-mib-per-min`` (no leak). With ``--probe`` (``make soak``) that is measured
  *at rest*, on the anonymous RSS (the mapped id files' pages are page cache): after the
  first quarter (or, with ``--dedupe-horizon``, once the ids reached their steady state)
  and after the drain the traffic pauses, the worker
  drains, and the probe samples it with nothing in flight (:func:`at_rest`); the RSS and
  the memory in use (``--max-in-use-mib-per-min``) beyond the state must not grow from
  one to the other. The slope fitted while sending is still reported: it also follows
  the records, batches and buffers in flight, which grow with the lag.

Prints one line per sample and a summary, writes them as JSON (``--out``), and exits 1
if a check fails. Not part of CI (30 minutes by default).
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from leadline.aggregators.dedupe import generation_seconds
from leadline.config.definitions import load_definitions, parse_duration
from leadline.embedded import services
from leadline.simulator.traffic import TrafficGenerator
from reliability.harness import Message, PacedSender, fetch, rss_kib, sample, timed_scrape
from reliability.memprobe import rest_request

ROOT = Path(__file__).resolve().parent.parent

KINDS = ("event_ids", "users", "cells", "view_cells")
#: leadline_state_bytes kinds: the entries' memory, and the local store's cache (per-user
#: records live on disk; the cache grows up to its share of LEADLINE_MEMORY_BUDGET).
BYTE_KINDS = (*KINDS, "local_store")


@dataclass
class Point:
    t: float  # seconds since traffic started
    sent: int
    received: float
    folded: float
    duplicates: float
    invalid: float
    lag: float
    rss_mib: float
    broker_rss_mib: float
    scrape_ms: float
    event_ids: float  # leadline_state_entries: what the worker's memory holds
    users: float
    cells: float
    view_cells: float
    state_mib: float  # leadline_state_bytes, all kinds: the memory those entries take


def counters(samples: dict[Any, float]) -> tuple[float, float, float, float, float]:
    folded = invalid = lag = 0.0
    for (name, _), v in samples.items():
        if name == "leadline_events_processed_total":
            folded += v
        elif name in ("leadline_events_invalid_total", "leadline_messages_ignored_total"):
            invalid += v  # ended outside the fold: dead-lettered, or an ignored identify
        elif name == "leadline_consumer_lag":
            lag += v
    return (sample(samples, "leadline_events_received_total"), folded,
            sample(samples, "leadline_events_duplicate_total"), invalid, lag)


def slope(points: list[Point], attr: str) -> float:
    """Least-squares slope of ``attr`` per second."""
    return fit([p.t for p in points], [getattr(p, attr) for p in points])


def fit(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs``."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def run(minutes: float, rate: float, every: float, max_rss_mib_per_min: float,
        workdir: Path, drain_minutes: float = 15.0, probe: bool = False,
        replay: int = 0, backlog: float = 0.0,
        max_in_use_mib_per_min: float = 0.5, dedupe_horizon: str | None = None
        ) -> dict[str, Any]:
    broker_port, redis_port, web_port = (services.free_port() for _ in range(3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADLINE_")} | {
        "LEADLINE_BROKER": f"kafka://127.0.0.1:{broker_port}",
        "LEADLINE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "LEADLINE_WEB_PORT": str(web_port), "LEADLINE_DATA_DIR": str(workdir / "worker"),
        "LEADLINE_APP_ID": "soak", "LEADLINE_SCRAPE_CACHE_SECONDS": "0",
        "PYTHONPATH": str(ROOT),
    }
    warm_up_s = minutes * 60 / 4
    if dedupe_horizon is not None:  # a short one reaches the dedupe steady state in minutes
        env["LEADLINE_DEDUPE_HORIZON"] = dedupe_horizon
        horizon = parse_duration(dedupe_horizon)
        # the first sample at rest once the ids are at their steady state
        warm_up_s = max(warm_up_s, horizon + generation_seconds(horizon) + 60)
    command = [sys.executable, "-m", "leadline.cli", "worker"]
    probe_file = workdir / "memprobe.jsonl"
    if probe:  # the same worker, sampling where its memory is (reliability/memprobe.py)
        command = [sys.executable, "-m", "reliability.memprobe", "worker"]
        env |= {"MEMPROBE_FILE": str(probe_file), "MEMPROBE_EVERY": "60"}
    url = f"http://127.0.0.1:{web_port}/metrics"
    points: list[Point] = []
    with services.stack(broker_port, redis_port, workdir) as (broker, _), \
            (workdir / "worker.log").open("ab") as log:
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  cwd=str(workdir))
        try:
            deadline = time.monotonic() + 90
            while True:
                try:
                    if fetch(f"http://127.0.0.1:{web_port}/healthz", timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"worker did not start; see {workdir / 'worker.log'}")
                time.sleep(0.5)
            generator = TrafficGenerator(7, load_definitions())
            source = generator.batch if not replay else replaying(
                generator.batch(time.time(), replay))
            sender = PacedSender(f"127.0.0.1:{broker_port}", "product-events", source, rate)
            if backlog:  # the worker starts behind, as after a restart (see --backlog)
                os.kill(worker.pid, signal.SIGSTOP)
            sender.start()
            started = time.monotonic()
            if backlog:
                time.sleep(backlog)
                os.kill(worker.pid, signal.SIGCONT)
            stopped_early: float | None = None
            rests: list[dict[str, Any]] = []
            assert broker.proc is not None
            while time.monotonic() - started < minutes * 60:
                if probe and not rests and (
                        backlog or time.monotonic() - started >= warm_up_s):
                    # warm-up over (with a backlog: once it is drained, see --backlog)
                    rests.append(at_rest(sender, url, probe_file, started))
                time.sleep(every - (time.monotonic() - started) % every)
                if sender.error is not None:
                    raise SystemExit(f"sender failed: {sender.error!r}")
                if worker.poll() is not None:
                    raise SystemExit(f"worker exited {worker.returncode}; see {workdir}")
                points.append(_point(started, sender.sent, url, worker.pid, broker.proc.pid))
                print(json.dumps(asdict(points[-1])), flush=True)
                if available_mib() < MIN_AVAILABLE_MIB:
                    # The embedded broker keeps every record in memory: stop the traffic
                    # before it takes the machine down, and still drain and report.
                    stopped_early = points[-1].t
                    print(f"stopping the traffic at {stopped_early:.0f} s: less than "
                          f"{MIN_AVAILABLE_MIB} MiB of memory left", flush=True)
                    break
            sender.finish()
            sent = sender.sent
            drain = time.monotonic()
            drained_in: float | None = None
            while time.monotonic() - drain < drain_minutes * 60:  # let the worker catch up
                if drained(url, sent):
                    drained_in = time.monotonic() - drain
                    break
                time.sleep(2)
            final = _point(started, sent, url, worker.pid, broker.proc.pid)
            if probe and rests and drained_in is not None:
                rests.append(at_rest(sender, url, probe_file, started))
        finally:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
    summary = summarize(points, final, rate, minutes, max_rss_mib_per_min, drained_in)
    summary["backlog_s"] = backlog
    if probe:
        summary["memory_parts"] = memory_parts(probe_file, minutes, points, started)
        rest = summary["at_rest"] = rest_growth(rests)
        # At rest, the same moment of the worker twice: the fitted slope also follows the
        # working set in flight, which grows with the lag (the embedded broker slows as
        # it holds more), so with the probe the checks compare the two samples at rest.
        checks = summary["checks"]
        checks.pop(FITTED_RSS_CHECK)
        # Anonymous: the pages of past hours' mapped id files are file-backed page cache,
        # in VmRSS while memory is plentiful but not the worker's own (docs/performance.md).
        checks["anonymous RSS beyond the state flat, at rest (no leak)"] = (
            rest.get("anon_beyond_state_mib_per_min", math.inf) <= max_rss_mib_per_min)
        checks["memory in use beyond the state flat, at rest (no leak)"] = (
            rest.get("in_use_beyond_state_mib_per_min", math.inf) <= max_in_use_mib_per_min)
    summary["stopped_early_at_s"] = stopped_early
    summary["checks"]["ran the whole time"] = stopped_early is None
    summary["ok"] = all(summary["checks"].values())
    return summary


#: After the drain: a checkpoint (1 s) and the state gauges (5 s) catch up.
REST_SETTLE_S = 6.0


def drained(url: str, sent: int) -> bool:
    """The worker has read everything sent, and folded, dropped or dead-lettered it."""
    received, folded, dups, invalid, _ = counters(timed_scrape(url, timeout=30)[0])
    return received >= sent and folded + dups + invalid >= received


def state_mib(samples: dict[Any, float]) -> float:
    """``leadline_state_bytes`` of every kind, MiB."""
    return sum(sample(samples, "leadline_state_bytes", kind=kind) for kind in BYTE_KINDS) / 2**20


def at_rest(sender: PacedSender, url: str, probe_file: Path, started: float,
            timeout: float = 120.0) -> dict[str, Any]:
    """Pause the traffic, let the worker drain, and have the probe sample it at rest.

    With nothing in flight (no fetched records, batches, checkpoint records or scrape
    in hand) the memory in use is the state and what does not grow with it; two such
    samples far apart tell a leak from the working set of a lagging moment. The
    traffic resumes at its rate; what was due while paused is not sent.
    """
    sender.pause()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if drained(url, sender.sent):
                break
            time.sleep(1)
        else:
            return {"t": round(time.monotonic() - started, 1), "drained": False}
        time.sleep(REST_SETTLE_S)
        request = rest_request(probe_file)
        request.touch()
        while request.exists() and time.monotonic() < deadline + 60:
            time.sleep(0.5)
        if request.exists():
            raise SystemExit(f"the memory probe did not answer; see {probe_file}")
        rows = [json.loads(line) for line in probe_file.read_text().splitlines()]
        row = next(r for r in reversed(rows) if r.get("rest"))
        state = state_mib(timed_scrape(url, timeout=30)[0])
        return {"t": round(row["mono"] - started, 1), "drained": True,
                "state_mib": round(state, 1), "rss_mib": row["rss_mib"],
                "anon_mib": row["anon_mib"],
                "anon_beyond_state_mib": round(row["anon_mib"] - state, 1),
                "in_use_mib": row["in_use_mib"], "free_resident_mib": row["free_resident_mib"],
                "in_use_beyond_state_mib": round(row["in_use_mib"] - state, 1),
                "rss_beyond_state_mib": round(row["rss_mib"] - state, 1)}
    finally:
        sender.resume()


def rest_growth(rests: list[dict[str, Any]]) -> dict[str, Any]:
    """Growth per minute between the samples at rest after warm-up and after the drain."""
    out: dict[str, Any] = {"samples": rests}
    if len(rests) < 2 or not all(r["drained"] for r in rests):
        return out
    first, last = rests[0], rests[-1]
    minutes = (last["t"] - first["t"]) / 60
    for part in ("in_use_beyond_state_mib", "rss_beyond_state_mib", "anon_beyond_state_mib",
                 "free_resident_mib", "state_mib"):
        out[part.removesuffix("_mib") + "_mib_per_min"] = round(
            (last[part] - first[part]) / minutes, 2)
    return out


def replaying(messages: Sequence[Message]) -> Callable[[float, int], list[Message]]:
    """A sender source that sends ``messages`` again and again, in order.

    After the first round every event is a duplicate: the worker reads, validates,
    re-keys and dedupes at full rate while its state stays put, which tells memory the
    Kafka path keeps apart from memory that comes with a growing state.
    """
    position = [0]

    def take(now: float, n: int) -> list[Message]:
        start = position[0]
        position[0] += n
        return [messages[(start + i) % len(messages)] for i in range(n)]

    return take


#: What the memory probe reports, part by part (``reliability/memprobe.py``).
PARTS = ("rss_mib", "heap_in_use_mib", "heap_free_mib", "mapped_mib", "other_anon_mib",
         "pymalloc_used_mib", "pymalloc_free_blocks_mib", "pymalloc_free_pools_mib",
         "in_use_mib", "free_resident_mib", "in_use_beyond_state_mib")


def memory_parts(path: Path, minutes: float, points: Sequence[Point] = (),
                 started: float | None = None) -> dict[str, Any]:
    """Each part of the worker's memory after warm-up and at the end, and its slope.

    The parts add up to the anonymous RSS: glibc's heap (in use, and free but resident
    unless trimmed), blocks glibc mapped on their own, and the rest (mostly CPython's
    small-object arenas, which it splits into blocks in use and free space it keeps).
    Memory in use beyond the state (the state gauges interpolated between the samples
    around it, by the probe's ``mono`` clock against the traffic's start ``started``) must
    stay flat:
    growth there is a leak. The resident free space grows with the allocators' high-water
    mark, which the largest batch in flight sets.
    """
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    for row in rows:
        # on the traffic's clock where the probe says when it sampled
        row["t"] = row["mono"] - started if started is not None and "mono" in row else row["t"]
        if points and "in_use_mib" in row:
            row["in_use_beyond_state_mib"] = row["in_use_mib"] - state_at(points, row["t"])
    steady = [r for r in rows if r["t"] >= minutes * 60 / 4 and "heap_in_use_mib" in r]
    if len(steady) < 2:
        return {"samples": len(rows)}
    out: dict[str, Any] = {"samples": len(rows)}
    for part in (p for p in PARTS if p in steady[0]):
        per_s = fit([r["t"] for r in steady], [r[part] for r in steady])
        out[part] = {"after_warmup": round(steady[0][part], 1), "last": round(steady[-1][part], 1),
                     "max": round(max(r[part] for r in steady), 1),
                     "slope_mib_per_min": round(per_s * 60, 2)}
    return out


def state_at(points: Sequence[Point], t: float) -> float:
    """The state gauges' MiB at traffic time ``t``, linear between samples."""
    times = [p.t for p in points]
    i = min(max(bisect.bisect_left(times, t), 1), len(points) - 1)
    a, b = points[i - 1], points[i]
    if b.t == a.t or t <= a.t:
        return a.state_mib
    return a.state_mib + (b.state_mib - a.state_mib) * min(1.0, (t - a.t) / (b.t - a.t))


#: Stop the traffic when the machine has less memory than this left (MiB).
MIN_AVAILABLE_MIB = 2048


def available_mib() -> float:
    """``MemAvailable`` of /proc/meminfo, MiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def _point(started: float, sent: int, url: str, pid: int, broker_pid: int) -> Point:
    samples, seconds = timed_scrape(url, timeout=30)
    received, folded, dups, invalid, lag = counters(samples)
    held = {kind: sample(samples, "leadline_state_entries", kind=kind) for kind in KINDS}
    return Point(round(time.monotonic() - started, 1), sent, received, folded, dups, invalid,
                 lag, round(rss_kib(pid) / 1024, 1), round(rss_kib(broker_pid) / 1024, 1),
                 round(seconds * 1000, 1), state_mib=round(state_mib(samples), 1), **held)


FITTED_RSS_CHECK = "RSS beyond the state held flat (no leak)"


def summarize(points: list[Point], final: Point, rate: float, minutes: float,
              max_rss_mib_per_min: float, drained_in: float | None) -> dict[str, Any]:
    quarter = max(1, len(points) // 4)
    steady = points[quarter:]
    rss_per_s = slope(steady, "rss_mib")
    state_per_s = slope(steady, "state_mib")
    events_per_s = slope(steady, "sent") or rate
    first = statistics.median(p.scrape_ms for p in points[:quarter])
    last = statistics.median(p.scrape_ms for p in points[-quarter:])
    lost = final.sent - final.received  # only meaningful once drained
    unaccounted = final.received - (final.folded + final.duplicates + final.invalid)
    checks = {
        "drained (caught up after the traffic stopped)": drained_in is not None,
        "nothing lost (sent == read)": drained_in is not None and lost == 0,
        "everything read is accounted for": unaccounted == 0,
        "kept up (lag grew < 1 s of traffic per minute)": slope(steady, "lag") * 60 <= rate,
        "scrape time flat": last <= 2 * first + 50,
        FITTED_RSS_CHECK: (rss_per_s - state_per_s) * 60 <= max_rss_mib_per_min,
    }
    return {
        "minutes": minutes, "rate": rate, "samples": len(points),
        "sent": final.sent, "lost": lost, "unaccounted": unaccounted,
        "drained_in_s": None if drained_in is None else round(drained_in, 1),
        "rss_mib": {"first": points[0].rss_mib, "after_warmup": steady[0].rss_mib,
                    "last": final.rss_mib, "max": max(p.rss_mib for p in points)},
        "rss_slope_mib_per_min": round(rss_per_s * 60, 2),
        # What the RSS growth holds: state kept for a horizon (ids 25 h, users 30 d,
        # cells their window), which grows until the horizon is reached, then is flat;
        # the rest of the RSS must be flat.
        "state_slope_mib_per_min": round(state_per_s * 60, 2),
        "rss_beyond_state_slope_mib_per_min": round((rss_per_s - state_per_s) * 60, 2),
        "state_mib": {"after_warmup": steady[0].state_mib, "last": final.state_mib},
        "held_growth_per_min": {kind: round(slope(steady, kind) * 60) for kind in KINDS},
        "held_last": {kind: getattr(final, kind) for kind in KINDS},
        "rss_bytes_per_event": round(rss_per_s * 1024 * 1024 / events_per_s, 1),
        "broker_rss_mib": {"first": points[0].broker_rss_mib, "last": final.broker_rss_mib},
        "scrape_ms": {"first_quarter_median": first, "last_quarter_median": last,
                      "max": max(p.scrape_ms for p in points)},
        "max_lag": max(p.lag for p in points),
        "lag_slope_per_min": round(slope(steady, "lag") * 60),
        "achieved_rate": round(events_per_s),
        "checks": checks, "ok": all(checks.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=5000.0, help="events per second")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--max-rss-mib-per-min", type=float, default=1.0,
                        help="growth allowed after warm-up of the RSS beyond the state held")
    parser.add_argument("--max-in-use-mib-per-min", type=float, default=0.5,
                        help="with --probe: growth allowed of the memory in use beyond the "
                             "state, between the samples at rest after warm-up and at the end")
    parser.add_argument("--drain-minutes", type=float, default=15.0,
                        help="longest wait for the worker to catch up at the end")
    parser.add_argument("--dedupe-horizon", default=None, metavar="DURATION",
                        help="the worker's LEADLINE_DEDUPE_HORIZON (default: its own, 24h)")
    parser.add_argument("--out", type=Path, default=None, help="write the summary as JSON")
    parser.add_argument("--probe", action="store_true",
                        help="sample where the worker's memory is, every minute "
                             "(reliability/memprobe.py); adds memory_parts to the summary")
    parser.add_argument("--replay", type=int, default=0, metavar="N",
                        help="send the first N messages over and over (duplicates only: "
                             "the state stays put; a diagnostic, not the soak)")
    parser.add_argument("--backlog", type=float, default=0.0, metavar="SECONDS",
                        help="hold the worker (SIGSTOP) for the first SECONDS of traffic, so "
                             "that it starts behind, as after a restart, and drains at its "
                             "buffers' limit; with --probe the first sample at rest follows "
                             "that drain, so both samples at rest follow a full buffer")
    args = parser.parse_args(argv)
    # Stop cleanly (worker, broker, Redis) on Ctrl-C or kill, also when started in the
    # background, where the shell ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="leadline-soak-"))
    summary = run(args.minutes, args.rate, args.every, args.max_rss_mib_per_min, workdir,
                  args.drain_minutes, args.probe, args.replay, args.backlog,
                  args.max_in_use_mib_per_min, args.dedupe_horizon)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
