"""Worker processes of one bench phase: leadline workers (via the probe) and the baseline.

Every phase gets its own app id (so its own consumer group, internal topics and
Redis keys) on the run's broker and Redis; workers run with leadline's default
settings, only addresses, names and ports set. Each process logs to its own file
and is always stopped (:class:`Fleet` is a context manager). Starting, readiness,
scrapes and stopping are embedded/processes.py's, shared with the process tests.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from leadline.embedded.processes import ServingProcess, inherited_env, worker_env
from leadline.embedded.services import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass(eq=False)
class Proc(ServingProcess):
    """One process of a phase; ``progress``: the progress log its probe writes, if any."""

    progress: Path | None = None


@dataclass
class Fleet:
    """The processes of one phase, sharing an app id; all stopped on exit."""

    app_id: str
    topic: str
    bootstrap: str
    redis_url: str
    workdir: Path
    partitions: int = 4
    session_timeout: float | None = None  # None: leadline's default
    procs: list[Proc] = field(default_factory=list)

    def leadline_env(self, port: int, name: str) -> dict[str, str]:
        env = worker_env(bootstrap=self.bootstrap, redis_url=self.redis_url,
                         app_id=self.app_id, topic=self.topic, dlq_topic=f"{self.app_id}-dlq",
                         partitions=self.partitions, web_port=port,
                         data_dir=self.workdir / self.app_id / name,
                         settings={"PYTHONPATH": str(ROOT)},
                         drop_prefixes=("LEADLINE_", "BENCH_"))
        if self.session_timeout is not None:
            env["LEADLINE_SESSION_TIMEOUT"] = str(self.session_timeout)
        return env

    def leadline(self, name: str, probe: bool = True,
                 settings: dict[str, str] | None = None) -> Proc:
        """A leadline worker; with ``probe``, through bench/probe.py (progress log);
        ``settings``: environment variables beyond the defaults (``LEADLINE_...``)."""
        port = free_port()
        env = self.leadline_env(port, name) | (settings or {})
        progress = None
        if probe:
            progress = self.workdir / f"{self.app_id}-{name}.progress"
            env["BENCH_PROGRESS"] = str(progress)
            argv = [sys.executable, "-m", "bench.probe"]
        else:
            argv = [str(Path(sys.executable).parent / "leadline"), "worker"]
        return self._add(name, argv, env, port, progress)

    def idiomatic(self, name: str, expected: int) -> Proc:
        port = free_port()
        env = inherited_env(drop_prefixes=("LEADLINE_", "BENCH_"))
        progress = self.workdir / f"{self.app_id}-{name}.progress"
        (self.workdir / self.app_id).mkdir(parents=True, exist_ok=True)
        env.update({
            "BENCH_BROKER": f"kafka://{self.bootstrap}", "BENCH_TOPIC": self.topic,
            "BENCH_APP_ID": self.app_id, "BENCH_EXPECTED": str(expected),
            "BENCH_PROGRESS": str(progress), "BENCH_WEB_PORT": str(port),
            "BENCH_DATADIR": str(self.workdir / self.app_id / name), "PYTHONPATH": str(ROOT),
        })
        if self.session_timeout is not None:
            env["BENCH_SESSION_TIMEOUT"] = str(self.session_timeout)
        argv = [sys.executable, "-m", "bench.idiomatic_faust", "worker", "-l", "info"]
        return self._add(name, argv, env, port, progress)

    def _add(self, name: str, argv: list[str], env: dict[str, str], port: int,
             progress: Path | None) -> Proc:
        proc = Proc(name, argv, env, self.workdir / f"{self.app_id}-{name}.log", port, ROOT,
                    progress=progress)
        self.procs.append(proc)
        return proc

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.stop()


@dataclass
class Progress:
    first_start: float | None
    last_end: float | None
    done: int
    busy: dict[str, float] = field(default_factory=dict)  # seconds inside each handler
    calls: dict[str, int] = field(default_factory=dict)
    records: dict[str, int] = field(default_factory=dict)


def read_progress(paths: list[Path]) -> Progress:
    """Merge progress logs: earliest handler start, latest handler end, messages done,
    and per handler the time spent inside it, its calls and the records it was given."""
    out = Progress(None, None, 0)
    for path in paths:
        if not path.exists():
            continue
        worker_done = 0
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue  # a line being written
            label = parts[0]
            t0, t1, n, d = float(parts[1]), float(parts[2]), int(parts[3]), int(parts[4])
            if n:
                out.first_start = t0 if out.first_start is None else min(out.first_start, t0)
                out.last_end = t1 if out.last_end is None else max(out.last_end, t1)
            out.busy[label] = out.busy.get(label, 0.0) + (t1 - t0)
            out.calls[label] = out.calls.get(label, 0) + 1
            out.records[label] = out.records.get(label, 0) + n
            worker_done = max(worker_done, d)
        out.done += worker_done
    return out


def handler_stats(progress: Progress) -> dict[str, dict[str, float]]:
    """Per handler: seconds inside it, calls, mean records per call (JSON-ready)."""
    return {label: {"busy_s": round(progress.busy[label], 2), "calls": progress.calls[label],
                    "records_per_call": round(progress.records[label] / progress.calls[label])}
            for label in sorted(progress.busy)}
