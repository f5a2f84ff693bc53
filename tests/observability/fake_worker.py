"""A stand-in for a worker's ``/metrics``: every SPEC series, with plausible values.

It lets the observability tests run every dashboard and rule query against a real
Prometheus without Kafka or Redis. Label values follow the bundled definitions
(``config/leadline.yaml``); counters grow with wall time, so ``rate()`` is non-zero.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.observability.spec import EXTRA_METRICS, METRICS

REPO = Path(__file__).resolve().parents[2]

#: Zero in a healthy pipeline: no partition stalled, no failed fetch.
ZERO = frozenset({"leadline_partition_stalled", "leadline_fetch_errors_total"})

#: One in a healthy pipeline: Redis and the broker are reachable.
ONE = frozenset({"leadline_redis_up", "leadline_broker_up", "leadline_build_info"})

#: A healthy worker's memory: well inside its budget.
BYTES = {"leadline_memory_budget_bytes": 512 * 2**20, "process_resident_memory_bytes": 300 * 2**20,
         "leadline_resident_anonymous_bytes": 250 * 2**20}

#: Cumulative share of events per lag bucket: a healthy pipeline (p90 about 1 s).
LAG_BUCKETS = {"0.5": 0.8, "1.0": 0.9, "10.0": 0.95, "60.0": 0.98, "300.0": 0.99, "+Inf": 1.0}

#: Marketing channels when the config declares none (those of config/leadline.yaml).
DEFAULT_CHANNELS = ["google", "meta", "linkedin", "tiktok", "email", "affiliate"]

#: Day-N retention of a healthy product: D1 40 %, D7 20 %, D28 10 %.
RETENTION = {"1": 0.4, "7": 0.2, "28": 0.1}

#: Performance events and crash event when the config names none (SPEC 3b defaults).
DEFAULT_PERFORMANCE = {"events": ["page_load", "api_request"], "crash": "app_crash"}

#: Healthy API response times (seconds) by quantile; page loads take twice as long.
RESPONSE_TIMES = {"0.5": 0.2, "0.95": 0.6, "0.99": 1.2}
#: Session lengths (seconds) by quantile: 3 min, 15 min, 40 min.
SESSION_LENGTHS = {"0.5": 180.0, "0.9": 900.0, "0.99": 2400.0}

#: Plausible SPEC 3b values by metric: labels, series index -> value. Healthy enough for
#: the performance alerts to stay silent (1 % errors, 99.7 % crash-free).
LIFECYCLE: dict[str, Callable[[dict[str, str], int], float]] = {
    "product_retention_ratio": lambda labels, _i: RETENTION.get(labels["day"], 0.15),
    "product_retention_cohort_users": lambda _labels, i: 800.0 - 10 * i,
    "product_user_churn_ratio": lambda _labels, i: 0.3 + 0.05 * i,
    "product_net_revenue_retention_ratio": lambda _labels, i: 1.02 + 0.001 * i,
    "product_cac": lambda _labels, i: 40.0 + i,
    "product_ltv": lambda _labels, i: 600.0 + 10 * i,
    "product_response_time_seconds": lambda labels, _i: (
        RESPONSE_TIMES[labels["quantile"]] * (2 if labels["event"] == "page_load" else 1)),
    "product_session_duration_seconds": lambda labels, _i: SESSION_LENGTHS[labels["quantile"]],
    "product_request_error_ratio": lambda _labels, i: 0.01 + 0.001 * i,
    "product_crash_free_users_ratio": lambda _labels, i: 0.997 - 0.0001 * i,
}


def _config() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "config" / "leadline.yaml").read_text()))


def label_values() -> dict[str, list[str]]:
    raw = _config()
    funnel = next(iter(raw["funnels"].values()))
    return {
        "window": [str(w) for w in raw["windows"]],
        "platform": ["all", *raw["labels"]["platform"], "other"],
        "currency": list(raw["labels"]["currency"]),
        "plan": list(raw["labels"]["plan"]),
        "name": list(raw["events"]["known"]),
        "funnel": ["checkout"],
        "step": list(funnel["steps"]),
        "kind": ["new", "expansion", "contraction", "churn"],
        "survey": ["nps", "csat"],
        "feature": list(raw["features"]),
        "type": ["identify", "alias", "group"],
        "reason": ["not_json", "not_object", "schema", "too_large", "in_future", "too_old"],
        "version": ["0.0.0-test"],
        "topic": ["product-events"],
        "partition": ["0", "1", "2", "3"],
        "error": ["UnsupportedCodecError"],
        # SPEC 3b (issue 15); the shipped defaults when the config names none.
        "day": [str(d) for d in (raw.get("retention") or {}).get("days", [1, 7, 28])],
        "channel": [*(raw.get("marketing") or {}).get("channels", DEFAULT_CHANNELS), "other"],
        # SPEC 3b (issue 16)
        "event": list((raw.get("performance") or DEFAULT_PERFORMANCE)["events"]),
    }


def metric_label_values() -> dict[str, dict[str, list[str]]]:
    """Label values particular to one metric (SPEC 3b): the windows of churn and NRR,
    marketing spend's `other` currency, and the quantiles of session lengths and response
    times."""
    raw = _config()
    churn = (raw.get("churn") or {}).get("windows", ["24h", "7d"])
    nrr = (raw.get("revenue_retention") or {}).get("windows", ["7d", "30d"])
    return {
        "product_user_churn_ratio": {"window": [str(w) for w in churn]},
        "product_net_revenue_retention_ratio": {"window": [str(w) for w in nrr]},
        "product_marketing_spend": {"currency": [*raw["labels"]["currency"], "other"]},
        "product_session_duration_seconds": {"quantile": list(SESSION_LENGTHS)},
        "product_response_time_seconds": {"quantile": list(RESPONSE_TIMES)},
    }


def exposition(started: float, now: float) -> str:
    """Prometheus text format for every SPEC metric (and the consumer lag gauge)."""
    values = label_values()
    per_metric = metric_label_values()
    elapsed = now - started
    lines: list[str] = []
    for name, (kind, labels) in {**METRICS, **EXTRA_METRICS}.items():
        lines.append(f"# TYPE {name} {kind}")
        if kind == "histogram":
            total = 100 * elapsed
            for le, share in LAG_BUCKETS.items():
                lines.append(f'{name}_bucket{{le="{le}"}} {total * share:.3f}')
            lines.append(f"{name}_sum {total * 2:.3f}")
            lines.append(f"{name}_count {total:.3f}")
            continue
        own = {**values, **per_metric.get(name, {})}
        combos: Iterator[tuple[str, ...]] = itertools.product(*(own[lab] for lab in labels))
        for i, combo in enumerate(combos):
            rendered = ",".join(f'{lab}="{val}"' for lab, val in zip(labels, combo, strict=True))
            selector = f"{name}{{{rendered}}}" if rendered else name
            if name in LIFECYCLE:
                value = LIFECYCLE[name](dict(zip(labels, combo, strict=True)), i)
            elif name in ZERO:
                value = 0.0
            elif kind == "counter":
                value = (10 + i) * elapsed
            elif name == "leadline_watermark_timestamp_seconds":
                value = now - 2
            elif name == "process_start_time_seconds":
                value = started - 7200
            elif name.endswith("_ratio"):
                value = 0.1 + 0.01 * (i % 10)
            elif name in ONE:
                value = 1
            elif name in BYTES:
                value = BYTES[name]
            else:
                value = 100 + i
            lines.append(f"{selector} {value:.6f}")
    return "\n".join(lines) + "\n"


class FakeWorker:
    """Serves :func:`exposition` at ``http://127.0.0.1:<port>/metrics`` until ``stop()``."""

    def __init__(self) -> None:
        started = time.time()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exposition(started, time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
