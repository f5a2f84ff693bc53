"""Worker processes on the embedded broker and Redis: start, wait for /healthz, scrape, stop.

The bench harness (``bench/processes.py``) and the process tests
(``tests/support/worker.py``) both run real ``leadline worker`` processes as children.
They do it with this one module so that a worker's environment, "ready" (``/healthz``
answers 200), a scrape of ``/metrics`` and "stopped" (SIGTERM, then SIGKILL) mean the same
for the figures the bench reports and for the behaviour the tests check. ``embedded`` is
a shipped package: nothing here imports pytest, and failures are :class:`ProcessError`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
"""One scrape: (metric name, its labels) -> value."""


class ProcessError(RuntimeError):
    """A child process exited, or did not become ready in time."""


def parse_metrics(text: str) -> Samples:
    """The samples of a Prometheus text exposition."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def proc_status_kib(pid: int, field: str) -> int:
    """A memory figure of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``, ...), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def inherited_env(drop_prefixes: tuple[str, ...] = ("LEADLINE_",)) -> dict[str, str]:
    """This process's environment without the variables a child must not inherit."""
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefixes)}


def worker_env(*, bootstrap: str, redis_url: str, app_id: str, topic: str, dlq_topic: str,
               partitions: int, web_port: int, data_dir: Path,
               settings: Mapping[str, str] | None = None,
               drop_prefixes: tuple[str, ...] = ("LEADLINE_",)) -> dict[str, str]:
    """The environment of a ``leadline worker``: addresses, names, web port and data dir;
    ``settings`` (any other variables) last. Inherited ``LEADLINE_*`` variables (and any
    other ``drop_prefixes``) are left out, so only what is set here applies."""
    env = inherited_env(drop_prefixes)
    env.update({
        "LEADLINE_BROKER": f"kafka://{bootstrap}",
        "LEADLINE_REDIS_URL": redis_url,
        "LEADLINE_APP_ID": app_id,
        "LEADLINE_TOPIC": topic,
        "LEADLINE_DLQ_TOPIC": dlq_topic,
        "LEADLINE_PARTITIONS": str(partitions),
        "LEADLINE_WEB_PORT": str(web_port),
        "LEADLINE_DATA_DIR": str(data_dir),
    })
    env.update(settings or {})
    return env


@dataclass(eq=False)  # a process is itself, not its fields
class ServingProcess:
    """A child process that serves ``/healthz`` and ``/metrics`` on 127.0.0.1:``port``,
    with stdout and stderr appended to ``log_path``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # epoch time of start()

    def start(self) -> Self:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.started_at = time.time()
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=str(self.cwd))
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise :class:`ProcessError` (with the log's tail) if the process has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessError(f"{self.name} exited with {self.proc.returncode}:\n"
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

    def wait_healthy(self, timeout: float = 120.0, interval: float = 0.05) -> float:
        """Poll /healthz until 200; returns the epoch time it first answered 200.
        :class:`ProcessError` if the process exits first or ``timeout`` passes."""
        if self.proc is None:
            raise ProcessError(f"{self.name} was not started")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if self.healthy():
                return time.time()
            time.sleep(interval)
        raise ProcessError(f"{self.name} not ready in {timeout}s:\n{self.log_tail()}")

    def scrape(self, timeout: float = 30.0) -> Samples:
        with urllib.request.urlopen(self.url("/metrics"), timeout=timeout) as resp:
            return parse_metrics(resp.read().decode())

    def vm_hwm_bytes(self) -> int:
        """Peak resident set size (``VmHWM`` of /proc/<pid>/status)."""
        return proc_status_kib(self.pid, "VmHWM") * 1024

    def vm_rss_bytes(self) -> int:
        """Resident set size now (``VmRSS``)."""
        return proc_status_kib(self.pid, "VmRSS") * 1024

    def signal(self, sig: int) -> None:
        """Send ``sig`` if the process is running."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL if running, and reap it."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code (None: never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode
