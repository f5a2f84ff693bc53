"""Worker processes of one bench phase: leadline workers (via the probe) and the baseline.

Every phase gets its own app id (so its own consumer group, internal topics and
Redis keys) on the run's broker and Redis; workers run with leadline's default
settings, only addresses, names and ports set. Each process logs to its own file
and is always stopped (:class:`Fleet` is a context manager).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from embedded.services import free_port

ROOT = Path(__file__).resolve().parents[1]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    progress: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def start(self) -> Proc:
        with self.log_path.open("ab") as log:
            self.started_at = time.time()
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=str(ROOT))
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                               f"{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url("/healthz"), timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 120.0, interval: float = 0.05) -> float:
        """Poll /healthz until 200; returns the epoch time it first answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if self.healthy():
                return time.time()
            time.sleep(interval)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log_tail()}")

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.url("/metrics"), timeout=30) as resp:
            text = resp.read().decode()
        out: Samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def _status_bytes(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} in /proc status")

    def vm_hwm_bytes(self) -> int:
        """Peak resident set size (``VmHWM`` of /proc/<pid>/status)."""
        return self._status_bytes("VmHWM")

    def vm_rss_bytes(self) -> int:
        """Resident set size now (``VmRSS``)."""
        return self._status_bytes("VmRSS")

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


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
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADLINE_", "BENCH_"))}
        env.update({
            "LEADLINE_BROKER": f"kafka://{self.bootstrap}",
            "LEADLINE_REDIS_URL": self.redis_url,
            "LEADLINE_APP_ID": self.app_id,
            "LEADLINE_TOPIC": self.topic,
            "LEADLINE_DLQ_TOPIC": f"{self.app_id}-dlq",
            "LEADLINE_PARTITIONS": str(self.partitions),
            "LEADLINE_WEB_PORT": str(port),
            "LEADLINE_DATA_DIR": str(self.workdir / self.app_id / name),
            "PYTHONPATH": str(ROOT),
        })
        if self.session_timeout is not None:
            env["LEADLINE_SESSION_TIMEOUT"] = str(self.session_timeout)
        return env

    def leadline(self, name: str, probe: bool = True) -> Proc:
        """A leadline worker; with ``probe``, through bench/probe.py (progress log)."""
        port = free_port()
        env = self.leadline_env(port, name)
        progress = None
        if probe:
            progress = self.workdir / f"{self.app_id}-{name}.progress"
            env["BENCH_PROGRESS"] = str(progress)
            argv = [sys.executable, "-m", "bench.probe"]
        else:
            argv = [str(Path(sys.executable).parent / "leadline"), "worker"]
        proc = Proc(name, argv, env, self.workdir / f"{self.app_id}-{name}.log", port, progress)
        self.procs.append(proc)
        return proc

    def idiomatic(self, name: str, expected: int) -> Proc:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADLINE_", "BENCH_"))}
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
        proc = Proc(name, argv, env, self.workdir / f"{self.app_id}-{name}.log", port, progress)
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
