"""This worker's pipeline-health metrics (``leadline_*``), cheap to update per batch.

Plain integers updated on the hot path and turned into metric families only when
Prometheus scrapes (the custom-collector pattern), instead of a locked client-library
metric call per event.
"""

from __future__ import annotations

import bisect
import logging
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

logger = logging.getLogger("leadline.redis")

LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)


class Health(Collector):
    """Counters of one worker process."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.received = 0
        self.processed: Counter[str] = Counter()
        self.invalid: Counter[str] = Counter()
        #: Valid Segment / RudderStack calls that are not events, by call type.
        self.ignored: Counter[str] = Counter()
        self.duplicates = 0
        self.watermark = 0.0
        self._lag_counts = [0] * (len(LAG_BUCKETS) + 1)
        self._lag_sum = 0.0
        self.consumer_lag: dict[tuple[str, int], int] = {}
        self.redis_up = 0
        self.redis_errors = 0
        self.view_rebuilds = 0
        self.broker_up = 0
        #: LEADLINE_MEMORY_BUDGET in bytes (0: not set, e.g. a process that is no worker).
        self.memory_budget = 0
        #: What this worker's memory holds, by kind (``streams/maintenance.py``).
        self.state_entries: dict[str, int] = {}
        self.state_bytes: dict[str, int] = {}
        #: Failed fetches by (topic, partition, error type), and the partitions stalled at
        #: a record that cannot be read -> its offset (``streams/faust_adapter.py``).
        #: Written by the consumer thread, read by scrapes.
        self.fetch_errors: Counter[tuple[str, int, str]] = Counter()
        self.stalled: dict[tuple[str, int], int] = {}

    def redis_ok(self) -> None:
        """A Redis call succeeded: ``leadline_redis_up`` is 1."""
        self.redis_up = 1

    def redis_failed(self, what: str, exc: BaseException, *, log: bool = True) -> None:
        """A Redis call failed: ``leadline_redis_up`` 0, one more error, and (``log``)
        one log line."""
        self.redis_up = 0
        self.redis_errors += 1
        if log:
            logger.warning("serving view %s failed: %s", what, exc)

    def fetch_failed(self, topic: str, partition: int, offset: int,
                     error: BaseException) -> None:
        """A fetch of ``topic[partition]`` could not be read at ``offset``: it is stalled."""
        self.fetch_errors[(topic, partition, type(error).__name__)] += 1
        self.stalled[(topic, partition)] = offset

    def fetch_resumed(self, topic: str, partition: int) -> None:
        """That partition is read again past its offset, or is no longer this worker's."""
        self.stalled.pop((topic, partition), None)

    def observe_lag(self, seconds: float) -> None:
        self._lag_counts[bisect.bisect_left(LAG_BUCKETS, seconds)] += 1
        self._lag_sum += seconds

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("leadline_events_received", "Messages read from the source "
                                  "topic by this worker.", value=self.received)
        processed = CounterMetricFamily("leadline_events_processed",
                                        "Valid, first-seen events folded into the metrics.",
                                        labels=["name"])
        for name, n in sorted(self.processed.items()):
            processed.add_metric([name], n)
        yield processed
        invalid = CounterMetricFamily("leadline_events_invalid",
                                      "Rejected events, sent to the dead-letter topic.",
                                      labels=["reason"])
        for reason, n in sorted(self.invalid.items()):
            invalid.add_metric([reason], n)
        yield invalid
        ignored = CounterMetricFamily(
            "leadline_messages_ignored", "Valid Segment / RudderStack calls that are not "
            "events (identify, alias, group), by call type.", labels=["type"])
        for kind, n in sorted(self.ignored.items()):
            ignored.add_metric([kind], n)
        yield ignored
        yield CounterMetricFamily("leadline_events_duplicate", "Events whose event_id was "
                                  "already seen within 24 h.", value=self.duplicates)
        buckets, acc = [], 0
        for bound, n in zip((*LAG_BUCKETS, float("inf")), self._lag_counts, strict=True):
            acc += n
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        yield HistogramMetricFamily("leadline_event_lag_seconds",
                                    "Processing time minus event time.",
                                    buckets=buckets, sum_value=self._lag_sum)
        yield GaugeMetricFamily("leadline_watermark_timestamp_seconds",
                                "Newest event time seen by this worker.", value=self.watermark)
        yield GaugeMetricFamily("leadline_memory_budget_bytes", "LEADLINE_MEMORY_BUDGET: the "
                                "RAM the worker's state is meant to stay within.",
                                value=self.memory_budget)
        anonymous = resident_anonymous_bytes()
        if anonymous is not None:
            yield GaugeMetricFamily(
                "leadline_resident_anonymous_bytes", "Resident anonymous memory (RssAnon): "
                "heap and private maps, without the file pages the kernel can drop (past "
                "hours' event ids, libraries) that process_resident_memory_bytes includes.",
                value=anonymous)
        info = GaugeMetricFamily("leadline_build_info", "Running version.", labels=["version"])
        info.add_metric([self.version], 1)
        yield info
        lag = GaugeMetricFamily("leadline_consumer_lag", "Messages behind the end of each "
                                "assigned partition.", labels=["topic", "partition"])
        for (topic, partition), n in sorted(self.consumer_lag.items()):
            lag.add_metric([topic, str(partition)], n)
        yield lag
        yield GaugeMetricFamily("leadline_redis_up", "1 if the last Redis call succeeded.",
                                value=self.redis_up)
        yield GaugeMetricFamily("leadline_broker_up", "1 if the Kafka broker answered the "
                                "last probe.", value=self.broker_up)
        yield CounterMetricFamily("leadline_redis_errors", "Failed Redis calls.",
                                  value=self.redis_errors)
        held = GaugeMetricFamily("leadline_state_entries", "What the owned partitions hold "
                                 "in memory: event ids remembered for dedupe, per-user "
                                 "states, cells; cells of all partitions decoded for "
                                 "scrapes.", labels=["kind"])
        for kind, n in sorted(self.state_entries.items()):
            held.add_metric([kind], n)
        yield held
        size = GaugeMetricFamily("leadline_state_bytes", "Memory those entries take, "
                                 "estimated from object and array sizes.", labels=["kind"])
        for kind, n in sorted(self.state_bytes.items()):
            size.add_metric([kind], n)
        yield size
        yield CounterMetricFamily("leadline_view_rebuilds", "Partitions republished to the "
                                  "serving view from the tables.", value=self.view_rebuilds)
        stalled = dict(self.stalled)
        stall = GaugeMetricFamily("leadline_partition_stalled", "1 while this worker cannot "
                                  "read an assigned partition at its position (it retries; "
                                  "the other partitions go on), else 0.",
                                  labels=["topic", "partition"])
        for topic, partition in sorted(set(self.consumer_lag) | set(stalled)):
            stall.add_metric([topic, str(partition)], int((topic, partition) in stalled))
        yield stall
        errors = CounterMetricFamily("leadline_fetch_errors", "Fetches of a partition whose "
                                     "records could not be read, by error type.",
                                     labels=["topic", "partition", "error"])
        for (topic, partition, error), n in sorted(dict(self.fetch_errors).items()):
            errors.add_metric([topic, str(partition), error], n)
        yield errors


def resident_anonymous_bytes() -> int | None:
    """RssAnon of this process from ``/proc/self/status``; None where there is none."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        return None
    return None
