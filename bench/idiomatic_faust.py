"""The baseline: the same workload through Faust the way its documentation teaches.

One agent, ``async for value in stream`` one event at a time, ``orjson`` decode,
and two windowed tables (``.tumbling()``, 5-minute windows kept 30 days): a count
per event name and a count per platform. No validation, dedupe, distinct users,
revenue or serving view: it does much less than leadline, so the ratio flatters
the baseline. Windows are relative to the message timestamp (Faust's default
stream time); the tables are keyed by name/platform without a ``group_by``, the
common idiom (a repartition would only make the baseline slower).

Run: ``python -m bench.idiomatic_faust worker -l info`` (at ``warn`` and above
Faust's terminal spinner turns the root logger to DEBUG, and every debug call of
aiokafka then builds a log record: 10 % slower) with ``BENCH_BROKER``
(``kafka://host:port``), ``BENCH_TOPIC``, ``BENCH_APP_ID``, ``BENCH_EXPECTED``
(messages to expect), ``BENCH_PROGRESS`` (progress log, same format as
``bench/probe.py``: ``agent <t> <t> <n> <done>``), ``BENCH_DATADIR``, ``BENCH_WEB_PORT``,
``BENCH_SESSION_TIMEOUT`` (s, default 10 like leadline).
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from typing import Any

import faust
import orjson

ENV = os.environ
app = faust.App(
    ENV.get("BENCH_APP_ID", "idiomatic"),
    broker=ENV.get("BENCH_BROKER", "kafka://127.0.0.1:9092"),
    store="memory://",
    topic_partitions=4,
    topic_replication_factor=1,
    broker_session_timeout=float(ENV.get("BENCH_SESSION_TIMEOUT", "10")),
    broker_heartbeat_interval=float(ENV.get("BENCH_SESSION_TIMEOUT", "10")) / 5,
    consumer_auto_offset_reset="earliest",
    producer_linger=0.02,  # leadline's setting; Faust's default (0) sends every record alone
    web_port=int(ENV.get("BENCH_WEB_PORT", "6067")),
    web_bind="127.0.0.1",
    web_host="127.0.0.1",
    datadir=ENV.get("BENCH_DATADIR", "var/idiomatic"),
)
source = app.topic(ENV.get("BENCH_TOPIC", "product-events"), key_type=bytes, value_type=bytes,
                   key_serializer="raw", value_serializer="raw")
per_name = app.Table("per_name", default=int).tumbling(
    timedelta(minutes=5), expires=timedelta(days=30))
per_platform = app.Table("per_platform", default=int).tumbling(
    timedelta(minutes=5), expires=timedelta(days=30))

EXPECTED = int(ENV.get("BENCH_EXPECTED", "0"))
progress = open(ENV.get("BENCH_PROGRESS", os.devnull), "a", buffering=1)  # noqa: SIM115


def _name_and_platform(event: Any) -> tuple[str, str]:
    if not isinstance(event, dict):
        return "invalid", "invalid"
    name = event.get("name") or event.get("event") or "unknown"
    platform = event.get("platform")
    if platform is None:
        device = (event.get("context") or {}).get("device") or {}
        platform = device.get("type") if isinstance(device, dict) else None
    return str(name), str(platform or "unknown")


@app.agent(source)
async def count(stream: Any) -> None:
    done = 0
    async for value in stream:
        if done == 0:
            t = time.time()
            progress.write(f"agent {t:.6f} {t:.6f} 1 0\n")
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            event = None
        name, platform = _name_and_platform(event)
        per_name[name] += 1
        per_platform[platform] += 1
        done += 1
        if done % 1000 == 0 or done == EXPECTED:
            t = time.time()
            progress.write(f"agent {t:.6f} {t:.6f} 1000 {done}\n")


if __name__ == "__main__":
    app.main()
