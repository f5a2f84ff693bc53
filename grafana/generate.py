"""Generate leadline's Grafana dashboards as code (grafana-foundation-sdk).

Writes ``grafana/dashboards/*.json``, which are committed and provisioned by
``grafana/provisioning/dashboards/leadline.yaml``. Edit this file, never the
JSON: ``python grafana/generate.py`` rewrites it, ``--check`` fails when the
committed JSON is out of date (tests/observability checks the same).

Two rules shape every query:

* ``product_*`` gauges are global - every worker reports the same
  whole-pipeline value - so they are de-duplicated with ``max by (...)``,
  never summed across instances.
* ``leadline_*`` health metrics are per worker, so they are summed.

Window, platform, currency and funnel-step values come from the bundled
definitions, ``config/leadline.yaml``: regenerate after changing it.

The SDK build is pinned to the Grafana image in docker-compose.yml (11.6).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from grafana_foundation_sdk.builders import (
    bargauge,
    dashboard,
    prometheus,
    stat,
    statetimeline,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DynamicConfigValue,
    GridPos,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "grafana" / "dashboards"
DEFINITIONS = REPO / "config" / "leadline.yaml"

DATASOURCE = DataSourceRef(type_val="prometheus", uid="leadline-prometheus")
LEADING_UID = "leadline-leading-indicators"
PIPELINE_UID = "leadline-pipeline-health"
TAGS = ["leadline"]

LAST_WEEK = " · last week"
OFFSET = " offset 1w"

# Grafana's built-in currency units; other currencies get a prefix or no unit.
CURRENCY_UNITS = {
    "USD": "currencyUSD",
    "EUR": "currencyEUR",
    "GBP": "currencyGBP",
    "JPY": "currencyJPY",
    "BRL": "currencyBRL",
    "INR": "currencyINR",
    "CAD": "prefix:CA$",
    "AUD": "prefix:A$",
}

EVENTS_PER_SECOND = "suffix: ev/s"


@dataclass(frozen=True)
class Definitions:
    """The label values the dashboards enumerate, read from config/leadline.yaml."""

    windows: list[str]
    currencies: list[str]
    checkout_steps: list[str]
    default_window: str = "24h"


def load_definitions(path: Path = DEFINITIONS) -> Definitions:
    """Read windows, currencies and the checkout funnel's steps from the definitions file."""
    raw = yaml.safe_load(path.read_text())
    windows = [str(w) for w in raw["windows"]]
    return Definitions(
        windows=windows,
        currencies=[str(c) for c in raw["labels"]["currency"]],
        checkout_steps=[str(s) for s in raw["funnels"]["checkout"]["steps"]],
        default_window="24h" if "24h" in windows else windows[0],
    )


# --------------------------------------------------------------------------- helpers


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds; the first step's value must be None (the base colour)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
    )


NEUTRAL = thresholds((None, "text"))


def target(expr: str, legend: str, ref: str, *, instant: bool = False) -> prometheus.Dataquery:
    query = (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    )
    return query.instant() if instant else query.range()


def dashed(panel: timeseries.Panel) -> timeseries.Panel:
    """Draw every "last week" series as a thin dashed line."""
    return panel.override_by_regexp(
        f".*{LAST_WEEK}$",
        [
            DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            DynamicConfigValue(id_val="custom.lineWidth", value=1),
            DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        ],
    )


def currency_units(panel: Any, currencies: list[str]) -> Any:
    """One unit override per currency; series names end with the currency code."""
    for code in currencies:
        unit = CURRENCY_UNITS.get(code)
        if unit:
            panel = panel.override_by_regexp(
                f"^(.* )?{code}({LAST_WEEK})?$", [DynamicConfigValue(id_val="unit", value=unit)]
            )
    return panel


def timeseries_panel(
    title: str,
    description: str,
    queries: list[tuple[str, str]],
    *,
    unit: str,
    decimals: int,
    limits: dashboard.ThresholdsConfig = NEUTRAL,
    week_over_week: bool = False,
    min_val: float | None = None,
    max_val: float | None = None,
    log_scale: bool = False,
    show_thresholds: bool = False,
) -> timeseries.Panel:
    """A time series panel. ``queries`` are ``(expr, legend)``; with ``week_over_week``
    each ``expr`` holds an ``{o}`` placeholder after every selector and is drawn a
    second time with ``offset 1w`` as a dashed overlay."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .decimals(decimals)
        .thresholds(limits)
        .line_width(2)
        .fill_opacity(8)
        .show_points(common.VisibilityMode.NEVER)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    refs = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for expr, legend in queries:
        now = expr.format(o="") if week_over_week else expr
        panel = panel.with_target(target(now, legend, next(refs)))
    if week_over_week:
        for expr, legend in queries:
            panel = panel.with_target(target(expr.format(o=OFFSET), legend + LAST_WEEK, next(refs)))
        panel = dashed(panel)
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    if log_scale:
        panel = panel.scale_distribution(
            common_builders.ScaleDistributionConfig().type(common.ScaleDistribution.LOG).log(10)
        )
    if show_thresholds:
        panel = panel.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    return panel


@dataclass
class Layout:
    """Places panels left to right on Grafana's 24-column grid, rows on their own line."""

    panels: list[Any] = field(default_factory=list)
    x: int = 0
    y: int = 0
    line_height: int = 0
    next_id: int = 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(("row", title, GridPos(h=1, w=24, x=0, y=self.y), self._id()))
        self.y += 1

    def add(self, panel: Any, w: int, h: int = 8) -> None:
        if self.x + w > 24:
            self._newline()
        self.panels.append(
            ("panel", panel.grid_pos(GridPos(h=h, w=w, x=self.x, y=self.y)).id(self._id()))
        )
        self.x += w
        self.line_height = max(self.line_height, h)

    def apply(self, board: dashboard.Dashboard) -> dashboard.Dashboard:
        for item in self.panels:
            if item[0] == "row":
                _, title, pos, panel_id = item
                board = board.with_row(dashboard.Row(title).grid_pos(pos).id(panel_id))
            else:
                board = board.with_panel(item[1])
        return board

    def _newline(self) -> None:
        self.y += self.line_height
        self.x = 0
        self.line_height = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def links(other_uid: str, other_title: str) -> list[Builder[models.DashboardLink]]:
    return [
        dashboard.DashboardLink(other_title)
        .type(DashboardLinkType.LINK)
        .url(f"/d/{other_uid}")
        .icon("dashboard")
        .keep_time(True)
        .include_vars(False)
        .target_blank(False)
        .as_dropdown(False)
        .tooltip(other_title)
        .tags([])
    ]


# ---------------------------------------------------------------- leading indicators


def leading_indicators(defs: Definitions) -> dashboard.Dashboard:
    """The PMs' board: engagement, activation, funnel, revenue, satisfaction."""
    layout = Layout()
    win = 'window="$window"'

    layout.row("Engagement")
    layout.add(
        timeseries_panel(
            "Active users by window",
            "Distinct users with any valid event in the trailing 5m, 1h, 24h (DAU), 7d (WAU) "
            "and 30d (MAU) windows, for the selected platform ('all' is their union). "
            "Dashed: the same series one week earlier. Log scale: the windows differ by orders "
            "of magnitude. HyperLogLog estimate, error under 2 %.",
            [('leadline:product_active_users:max{{platform="$platform"}}{o}', "{{window}}")],
            unit="short",
            decimals=0,
            week_over_week=True,
            log_scale=True,
        ),
        w=16,
        h=9,
    )
    now_panel = (
        stat.Panel()
        .title("Active users now")
        .description(
            "Current distinct active users per trailing window for the selected platform "
            "(24h = DAU, 7d = WAU, 30d = MAU)."
        )
        .datasource(DATASOURCE)
        .unit("short")
        .decimals(0)
        .thresholds(thresholds((None, "blue")))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .orientation(common.VizOrientation.VERTICAL)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    # One query per window keeps the windows in their configured order.
    for ref, window in zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", defs.windows, strict=False):
        now_panel = now_panel.with_target(
            target(
                f'leadline:product_active_users:max{{platform="$platform", window="{window}"}}',
                "{{window}}",
                ref,
                instant=True,
            )
        )
    layout.add(now_panel, w=8, h=9)
    layout.add(
        timeseries_panel(
            "Stickiness (DAU / MAU)",
            "Active users over 24h divided by active users over 30d for the selected platform: "
            "the share of the monthly audience that comes back every day. Around 20 % is healthy "
            "for most products. Dashed: one week earlier.",
            [
                (
                    'max by (platform) (product_stickiness_ratio{{job="leadline", '
                    'platform="$platform"}}{o})',
                    "stickiness",
                )
            ],
            unit="percentunit",
            decimals=1,
            limits=thresholds((None, "red"), (0.1, "yellow"), (0.2, "green")),
            week_over_week=True,
            min_val=0,
            max_val=1,
        ),
        w=12,
    )
    layout.add(
        timeseries_panel(
            "Signups ($window)",
            "Users who signed up in the trailing window chosen above, for the selected platform. "
            "Dashed: one week earlier. Alert LeadlineSignupsStalled fires when the 1h value is "
            "zero at an hour that usually has signups.",
            [('leadline:product_signups:max{{platform="$platform", ' + win + "}}{o}", "signups")],
            unit="short",
            decimals=0,
            week_over_week=True,
            min_val=0,
        ),
        w=12,
    )

    layout.row("Activation and conversion")
    layout.add(
        timeseries_panel(
            "Activation ratio ($window)",
            "Of the users who signed up in the window, the share with an activation ('aha') "
            "event within 7 days of signing up. All platforms. Dashed: one week earlier.",
            [
                (
                    'max by (window) (product_activation_ratio{{job="leadline", ' + win + "}}{o})",
                    "activation",
                )
            ],
            unit="percentunit",
            decimals=1,
            limits=thresholds((None, "red"), (0.2, "yellow"), (0.4, "green")),
            week_over_week=True,
            min_val=0,
            max_val=1,
        ),
        w=12,
    )
    layout.add(
        timeseries_panel(
            "Conversion ratio ($window)",
            "Distinct converting users (default event: purchase) over distinct active users in "
            "the window, for the selected platform. Dashed: one week earlier. Alert "
            "LeadlineConversionRatioDrop watches the 1h value against the median of the same "
            "hour over the last 3 weeks.",
            [
                (
                    'leadline:product_conversion_ratio:max{{platform="$platform", ' + win + "}}{o}",
                    "conversion",
                )
            ],
            unit="percentunit",
            decimals=2,
            limits=thresholds((None, "red"), (0.01, "yellow"), (0.03, "green")),
            week_over_week=True,
            min_val=0,
        ),
        w=12,
    )

    funnel_gauge = (
        bargauge.Panel()
        .title("Checkout funnel ($window)")
        .description(
            "Users who entered the checkout funnel in the window and reached each step, in "
            "order, within the funnel's conversion window (1 h by default). Steps in funnel "
            "order, all platforms."
        )
        .datasource(DATASOURCE)
        .unit("short")
        .decimals(0)
        .min(0)
        .thresholds(thresholds((None, "blue")))
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .show_unfilled(True)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    refs = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    for step in defs.checkout_steps:
        funnel_gauge = funnel_gauge.with_target(
            target(
                'max by (step) (product_funnel_users{job="leadline", funnel="checkout", '
                f'step="{step}", ' + win + "})",
                "{{step}}",
                next(refs),
                instant=True,
            )
        )
    layout.add(funnel_gauge, w=10, h=9)
    layout.add(
        timeseries_panel(
            "Checkout step conversion ($window)",
            "For each checkout step, the users who reached it divided by the users who entered "
            "the funnel (first step = 100 %). The last step is the funnel's overall conversion. "
            "Dashed: one week earlier.",
            [
                (
                    'max by (step) (product_funnel_conversion_ratio{{job="leadline", '
                    'funnel="checkout", ' + win + "}}{o})",
                    "{{step}}",
                )
            ],
            unit="percentunit",
            decimals=1,
            limits=thresholds((None, "red"), (0.02, "yellow"), (0.05, "green")),
            week_over_week=True,
            min_val=0,
            max_val=1,
        ),
        w=14,
        h=9,
    )

    layout.row("Revenue")
    layout.add(
        currency_units(
            timeseries_panel(
                "Revenue by currency ($window)",
                "Sum of purchase amounts in the window, per currency, in the currency's major "
                "unit (never converted or added across currencies). Dashed: one week earlier. "
                "Alert LeadlineRevenueStalled fires when the last hour has none at an hour "
                "that usually has purchases.",
                [("leadline:product_revenue:max{{" + win + "}}{o}", "{{currency}}")],
                unit="short",
                decimals=2,
                week_over_week=True,
                min_val=0,
            ),
            defs.currencies,
        ),
        w=12,
    )
    layout.add(
        currency_units(
            timeseries_panel(
                "ARPU by currency ($window)",
                "Average revenue per active user in the window: revenue in a currency divided "
                "by all active users. Dashed: one week earlier.",
                [
                    (
                        'max by (currency) (product_arpu{{job="leadline", ' + win + "}}{o})",
                        "{{currency}}",
                    )
                ],
                unit="short",
                decimals=2,
                week_over_week=True,
                min_val=0,
            ),
            defs.currencies,
        ),
        w=12,
    )
    layout.add(
        currency_units(
            timeseries_panel(
                "MRR by currency",
                "Monthly recurring revenue of the active subscriptions now, per currency, "
                "summed over plans (each plan's global value de-duplicated across workers "
                "first). Dashed: one week earlier.",
                [
                    (
                        "sum by (currency) (max by (currency, plan) "
                        '(product_mrr{{job="leadline"}}{o}))',
                        "{{currency}}",
                    )
                ],
                unit="short",
                decimals=2,
                week_over_week=True,
                min_val=0,
            ),
            defs.currencies,
        ),
        w=12,
    )
    layout.add(
        currency_units(
            timeseries_panel(
                "MRR movement ($window)",
                "MRR gained and lost in the window, per kind: new (first subscriptions), "
                "expansion (upgrades), contraction (downgrades) and churn (cancellations), per "
                "currency. Dashed: one week earlier.",
                [
                    (
                        'max by (kind, currency) (product_mrr_movement{{job="leadline", '
                        + win
                        + "}}{o})",
                        "{{kind}} {{currency}}",
                    )
                ],
                unit="short",
                decimals=2,
                week_over_week=True,
                min_val=0,
            ),
            defs.currencies,
        ),
        w=12,
    )

    layout.row("Satisfaction")
    layout.add(
        timeseries_panel(
            "NPS ($window)",
            "Net Promoter Score of the nps_submitted responses in the window: % promoters "
            "(9-10) minus % detractors (0-6), from -100 to 100. Dashed: one week earlier.",
            [('max by (window) (product_nps{{job="leadline", ' + win + "}}{o})", "NPS")],
            unit="none",
            decimals=0,
            limits=thresholds((None, "red"), (0, "yellow"), (30, "green")),
            week_over_week=True,
            min_val=-100,
            max_val=100,
            show_thresholds=True,
        ),
        w=12,
    )
    layout.add(
        timeseries_panel(
            "CSAT ($window)",
            "Mean customer-satisfaction score of the csat_submitted responses in the window, "
            "from 1 to 5. Dashed: one week earlier.",
            [('max by (window) (product_csat{{job="leadline", ' + win + "}}{o})", "CSAT")],
            unit="none",
            decimals=2,
            limits=thresholds((None, "red"), (3.5, "yellow"), (4.2, "green")),
            week_over_week=True,
            min_val=1,
            max_val=5,
            show_thresholds=True,
        ),
        w=12,
    )

    board = (
        dashboard.Dashboard("leadline · Leading indicators")
        .uid(LEADING_UID)
        .description(
            "Product leading indicators computed in real time from product events. Every "
            "worker reports the same global values; queries take max across workers."
        )
        .tags(TAGS)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-7d", "now")
        .refresh("1m")
        .timezone("browser")
        .links(links(PIPELINE_UID, "Pipeline health"))
        .with_variable(
            dashboard.QueryVariable("platform")
            .label("Platform")
            .description("Platform breakdown; 'all' is the union of every platform.")
            .datasource(DATASOURCE)
            .query("label_values(product_active_users, platform)")
            .current(VariableOption(selected=True, text="all", value="all"))
            .refresh(VariableRefresh.ON_DASHBOARD_LOAD)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .include_all(False)
            .multi(False)
        )
        .with_variable(
            dashboard.CustomVariable("window")
            .label("Window")
            .description("Trailing window of the windowed panels.")
            .values(",".join(defs.windows))
            .current(
                VariableOption(selected=True, text=defs.default_window, value=defs.default_window)
            )
            .options(
                [
                    VariableOption(selected=w == defs.default_window, text=w, value=w)
                    for w in defs.windows
                ]
            )
            .include_all(False)
            .multi(False)
        )
    )
    return layout.apply(board)


# -------------------------------------------------------------------- pipeline health


def rate(metric: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f'sum{grouping} (rate({metric}{{job="leadline"}}[$__rate_interval]))'


def lag_quantile(q: float) -> str:
    return (
        f"histogram_quantile({q}, sum by (le) "
        '(rate(leadline_event_lag_seconds_bucket{job="leadline"}[$__rate_interval])))'
    )


def pipeline_health() -> dashboard.Dashboard:
    """The SREs' board: throughput, data quality, latency and freshness, workers."""
    layout = Layout()

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
        .mappings(
            [
                ValueMap(
                    options={
                        "0": ValueMappingResult(text="down", color="red", index=0),
                        "1": ValueMappingResult(text="up", color="green", index=1),
                    }
                )
            ]
        )
        .show_value(common.VisibilityMode.NEVER)
        .with_target(target('up{job="leadline"}', "{{instance}}", "A")),
        w=12,
    )
    layout.add(
        stat.Panel()
        .title("Workers up now")
        .description("Number of workers Prometheus scrapes successfully right now.")
        .datasource(DATASOURCE)
        .unit("none")
        .decimals(0)
        .thresholds(thresholds((None, "red"), (1, "green")))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(target('sum(up{job="leadline"})', "workers up", "A")),
        w=6,
    )
    layout.add(
        stat.Panel()
        .title("Versions running")
        .description("Workers per leadline version (leadline_build_info); two values mid-deploy.")
        .datasource(DATASOURCE)
        .unit("none")
        .decimals(0)
        .thresholds(thresholds((None, "blue")))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(
            target(
                'count by (version) (leadline_build_info{job="leadline"})',
                "{{version}}",
                "A",
                instant=True,
            )
        ),
        w=6,
    )

    board = (
        dashboard.Dashboard("leadline · Pipeline health")
        .uid(PIPELINE_UID)
        .description(
            "Health of the leadline workers: throughput, dead letters, lag, freshness. "
            "Metrics are per worker and summed."
        )
        .tags(TAGS)
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-3h", "now")
        .refresh("30s")
        .timezone("browser")
        .links(links(LEADING_UID, "Leading indicators"))
    )
    return layout.apply(board)


# ------------------------------------------------------------------------------ output


BOARDS: dict[str, Callable[[Definitions], dashboard.Dashboard]] = {
    "leading-indicators.json": leading_indicators,
    "pipeline-health.json": lambda _defs: pipeline_health(),
}


def render_all(defs: Definitions | None = None) -> dict[str, str]:
    """File name -> JSON text of every dashboard, exactly as committed."""
    defs = defs or load_definitions()
    return {
        name: json.dumps(build(defs).build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for name, build in BOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the committed JSON is out of date"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory")
    args = parser.parse_args(argv)

    rendered = render_all()
    if args.check:
        stale = [n for n, text in rendered.items() if _read(args.out / n) != text]
        for name in stale:
            print(
                f"{args.out / name} is out of date: run python grafana/generate.py", file=sys.stderr
            )
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.out / name).write_text(text)
        print(f"wrote {args.out / name}")
    return 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
