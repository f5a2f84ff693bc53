"""``make bench`` / ``python -m bench.run``: every performance figure of leadline, in one run.

Self-contained: starts a tansu broker and a Redis on free loopback ports (always
stopped, also on Ctrl-C or SIGTERM), pre-loads seeded events, runs the phases,
writes ``bench/results/latest.json`` and regenerates the figures in
``docs/performance.md``. Settings (environment variable, or the flag):

    BENCH_EVENTS            --events     events of the throughput runs (1,000,000)
    BENCH_USERS             --users      distinct users of the memory run (= events)
    BENCH_IDIOMATIC_EVENTS  --idiomatic-events  events through the Faust baseline (= events)
    BENCH_WORKERS           --workers    worker counts of the scaling runs ("1,2,4")
    BENCH_FRESHNESS_RATE    --freshness-rate     events/s of the freshness run (5000)
    BENCH_FRESHNESS_SECONDS --freshness-seconds  its length (60)
    BENCH_READY_RUNS        --ready-runs how many cold starts to time (3)
    BENCH_PROFILE_SECONDS   --profile-seconds    py-spy recording length, 0 = skip (15)
    BENCH_SEED              --seed       seed of every generated event (42)
    BENCH_SESSION_TIMEOUT   --session-timeout  workers' group session timeout, s (leadline's
                            default, 10); lower only to make a smoke run fast
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import phases, report
from bench.machine import describe
from leadline.embedded import services

ROOT = Path(__file__).resolve().parents[1]


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=int(_env("BENCH_EVENTS", "1000000")))
    p.add_argument("--users", type=int, default=int(_env("BENCH_USERS", "0")) or None)
    p.add_argument("--idiomatic-events", type=int,
                   default=int(_env("BENCH_IDIOMATIC_EVENTS", "0")) or None)
    p.add_argument("--workers", default=_env("BENCH_WORKERS", "1,2,4"))
    p.add_argument("--freshness-rate", type=float,
                   default=float(_env("BENCH_FRESHNESS_RATE", "5000")))
    p.add_argument("--freshness-seconds", type=float,
                   default=float(_env("BENCH_FRESHNESS_SECONDS", "60")))
    p.add_argument("--ready-runs", type=int, default=int(_env("BENCH_READY_RUNS", "3")))
    p.add_argument("--profile-seconds", type=float,
                   default=float(_env("BENCH_PROFILE_SECONDS", "15")))
    p.add_argument("--seed", type=int, default=int(_env("BENCH_SEED", "42")))
    p.add_argument("--session-timeout", type=float,
                   default=float(_env("BENCH_SESSION_TIMEOUT", "0")) or None)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latest.json")
    p.add_argument("--docs", type=Path, default=ROOT / "docs" / "performance.md",
                   help="markdown file whose figures section is regenerated")
    p.add_argument("--no-docs", action="store_true", help="only write the JSON file")
    return p.parse_args(argv)


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Timer:
    """Wall-clock seconds of each phase, into ``result["phase_seconds"]``."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.times = result.setdefault("phase_seconds", {})

    def __call__(self, name: str, fn: Any, *args: Any) -> Any:
        t = time.time()
        try:
            return fn(*args)
        finally:
            self.times[name] = round(time.time() - t, 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.events
    users = args.users or n
    idiomatic_n = min(args.idiomatic_events or n, n)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="leadline-bench-"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "machine": describe(),
        "settings": {"events": n, "users": users, "idiomatic_events": idiomatic_n,
                     "workers": workers, "freshness_rate": args.freshness_rate,
                     "freshness_seconds": args.freshness_seconds, "ready_runs": args.ready_runs,
                     "profile_seconds": args.profile_seconds, "seed": args.seed,
                     "session_timeout": args.session_timeout or 10.0, "partitions": 4},
        "load_at_start": phases.load(),
    }
    _say(f"workdir {workdir}; machine {result['machine']}")
    timed = Timer(result)
    with services.stack(workdir=workdir) as (broker, redis):
        ctx = phases.Context(f"127.0.0.1:{broker.port}", f"redis://127.0.0.1:{redis.port}/0",
                             workdir, args.seed, session_timeout=args.session_timeout)
        source = "events-mixed"
        _say(f"pre-loading {n} events")
        result["preload"] = timed("preload", phases.preload_mixed, ctx, source, n)
        result["throughput"] = {}
        for k in workers:
            _say(f"throughput, {k} worker(s)")
            r = timed(f"throughput_{k}", phases.throughput, ctx, source, n, k)
            result["throughput"][str(k)] = r
            _say(f"  {r['events_per_s']} events/s (load {r['load']})")
        if idiomatic_n:
            idiomatic_topic = source
            if idiomatic_n < n:
                idiomatic_topic = "events-idiomatic"
                timed("preload_idiomatic", phases.preload_mixed, ctx, idiomatic_topic,
                      idiomatic_n)
            _say(f"idiomatic Faust baseline, {idiomatic_n} events")
            r = timed("idiomatic", phases.idiomatic, ctx, idiomatic_topic, idiomatic_n)
            result["idiomatic"] = r
            _say(f"  {r['events_per_s']} events/s (load {r['load']})")
        if args.profile_seconds > 0:
            _say(f"py-spy profile, {args.profile_seconds:.0f} s")
            result["profile"] = timed("profile", phases.profile, ctx, source, n,
                                      args.profile_seconds, args.out.parent)
        _say(f"freshness at {args.freshness_rate:.0f} events/s for {args.freshness_seconds:.0f} s")
        r = timed("freshness", phases.freshness, ctx, args.freshness_rate,
                  args.freshness_seconds)
        result["freshness"] = r
        _say(f"  p50 {r['p50_s']} s, p99 {r['p99_s']} s (load {r['load']})")
        _say(f"start-up to ready, {args.ready_runs} run(s)")
        result["startup"] = r = timed("startup", phases.startup, ctx, args.ready_runs)
        _say(f"  median {r['median_s']} s")
        _say(f"memory with {users} distinct users, then SIGKILL recovery")
        result.update(timed("memory_and_recovery", phases.memory_and_recovery, ctx, users))
        _say(f"  peak RSS {result['memory']['peak_rss_bytes'] / 2**20:.0f} MiB; "
             f"recovery {result['recovery_same_host']} / {result['recovery_view_kept']} / "
             f"{result['recovery_view_lost']}")
        _say(f"standby failover with {users} distinct users, 2 workers")
        result["standby"] = r = timed("standby", phases.standby_failover, ctx, users)
        _say(f"  every partition live {r['to_all_partitions_live_s']} s after the kill")
    result["duration_s"] = round(time.time() - started)
    result["summary"] = report.summary(result)
    logs = args.out.parent / "logs"  # the workers' logs, for a closer look (not committed)
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    for log in workdir.glob("b*.log"):
        shutil.copy(log, logs / log.name)
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the children on the way out
    result = run(args)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _say(f"wrote {args.out}")
    if not args.no_docs:
        report.update_docs(args.docs, result)
        _say(f"updated {args.docs}")
    print(report.table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
