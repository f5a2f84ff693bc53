"""``leadline demo``: embedded broker + Redis + one worker + traffic, and a live view.

The traffic starts with 30 days of history (``--backfill-days``), so retention, churn,
stickiness and the unit economics read as in production from the first minute.

Everything it starts (broker, Redis, the worker subprocess, the traffic thread) is
stopped on Ctrl-C or SIGTERM, and on any failure, before it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

from leadline.config.definitions import DefinitionsError, load_definitions
from leadline.config.settings import Settings, SettingsError, load_settings
from leadline.embedded.services import Service, ServiceError, broker, free_port, port_open, redis

if TYPE_CHECKING:
    from leadline.simulator.traffic import TrafficGenerator

REFRESH = 2.0
READY_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 12.0
WINDOWS = ("5m", "1h", "24h", "7d", "30d")
DASH = "—"

# sample name -> [(labels, value)]
Samples = dict[str, list[tuple[dict[str, str], float]]]


def _say(message: str) -> None:
    print(f"leadline demo: {message}", flush=True)


def port_free(port: int) -> bool:
    """Nobody listens on 127.0.0.1:``port`` and we could bind it."""
    if port_open(port):
        return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(wanted: int, what: str, variable: str) -> int:
    if port_free(wanted):
        _say(f"{what} on 127.0.0.1:{wanted}")
        return wanted
    port = free_port()
    _say(f"{what}: port {wanted} ({variable}) is busy, using 127.0.0.1:{port}")
    return port


# -- /metrics -> text -----------------------------------------------------------------


def parse_metrics(text: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name].append((dict(sample.labels), float(sample.value)))
    return dict(out)


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the one sample of ``name`` with these labels (others ignored)."""
    for sample_labels, v in samples.get(name, ()):
        if all(sample_labels.get(k) == want for k, want in labels.items()):
            return v
    return None


def by_label(samples: Samples, name: str, label: str, **fixed: str) -> dict[str, float]:
    """``label`` value -> summed value, over samples of ``name`` matching ``fixed``."""
    out: dict[str, float] = defaultdict(float)
    for sample_labels, v in samples.get(name, ()):
        if label in sample_labels and all(sample_labels.get(k) == w for k, w in fixed.items()):
            out[sample_labels[label]] += v
    return dict(out)


def total(samples: Samples, name: str) -> float | None:
    rows = samples.get(name)
    return sum(v for _, v in rows) if rows else None


def _count(v: float | None) -> str:
    return DASH if v is None else f"{v:,.0f}"


def _ratio(v: float | None) -> str:
    return DASH if v is None else f"{v * 100:.1f} %"


def _money(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 10_000 else f"{v:,.2f}"


def _currencies(values: dict[str, float], limit: int = 6) -> str:
    """Non-zero amounts by currency, largest first, ``other`` last."""
    if not values:
        return DASH
    shown = sorted((c for c, v in values.items() if v), key=lambda c: (c == "other", -values[c]))
    if not shown:
        return "0"
    more = f"  (+{len(shown) - limit})" if len(shown) > limit else ""
    return "  ".join(f"{c} {_money(values[c])}" for c in shown[:limit]) + more


def render(samples: Samples, *, events_per_s: float | None, funnel_steps: tuple[str, ...],
           header: list[str]) -> str:
    """The compact live view of the leading indicators (``—`` where not exported yet)."""
    w = 22
    lines = list(header)
    active = "  ".join(
        f"{win} {_count(value(samples, 'product_active_users', window=win, platform='all'))}"
        for win in WINDOWS)
    lines.append(f"{'active users (all)':<{w}}{active}")
    lines.append(f"{'stickiness 24h/30d':<{w}}"
                 f"{_ratio(value(samples, 'product_stickiness_ratio', platform='all'))}")
    lines.extend(_lifecycle(samples, w))
    processed = total(samples, "leadline_events_processed_total")
    rate = DASH if events_per_s is None else f"{events_per_s:,.1f}/s"
    lines.append(f"{'events processed':<{w}}{_count(processed)} total   {rate}   duplicates "
                 f"{_count(value(samples, 'leadline_events_duplicate_total'))}")
    invalid = by_label(samples, "leadline_events_invalid_total", "reason")
    lines.append(f"{'invalid (DLQ)':<{w}}" + ("  ".join(
        f"{r} {_count(n)}" for r, n in sorted(invalid.items())) or DASH))
    for win in ("1h", "24h"):
        conv = value(samples, "product_conversions", window=win)
        ratio = value(samples, "product_conversion_ratio", window=win, platform="all")
        lines.append(f"{'conversions ' + win:<{w}}{_count(conv)}   ratio {_ratio(ratio)}")
    for win in ("1h", "24h"):
        lines.append(f"{'revenue ' + win:<{w}}"
                     f"{_currencies(by_label(samples, 'product_revenue', 'currency', window=win))}")
    for win in ("1h", "24h"):
        lines.append(f"{'ARPU ' + win:<{w}}"
                     f"{_currencies(by_label(samples, 'product_arpu', 'currency', window=win))}")
    signups = "  ".join(
        f"{win} {_count(value(samples, 'product_signups', window=win, platform='all'))}"
        for win in ("1h", "24h"))
    activation = "  ".join(
        f"{win} {_ratio(value(samples, 'product_activation_ratio', window=win))}"
        for win in ("1h", "24h"))
    lines.append(f"{'signups':<{w}}{signups}    activation {activation}")
    steps = by_label(samples, "product_funnel_users", "step", funnel="checkout", window="1h")
    if steps:
        order = [s for s in funnel_steps if s in steps] + sorted(set(steps) - set(funnel_steps))
        first = steps[order[0]] if order else 0.0
        parts = [f"{s} {_count(steps[s])}" + (f" ({steps[s] / first * 100:.0f}%)"
                                                  if i and first else "")
                 for i, s in enumerate(order)]
        funnel = " > ".join(parts)
    else:
        funnel = DASH
    lines.append(f"{'checkout funnel 1h':<{w}}{funnel}")
    lines.append(f"{'MRR':<{w}}{_currencies(by_label(samples, 'product_mrr', 'currency'))}")
    nps = value(samples, "product_nps", window="1h")
    csat = value(samples, "product_csat", window="1h")
    lines.append(f"{'NPS 1h':<{w}}{DASH if nps is None else f'{nps:+.0f}'}    CSAT 1h "
                 f"{DASH if csat is None else f'{csat:.2f}'}")
    lines.extend(_performance(samples, w))
    return "\n".join(lines)


def _quantiles(samples: Samples, name: str, **fixed: str) -> dict[float, float]:
    """quantile (as a number, however the label spells it) -> value."""
    out = {}
    for q, v in by_label(samples, name, "quantile", **fixed).items():
        with contextlib.suppress(ValueError):
            out[float(q)] = v
    return out


def _performance(samples: Samples, w: int) -> list[str]:
    """Sessions and their length, response time and errors by event, crash-free users."""
    sessions = "  ".join(f"{win} {_count(value(samples, 'product_sessions', window=win))}"
                         for win in ("5m", "1h", "24h"))
    length = _quantiles(samples, "product_session_duration_seconds", window="1h")
    median = f"{length[0.5]:,.0f}s" if 0.5 in length else DASH
    lines = [f"{'sessions':<{w}}{sessions}    median length 1h {median}"]
    errors_by_event = by_label(samples, "product_request_error_ratio", "event", window="5m")
    events = sorted(errors_by_event)
    times = []
    for event in events:
        qs = _quantiles(samples, "product_response_time_seconds", window="5m", event=event)
        shown = "/".join(DASH if q not in qs else f"{qs[q] * 1000:,.0f}"
                         for q in (0.5, 0.95, 0.99))
        times.append(f"{event} {shown} ms")
    lines.append(f"{'p50/p95/p99 5m':<{w}}" + ("   ".join(times) or DASH))
    errors = [f"{event} {_ratio(errors_by_event[event])}" for event in events]
    lines.append(f"{'request errors 5m':<{w}}" + ("   ".join(errors) or DASH))
    crash_free = by_label(samples, "product_crash_free_users_ratio", "platform", window="24h")
    lines.append(f"{'crash-free users 24h':<{w}}" + ("  ".join(
        f"{p} {_ratio(crash_free[p])}" for p in ("ios", "android", "all") if p in crash_free)
        or DASH))
    return lines


def _lifecycle(samples: Samples, w: int) -> list[str]:
    """New and returning users, Day-N retention, churn, and the unit economics."""
    lines = []
    new = "  ".join(
        f"{win} {_count(value(samples, 'product_new_users', window=win, platform='all'))}"
        f"/{_count(value(samples, 'product_returning_users', window=win))}"
        for win in ("1h", "24h", "7d"))
    lines.append(f"{'new/returning users':<{w}}{new}")
    ratios = by_label(samples, "product_retention_ratio", "day")
    cohorts = by_label(samples, "product_retention_cohort_users", "day")
    days = sorted(set(ratios) | set(cohorts), key=lambda d: int(d) if d.isdigit() else 1e9)
    lines.append(f"{'retention (cohort)':<{w}}" + ("  ".join(
        f"D{d} {_ratio(ratios.get(d))} ({_count(cohorts.get(d))})" for d in days) or DASH))
    churn = by_label(samples, "product_user_churn_ratio", "window")
    lines.append(f"{'user churn':<{w}}" + ("  ".join(
        f"{win} {_ratio(churn[win])}" for win in WINDOWS if win in churn) or DASH))
    customers = "  ".join(
        f"{win} {_count(value(samples, 'product_new_customers', window=win))}"
        for win in ("24h", "30d"))
    lines.append(f"{'new customers':<{w}}{customers}")
    for label, name, fixed in (
            ("marketing spend 30d", "product_marketing_spend", {"window": "30d"}),
            ("CAC 30d", "product_cac", {"window": "30d"}),
            ("LTV", "product_ltv", {}),
            ("NRR 30d", "product_net_revenue_retention_ratio", {"window": "30d"})):
        lines.append(f"{label:<{w}}{_currencies(by_label(samples, name, 'currency', **fixed))}")
    return lines


def fetch(url: str, timeout: float = 3.0) -> tuple[int, str]:
    """Status and body of a GET; status 0 with the error text if it failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, ""
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(getattr(exc, "reason", exc))


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# -- the traffic thread -------------------------------------------------------------------


class TrafficThread(threading.Thread):
    """Runs :func:`leadline.cli.traffic.run_traffic` on its own event loop until :meth:`stop`."""

    def __init__(self, settings: Settings, rate: float, seed: int = 7,
                 backfill_days: int = 30) -> None:
        super().__init__(name="leadline-traffic", daemon=True)
        from leadline.cli.traffic import Backfill
        from leadline.simulator.traffic import TrafficGenerator

        self.settings, self.rate, self.seed = settings, rate, seed
        self.generator = TrafficGenerator(seed, load_definitions(settings.definitions))
        self.backfill = Backfill(backfill_days)
        self.code: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._stopping = threading.Event()

    def run(self) -> None:
        from leadline.cli.traffic import run_traffic

        # aiokafka's own warnings (a reconnect while stopping) would garble the live view.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

        async def main() -> int:
            self._loop = asyncio.get_running_loop()
            self._stop_event = asyncio.Event()
            if self._stopping.is_set():
                return 0
            return await run_traffic(self.settings, self.rate, self.seed, stop=self._stop_event,
                                     quiet=True, generator=self.generator,
                                     backfill=self.backfill)

        self.code = asyncio.run(main())

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)
        if self.is_alive():
            self.join(timeout)


# -- the demo -----------------------------------------------------------------------------


class _Terminate(Exception):
    """SIGTERM, turned into an exception so the finally blocks run."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminate()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = WORKER_STOP_TIMEOUT) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_demo(rate: float, backfill_days: int = 30) -> int:
    try:
        settings = load_settings()
        definitions = load_definitions(settings.definitions)
    except (SettingsError, DefinitionsError) as exc:
        print(f"leadline: {exc}", file=sys.stderr)
        return 2
    funnel_steps = tuple(definitions.funnels["checkout"].steps) \
        if "checkout" in definitions.funnels else ()
    workdir = Path(tempfile.mkdtemp(prefix="leadline-demo-"))
    services: list[Service] = []
    worker: subprocess.Popen[bytes] | None = None
    worker_log: IO[bytes] | None = None
    traffic: TrafficThread | None = None
    code = 0
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        bport = choose_port(settings.embedded_broker_port, "broker",
                            "LEADLINE_EMBEDDED_BROKER_PORT")
        services.append(broker(bport, workdir))
        services[-1].start()
        rport = choose_port(settings.embedded_redis_port, "redis", "LEADLINE_EMBEDDED_REDIS_PORT")
        services.append(redis(rport, workdir))
        services[-1].start()
        wport = choose_port(settings.web_port, "worker /metrics", "LEADLINE_WEB_PORT")
        broker_url, redis_url = f"kafka://127.0.0.1:{bport}", f"redis://127.0.0.1:{rport}/0"
        env = dict(os.environ, LEADLINE_BROKER=broker_url, LEADLINE_REDIS_URL=redis_url,
                   LEADLINE_WEB_HOST="127.0.0.1", LEADLINE_WEB_PORT=str(wport),
                   LEADLINE_DATA_DIR=str(workdir / "worker"), PYTHONUNBUFFERED="1")
        log_path = workdir / "worker.log"
        worker_log = log_path.open("ab")
        _say(f"starting a worker, log: {log_path}")
        # Own session: a terminal's Ctrl-C reaches only us, and we stop it in order.
        worker = subprocess.Popen(
            [sys.executable, "-m", "leadline.cli", "worker"],
            env=env, stdin=subprocess.DEVNULL, stdout=worker_log, stderr=subprocess.STDOUT,
            start_new_session=True)
        base = f"http://127.0.0.1:{wport}"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            status, _ = fetch(f"{base}/healthz", timeout=2.0)
            if status == 200:
                break
            if worker.poll() is not None or time.monotonic() > deadline:
                why = (f"the worker exited with {worker.returncode}" if worker.poll() is not None
                       else f"the worker was not ready within {READY_TIMEOUT:.0f}s")
                print(f"leadline demo: {why}; last lines of {log_path}:\n{tail(log_path)}",
                      file=sys.stderr, flush=True)
                code = 1
                return code
            time.sleep(0.5)
        traffic_settings = load_settings(broker=broker_url, redis_url=redis_url)
        traffic = TrafficThread(traffic_settings, rate, backfill_days=backfill_days)
        traffic.start()
        history = f"{backfill_days} days of history, then " if backfill_days else ""
        _say(f"worker ready; sending {history}~{rate:g} events/s; metrics at {base}/metrics; "
             "Ctrl-C stops")
        code = _live_view(f"{base}/metrics", worker, log_path, traffic, rate, funnel_steps,
                          bport, rport)
    except (KeyboardInterrupt, _Terminate):
        code = 0
    except ServiceError as exc:
        print(f"leadline demo: {exc}", file=sys.stderr, flush=True)
        code = 3
    finally:
        # No second Ctrl-C may cut the clean-up short.
        previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            print("\nleadline demo: stopping...", flush=True)
            steps: list[tuple[str, Callable[[], None]]] = []
            if traffic is not None:
                steps.append(("traffic", traffic.stop))
            if worker is not None:
                steps.append(("worker", partial(stop_process, worker)))
            if worker_log is not None:
                steps.append(("worker log", worker_log.close))
            steps += [(service.name, service.stop) for service in reversed(services)]
            for what, step in steps:  # each one runs whatever the others did
                try:
                    step()
                except Exception as exc:
                    print(f"leadline demo: stopping {what}: {exc!r}", file=sys.stderr,
                          flush=True)
                    code = code or 1
            if code == 0:
                shutil.rmtree(workdir, ignore_errors=True)
                print("leadline demo: stopped", flush=True)
            else:
                print(f"leadline demo: stopped; logs kept in {workdir}", flush=True)
        finally:
            signal.signal(signal.SIGINT, previous_int)
            signal.signal(signal.SIGTERM, previous_term)
    return code


def regression_note(generator: TrafficGenerator, now: float) -> str:
    """When the traffic's next (or current) latency regression is."""
    upcoming = generator.regressions(now, now + 3 * 3600)
    if not upcoming:
        return "latency regressions: none in the next 3 hours"
    start, end, factor = upcoming[0]
    until = time.strftime("%H:%M:%S", time.localtime(end))
    if start <= now:
        return f"latency regression NOW: the API ~{factor:.1f}x slower until {until}"
    since = time.strftime("%H:%M:%S", time.localtime(start))
    return f"next latency regression {since}-{until} (the API ~{factor:.1f}x slower)"


def _live_view(url: str, worker: subprocess.Popen[bytes], log_path: Path,
               traffic: TrafficThread, rate: float, funnel_steps: tuple[str, ...],
               bport: int, rport: int) -> int:
    tty = sys.stdout.isatty()
    last: tuple[float, float] | None = None
    while True:
        if worker.poll() is not None:
            print(f"leadline demo: the worker exited with {worker.returncode}; last lines of "
                  f"{log_path}:\n{tail(log_path)}", file=sys.stderr, flush=True)
            return 1
        if not traffic.is_alive() and traffic.code not in (None, 0):
            print(f"leadline demo: the traffic generator stopped ({traffic.code})",
                  file=sys.stderr, flush=True)
            return 1
        status, body = fetch(url)
        stamp = time.strftime("%H:%M:%S")
        gen = traffic.generator
        header = [
            f"leadline demo {stamp}  ·  {url}  ·  Ctrl-C stops",
            f"broker 127.0.0.1:{bport}  redis 127.0.0.1:{rport}  worker log {log_path}",
            f"traffic: ~{rate:g}/s target, {gen.stats['sent']:,} sent, "
            f"{gen.population:,} users; {traffic.backfill.summary()}",
            regression_note(gen, time.time()),
            "",
        ]
        if status == 200:
            samples = parse_metrics(body)
            processed = total(samples, "leadline_events_processed_total") or 0.0
            t = time.monotonic()
            eps = None if last is None else (processed - last[1]) / max(t - last[0], 1e-6)
            last = (t, processed)
            text = render(samples, events_per_s=eps, funnel_steps=funnel_steps, header=header)
        else:
            text = "\n".join([*header, f"(/metrics unavailable: {status or body})"])
        if tty:
            sys.stdout.write("\x1b[H\x1b[2J" + text + "\n")
        else:
            sys.stdout.write(text + "\n\n")
        sys.stdout.flush()
        time.sleep(REFRESH)
