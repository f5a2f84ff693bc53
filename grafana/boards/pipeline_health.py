"""The SREs' board: a top row of the numbers to look at first, then throughput, data
quality, latency and freshness, workers and their resources."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard, stat, statetimeline
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DynamicConfigValue,
    ValueMap,
    ValueMappingResult,
)

from grafana.boards.frame import LEADING_UID, PIPELINE_UID, frame, link_to
from grafana.layout import Layout
from grafana.panels import (
    DATASOURCE,
    EVENTS_PER_SECOND,
    query,
    stat_panel,
    thresholds,
    timeseries_panel,
)


def rate(metric: str, by: str = "") -> str:
    """Per-second rate of a leadline counter, summed over workers (kept apart by ``by``)."""
    grouping = f" by ({by})" if by else ""
    return f'sum{grouping} (rate({metric}{{job="leadline"}}[$__rate_interval]))'


def lag_quantile(q: float) -> str:
    """Quantile ``q`` of the event lag histogram, all workers' buckets merged."""
    return (
        f"histogram_quantile({q}, sum by (le) "
        '(rate(leadline_event_lag_seconds_bucket{job="leadline"}[$__rate_interval])))'
    )


def build() -> dashboard.Dashboard:
    """The pipeline health board; it enumerates no configured label values."""
    layout = Layout()
    _now(layout)
    _throughput(layout)
    _data_quality(layout)
    _latency_and_freshness(layout)
    _workers(layout)
    _resources(layout)
    board = frame(
        "leadline · Pipeline health",
        uid=PIPELINE_UID,
        description=(
            "Health of the leadline workers: throughput, dead letters, lag, freshness. "
            "Metrics are per worker and summed."
        ),
        time_from="now-3h",
        refresh="30s",
        link=link_to(LEADING_UID, "Leading indicators"),
    )
    return layout.apply(board)


def _now_stat(title: str, description: str, expr: str, *, unit: str, decimals: int,
              limits: dashboard.ThresholdsConfig) -> stat.Panel:
    return (
        stat_panel(title, description, unit=unit, decimals=decimals, limits=limits)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .with_target(query(expr, title, "A"))
    )


def _now(layout: Layout) -> None:
    """The first row: is the pipeline healthy right now? Each stat is coloured at its
    alert's threshold."""
    layout.row("Now")
    stats = [
        ("Events/s", "Messages read from the events topic per second, all workers (5m rate).",
         "leadline:events_received:rate5m", EVENTS_PER_SECOND, 0,
         ((None, "red"), (0.001, "green"))),
        ("Dead letters", "Share of received events rejected to the DLQ (5m); red at the "
         "LeadlineDeadLetterRatioHigh threshold, 5 %.",
         "leadline:events_invalid:ratio_rate5m", "percentunit", 2,
         ((None, "green"), (0.05, "red"))),
        ("p90 event lag", "90 % of events were processed within this long after they "
         "happened (5m); red at the LeadlineEventLagHigh threshold, 2 min.",
         "leadline:event_lag_seconds:p90_rate5m", "s", 1, ((None, "green"), (120, "red"))),
        ("Watermark age", "Now minus the newest event time, on the worker furthest behind; "
         "red at 15 min (LeadlineMetricsStale, with a backlog).",
         "max(leadline:watermark_age_seconds:by_instance)", "s", 0,
         ((None, "green"), (900, "red"))),
        None,  # workers up against expected: two values, below
        ("Redis up", "Workers that reach Redis over all workers (1 = every one).",
         'avg(leadline_redis_up{job="leadline"})', "percentunit", 0,
         ((None, "red"), (1, "green"))),
        ("Broker up", "Workers that reach the Kafka broker over all workers (1 = every one).",
         'avg(leadline_broker_up{job="leadline"})', "percentunit", 0,
         ((None, "red"), (1, "green"))),
        ("Consumer lag", "Messages waiting on every assigned partition, all workers. Growing "
         "for 15 min above 10,000: LeadlineConsumerLagGrowing.",
         "leadline:consumer_lag:sum", "short", 0, ((None, "green"), (10_000, "orange"))),
        ("Memory / budget", "Anonymous resident memory over LEADLINE_MEMORY_BUDGET, on the "
         "worker closest to its budget; red at 115 % (LeadlineMemoryOverBudget).",
         'max(leadline_resident_anonymous_bytes{job="leadline"} / on (instance) '
         'leadline_memory_budget_bytes{job="leadline"})', "percentunit", 0,
         ((None, "green"), (0.9, "orange"), (1.15, "red"))),
        ("CPU", "CPU of the busiest worker, in cores (1 = one full core: it cannot go faster).",
         'max(rate(process_cpu_seconds_total{job="leadline"}[$__rate_interval]))', "none", 2,
         ((None, "green"), (0.8, "orange"))),
        ("State memory", "What the workers' state takes in memory, all workers "
         "(leadline_state_bytes: event ids, users, cells, the local store's cache).",
         'sum(leadline_state_bytes{job="leadline"})', "bytes", 0, ((None, "blue"),)),
    ]
    for stat_ in stats:  # two lines of six
        if stat_ is None:
            layout.add(_workers_expected(), w=4, h=4)
            continue
        title, description, expr, unit, decimals, steps = stat_
        layout.add(_now_stat(title, description, expr, unit=unit, decimals=decimals,
                             limits=thresholds(*steps)), w=4, h=4)


def _workers_expected() -> stat.Panel:
    return (
        stat_panel("Workers up / expected", "Workers Prometheus scrapes successfully, and "
                   "leadline:workers:expected (LEADLINE_EXPECTED_WORKERS when the rules "
                   "were rendered, or the most up in the last 6 hours if more). Fewer for "
                   "10 min: LeadlineWorkersMissing; none: LeadlineNoWorkers.",
                   unit="none", decimals=0,
                   limits=thresholds((None, "red"), (1, "green")))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .with_target(query('count(up{job="leadline"} == 1) or vector(0)', "up", "A"))
        .with_target(query("leadline:workers:expected", "expected", "B"))
    )


def _throughput(layout: Layout) -> None:
    layout.row("Throughput")
    layout.add(
        timeseries_panel(
            "Events received and processed",
            "Messages read from the events topic per second, and valid events folded into "
            "the metrics, summed over workers. The gap is invalid plus duplicate events.",
            [
                (rate("leadline_events_received_total"), "received"),
                (rate("leadline_events_processed_total"), "processed"),
            ],
            unit=EVENTS_PER_SECOND,
            decimals=1,
            min_val=0,
        ),
        w=8,
    )
    layout.add(
        timeseries_panel(
            "Processed by event name",
            "Valid events processed per second by event name (configured names; others are "
            "'other'), summed over workers.",
            [(rate("leadline_events_processed_total", "name"), "{{name}}")],
            unit=EVENTS_PER_SECOND,
            decimals=1,
            min_val=0,
        ),
        w=8,
    )
    layout.add(
        timeseries_panel(
            "Per-worker throughput",
            "Valid events processed per second by each worker (instance). Uneven lines mean "
            "uneven partition assignment or a hot key; a line at zero is an idle or stuck worker.",
            [(rate("leadline_events_processed_total", "instance"), "{{instance}}")],
            unit=EVENTS_PER_SECOND,
            decimals=1,
            min_val=0,
        ),
        w=8,
    )


def _data_quality(layout: Layout) -> None:
    layout.row("Data quality")
    layout.add(
        timeseries_panel(
            "Rejected to the DLQ by reason",
            "Events written to the dead-letter topic per second, by reason (not_json, "
            "not_object, schema, too_large, in_future, too_old), summed over workers.",
            [(rate("leadline_events_invalid_total", "reason"), "{{reason}}")],
            unit=EVENTS_PER_SECOND,
            decimals=2,
            min_val=0,
        ),
        w=8,
    )
    layout.add(
        timeseries_panel(
            "Dead-letter ratio",
            "Rejected events over received events (5-minute rates summed over workers, then "
            "divided). The dashed line is the LeadlineDeadLetterRatioHigh threshold (5 %).",
            [("leadline:events_invalid:ratio_rate5m", "dead-letter ratio")],
            unit="percentunit",
            decimals=2,
            limits=thresholds((None, "green"), (0.05, "red")),
            min_val=0,
            show_thresholds=True,
        ),
        w=8,
    )
    layout.add(
        timeseries_panel(
            "Duplicates dropped",
            "Events skipped per second because their event_id was already counted in the "
            "last 24 h (producer retries, replays), summed over workers.",
            [(rate("leadline_events_duplicate_total"), "duplicates")],
            unit=EVENTS_PER_SECOND,
            decimals=2,
            min_val=0,
        ),
        w=8,
    )


def _latency_and_freshness(layout: Layout) -> None:
    layout.row("Latency and freshness")
    layout.add(
        timeseries_panel(
            "Event lag (processing time - event time)",
            "p50, p90 and p99 of how long after it happened an event was processed, over all "
            "workers. Late mobile clients raise p99 alone; a rise of p50 means the workers "
            "are behind. The dashed line is the LeadlineEventLagHigh threshold on p90 (2 min).",
            [(lag_quantile(q), f"p{round(q * 100)}") for q in (0.5, 0.9, 0.99)],
            unit="s",
            decimals=1,
            limits=thresholds((None, "green"), (120, "red")),
            min_val=0,
            show_thresholds=True,
        ),
        w=8,
    )
    layout.add(
        timeseries_panel(
            "Watermark age by worker",
            "Now minus the newest event time each worker has seen. It grows when no events "
            "arrive or a worker is stuck; with a consumer backlog above 15 minutes it fires "
            "LeadlineMetricsStale (dashed line).",
            [("leadline:watermark_age_seconds:by_instance", "{{instance}}")],
            unit="s",
            decimals=0,
            limits=thresholds((None, "green"), (900, "red")),
            min_val=0,
            show_thresholds=True,
        ),
        w=8,
    )
    layout.add(
        timeseries_panel(
            "Consumer lag by partition",
            "Messages behind the high watermark on each partition, as reported by the worker "
            "that owns it. A growing line is a partition its worker cannot keep up with.",
            [
                (
                    'sum by (topic, partition) (leadline_consumer_lag{job="leadline"})',
                    "{{topic}}/{{partition}}",
                )
            ],
            unit="short",
            decimals=0,
            min_val=0,
        ),
        w=8,
    )


def _up_down() -> list[ValueMap]:
    return [
        ValueMap(
            options={
                "0": ValueMappingResult(text="down", color="red", index=0),
                "1": ValueMappingResult(text="up", color="green", index=1),
            }
        )
    ]


def _workers(layout: Layout) -> None:
    layout.row("Workers")
    layout.add(
        statetimeline.Panel()
        .title("Workers up")
        .description(
            "Whether Prometheus could scrape each worker (up). Workers are found through DNS, "
            "so a removed container disappears instead of turning red."
        )
        .datasource(DATASOURCE)
        .unit("none")
        .decimals(0)
        .thresholds(thresholds((None, "red"), (1, "green")))
        .mappings(_up_down())
        .show_value(common.VisibilityMode.NEVER)
        .with_target(query('up{job="leadline"}', "{{instance}}", "A")),
        w=12,
    )
    layout.add(
        stat_panel(
            "Workers up now",
            "Number of workers Prometheus scrapes successfully right now.",
            unit="none",
            decimals=0,
            limits=thresholds((None, "red"), (1, "green")),
        )
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .with_target(query('sum(up{job="leadline"})', "workers up", "A")),
        w=6,
    )
    layout.add(
        stat_panel(
            "Versions running",
            "Workers per leadline version (leadline_build_info); two values mid-deploy.",
            unit="none",
            decimals=0,
            limits=thresholds((None, "blue")),
        )
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .with_target(
            query(
                'count by (version) (leadline_build_info{job="leadline"})',
                "{{version}}",
                "A",
                instant=True,
            )
        ),
        w=6,
    )
    layout.add(
        statetimeline.Panel()
        .title("Redis and broker up")
        .description(
            "Whether each worker reaches Redis (leadline_redis_up, the serving view) and the "
            "Kafka broker (leadline_broker_up). Down pages LeadlineRedisDown or "
            "LeadlineBrokerDown, which suppress the product alerts."
        )
        .datasource(DATASOURCE)
        .unit("none")
        .decimals(0)
        .thresholds(thresholds((None, "red"), (1, "green")))
        .mappings(_up_down())
        .show_value(common.VisibilityMode.NEVER)
        .with_target(query('leadline_redis_up{job="leadline"}', "redis {{instance}}", "A"))
        .with_target(query('leadline_broker_up{job="leadline"}', "broker {{instance}}", "B")),
        w=24,
    )


def _resources(layout: Layout) -> None:
    layout.row("Resources")
    layout.add(
        timeseries_panel(
            "Memory against budget",
            "Anonymous resident memory of each worker (the heap: what the alert watches), "
            "its whole RSS (with the page cache of mapped id files, which the kernel drops "
            "under pressure), LEADLINE_MEMORY_BUDGET, and the LeadlineMemoryOverBudget line "
            "at budget + 15 % (dashed). The alert also fires when the last hour's trend of "
            "the anonymous memory crosses that line within 4 hours.",
            [
                ('leadline_resident_anonymous_bytes{job="leadline"}',
                 "anonymous {{instance}}"),
                ('process_resident_memory_bytes{job="leadline"}', "RSS {{instance}}"),
                ('max(leadline_memory_budget_bytes{job="leadline"})', "budget"),
                ('1.15 * max(leadline_memory_budget_bytes{job="leadline"})', "alert line"),
            ],
            unit="bytes",
            decimals=0,
            min_val=0,
        ).override_by_name("alert line", [
            DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
        ]),
        w=8,
    )
    layout.add(
        timeseries_panel(
            "State memory by kind",
            "What the workers' state takes in memory, summed over workers "
            "(leadline_state_bytes): event ids of the dedupe horizon, per-user states, "
            "cells, cells decoded for scrapes, and the local store's cache.",
            [('sum by (kind) (leadline_state_bytes{job="leadline"})', "{{kind}}")],
            unit="bytes",
            decimals=0,
            min_val=0,
        ),
        w=8,
    )
    layout.add(
        timeseries_panel(
            "CPU by worker",
            "CPU seconds per second each worker uses (1 = one core).",
            [(rate("process_cpu_seconds_total", "instance"), "{{instance}}")],
            unit="none",
            decimals=2,
            min_val=0,
        ),
        w=8,
    )
