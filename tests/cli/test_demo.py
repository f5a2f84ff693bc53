"""`leadline demo` end to end: it comes up, sends its history, shows live metrics, Ctrl-C
leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from leadline.cli.demo import parse_metrics, value
from leadline.embedded.services import free_port, port_open


def leadline_command() -> list[str]:
    script = Path(sys.executable).parent / "leadline"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "leadline.cli"]


def scrape(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except (urllib.error.URLError, OSError):
        return None


StartDemo = Callable[[list[str], dict[str, str], Path], subprocess.Popen[bytes]]


@pytest.fixture
def start_demo() -> Iterator[StartDemo]:
    """``start_demo(args, env, out_path)``: ``leadline demo`` (broker, Redis and a worker of
    its own) in a new session, its output in ``out_path``. At teardown one still running
    (the test failed before its Ctrl-C) is asked to clean up, then killed with its group."""
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], env: dict[str, str], out_path: Path) -> subprocess.Popen[bytes]:
        with out_path.open("wb") as out:
            proc = subprocess.Popen([*leadline_command(), "demo", *args], env=env,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:  # only on failure: let it clean up, then insist
            proc.terminate()
            try:
                proc.wait(25)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


@pytest.mark.slow
@pytest.mark.services
@pytest.mark.timeout(90)
def test_demo_shows_live_metrics_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path, start_demo: StartDemo
) -> None:
    ports = {"LEADLINE_EMBEDDED_BROKER_PORT": free_port(),
             "LEADLINE_EMBEDDED_REDIS_PORT": free_port(),
             "LEADLINE_WEB_PORT": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADLINE_")}
    env.update({k: str(v) for k, v in ports.items()})
    out_path = tmp_path / "demo.out"
    # Two days of history (the default 30 take tens of seconds more to digest).
    proc = start_demo(["--rate", "300", "--backfill-days", "2"], env, out_path)
    url = f"http://127.0.0.1:{ports['LEADLINE_WEB_PORT']}/metrics"
    deadline = time.monotonic() + 50
    processed = active = cohort = 0.0
    while time.monotonic() < deadline and proc.poll() is None:
        body = scrape(url)
        if body:
            samples = parse_metrics(body)
            processed = sum(v for _, v in samples.get("leadline_events_processed_total", []))
            active = value(samples, "product_active_users", platform="all",
                           window="5m") or 0.0
            # Users first seen the day before yesterday: only the history has them.
            cohort = value(samples, "product_retention_cohort_users", day="1") or 0.0
            if processed > 0 and active > 0 and cohort > 0:
                break
        time.sleep(0.5)
    output = out_path.read_text(errors="replace")
    assert processed > 0 and active > 0 and cohort > 0, output
    assert "/metrics" in output and "worker.log" in output
    assert "2 days of history" in output

    proc.send_signal(signal.SIGINT)
    code = proc.wait(20)
    output = out_path.read_text(errors="replace")
    assert code == 0, output
    assert "stopped" in output
    for name, port in ports.items():
        assert not port_open(port), f"{name} port {port} still open\n{output}"
