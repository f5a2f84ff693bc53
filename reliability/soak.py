"""Soak: one worker under steady realistic traffic for a long time (``make soak``).

Starts the embedded broker and Redis, one ``leadline worker`` and the demo traffic
generator at a fixed rate (no time-of-day factor), and every ``--every`` seconds samples
the worker's resident memory, how long ``/metrics`` takes to answer, consumer lag and
counters. At the end it lets the worker drain and checks that nothing was lost:

* the worker caught up within ``--drain-minutes`` after the traffic stopped;
* every message sent was read (``leadline_events_received_total``), and every message
  read was folded in, dropped as a duplicate or dead-lettered;
* the worker kept up (consumer lag did not grow by a second of traffic per minute) and
  drained (lag back to ~0 at the end);
* scrape time stayed flat (median of the last quarter <= 2x the first quarter, + 50 ms);
* memory: the RSS slope after the first quarter, in MiB per minute and bytes per event,
  beside the growth of the state the worker holds for a horizon (``leadline_state_bytes``:
  event ids 25 h, per-user state 30 days, cells their window), which is not flat until
  the horizon is reached by design; the RSS *beyond* that state must grow by at most
  ``--max-rss-mib-per-min`` (no leak).

Prints one line per sample and a summary, writes them as JSON (``--out``), and exits 1
if a check fails. Not part of CI (30 minutes by default).
"""

from __future__ import annotations

import argparse
import json
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cli.traffic import TrafficGenerator  # noqa: E402
from config.definitions import load_definitions  # noqa: E402
from embedded import services  # noqa: E402
from reliability.harness import Message, PacedSender, fetch, rss_kib, sample, timed_scrape  # noqa: E402

KINDS = ("event_ids", "users", "cells", "view_cells")


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
        elif name == "leadline_events_invalid_total":
            invalid += v
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
        replay: int = 0) -> dict[str, Any]:
    broker_port, redis_port, web_port = (services.free_port() for _ in range(3))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADLINE_")} | {
        "LEADLINE_BROKER": f"kafka://127.0.0.1:{broker_port}",
        "LEADLINE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "LEADLINE_WEB_PORT": str(web_port), "LEADLINE_DATA_DIR": str(workdir / "worker"),
        "LEADLINE_APP_ID": "soak", "LEADLINE_SCRAPE_CACHE_SECONDS": "0",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-c", "from cli.main import main; main()", "worker"]
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
            sender.start()
            started = time.monotonic()
            stopped_early: float | None = None
            assert broker.proc is not None
            while time.monotonic() - started < minutes * 60:
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
                received, folded, dups, invalid, _ = counters(timed_scrape(url, timeout=30)[0])
                if received >= sent and folded + dups + invalid >= received:
                    drained_in = time.monotonic() - drain
                    break
                time.sleep(2)
            final = _point(started, sent, url, worker.pid, broker.proc.pid)
        finally:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
    summary = summarize(points, final, rate, minutes, max_rss_mib_per_min, drained_in)
    if probe:
        summary["memory_parts"] = memory_parts(probe_file, minutes)
    summary["stopped_early_at_s"] = stopped_early
    summary["checks"]["ran the whole time"] = stopped_early is None
    summary["ok"] = all(summary["checks"].values())
    return summary


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
         "pymalloc_used_mib", "pymalloc_free_blocks_mib", "pymalloc_free_pools_mib")


def memory_parts(path: Path, minutes: float) -> dict[str, Any]:
    """Each part of the worker's memory after warm-up and at the end, and its slope.

    The parts add up to the anonymous RSS: glibc's heap (in use, and free but resident
    unless trimmed), blocks glibc mapped on their own, and the rest (mostly CPython's
    small-object arenas, which it splits into blocks in use and free space it keeps).
    A leak shows as a part that keeps growing beyond the state.
    """
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    steady = [r for r in rows if r["t"] >= minutes * 60 / 4 and "heap_in_use_mib" in r]
    if len(steady) < 2:
        return {"samples": len(rows)}
    out: dict[str, Any] = {"samples": len(rows)}
    for part in (p for p in PARTS if p in steady[0]):
        per_s = fit([r["t"] for r in steady], [r[part] for r in steady])
        out[part] = {"after_warmup": steady[0][part], "last": steady[-1][part],
                     "slope_mib_per_min": round(per_s * 60, 2)}
    return out


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
    state = sum(sample(samples, "leadline_state_bytes", kind=kind) for kind in KINDS)
    return Point(round(time.monotonic() - started, 1), sent, received, folded, dups, invalid,
                 lag, round(rss_kib(pid) / 1024, 1), round(rss_kib(broker_pid) / 1024, 1),
                 round(seconds * 1000, 1), state_mib=round(state / 2**20, 1), **held)


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
        "RSS beyond the state held flat (no leak)":
            (rss_per_s - state_per_s) * 60 <= max_rss_mib_per_min,
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
    parser.add_argument("--drain-minutes", type=float, default=15.0,
                        help="longest wait for the worker to catch up at the end")
    parser.add_argument("--out", type=Path, default=None, help="write the summary as JSON")
    parser.add_argument("--probe", action="store_true",
                        help="sample where the worker's memory is, every minute "
                             "(reliability/memprobe.py); adds memory_parts to the summary")
    parser.add_argument("--replay", type=int, default=0, metavar="N",
                        help="send the first N messages over and over (duplicates only: "
                             "the state stays put; a diagnostic, not the soak)")
    args = parser.parse_args(argv)
    # Stop cleanly (worker, broker, Redis) on Ctrl-C or kill, also when started in the
    # background, where the shell ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="leadline-soak-"))
    summary = run(args.minutes, args.rate, args.every, args.max_rss_mib_per_min, workdir,
                  args.drain_minutes, args.probe, args.replay)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
