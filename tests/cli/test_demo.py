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


def test_live_view_shows_sessions_response_times_errors_and_crash_free_users() -> None:
    from leadline.cli.demo import render

    text = "\n".join([
        'product_sessions{window="5m"} 1234',
        'product_session_duration_seconds{window="1h",quantile="0.5"} 95.2',
        'product_response_time_seconds{window="5m",event="api_request",quantile="0.5"} 0.141',
        'product_response_time_seconds{window="5m",event="api_request",quantile="0.95"} 0.82',
        'product_response_time_seconds{window="5m",event="api_request",quantile="0.99"} 2.3',
        'product_request_error_ratio{window="5m",event="api_request"} 0.0071',
        'product_request_error_ratio{window="5m",event="page_load"} 0.0',
        'product_crash_free_users_ratio{window="24h",platform="ios"} 0.9931',
        'product_crash_free_users_ratio{window="24h",platform="android"} 0.99',
    ]) + "\n"
    view = render(parse_metrics(text), events_per_s=None, funnel_steps=(), header=[])
    lines = {line[:22].strip(): line[22:] for line in view.splitlines()}
    assert lines["sessions"].startswith("5m 1,234  1h —") and "length 1h 95s" in lines["sessions"]
    assert "api_request 141/820/2,300 ms" in lines["p50/p95/p99 5m"]
    assert "page_load —/—/— ms" in lines["p50/p95/p99 5m"]  # no load yet: no quantile
    assert lines["request errors 5m"] == "api_request 0.7 %   page_load 0.0 %"
    assert lines["crash-free users 24h"] == "ios 99.3 %  android 99.0 %"
    empty = render({}, events_per_s=None, funnel_steps=(), header=[])
    assert "crash-free users 24h  —" in empty


def test_live_view_says_when_the_latency_regression_is() -> None:
    from leadline.cli.demo import regression_note
    from leadline.simulator.traffic import TrafficGenerator

    gen = TrafficGenerator(7)
    start, end, factor = gen.regressions(1_764_000_000.0, 1_764_000_000.0 + 86400)[0]
    assert regression_note(gen, start - 60).startswith("next latency regression ")
    assert regression_note(gen, start + 1).startswith("latency regression NOW")
    assert f"{factor:.1f}x" in regression_note(gen, start + 1)
    assert "NOW" not in regression_note(gen, end + 1)
