"""Panel building blocks shared by every board: queries, thresholds, units, panels.

Every panel and query built here reads from the provisioned Prometheus data source
(``DATASOURCE``), so a board never names a data source itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
)

# The uid of grafana/provisioning/datasources/prometheus.yaml.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="leadline-prometheus")

# Query ref ids, in the order a panel's queries are added.
REF_IDS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# The "last week" overlay: its legend suffix and the PromQL modifier of its queries.
LAST_WEEK = " · last week"
#: Legend suffixes of what an alert compares with (``alert_lines``).
BASELINE = " · baseline"
ALERT_LINE = " · alert line"
OFFSET = " offset 1w"

EVENTS_PER_SECOND = "suffix: ev/s"

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


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds; the first step's value must be None (the base colour)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
    )


NEUTRAL = thresholds((None, "text"))


def query(expr: str, legend: str, ref: str, *, instant: bool = False) -> prometheus.Dataquery:
    """A Prometheus query on ``DATASOURCE``: a range query unless ``instant``."""
    built = (
        prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)
    )
    return built.instant() if instant else built.range()


def last_value() -> common_builders.ReduceDataOptions:
    """Reduce each series to its last non-null value (one value per series)."""
    return common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def stat_panel(
    title: str, description: str, *, unit: str, decimals: int, limits: dashboard.ThresholdsConfig
) -> stat.Panel:
    """A stat panel showing each series' last value; queries and display modes are the
    caller's."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .decimals(decimals)
        .thresholds(limits)
        .reduce_options(last_value())
    )


def dash_last_week(panel: timeseries.Panel) -> timeseries.Panel:
    """Draw every series whose legend ends with ``LAST_WEEK`` as a thin dashed line."""
    return panel.override_by_regexp(
        f".*{LAST_WEEK}$",
        [
            DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            DynamicConfigValue(id_val="custom.lineWidth", value=1),
            DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        ],
    )


def currency_units(panel: timeseries.Panel, currencies: list[str]) -> timeseries.Panel:
    """One unit override per currency with a Grafana unit; legends must end with the
    currency code (optionally followed by ``LAST_WEEK``, ``BASELINE`` or ``ALERT_LINE``)."""
    for code in currencies:
        unit = CURRENCY_UNITS.get(code)
        if unit:
            panel = panel.override_by_regexp(
                f"^(.* )?{code}({LAST_WEEK}|{BASELINE}|{ALERT_LINE})?$",
                [DynamicConfigValue(id_val="unit", value=unit)]
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
    alert_lines: Sequence[tuple[str, str]] = (),
) -> timeseries.Panel:
    """A time series panel. ``queries`` are ``(expr, legend)``; with ``week_over_week``
    each ``expr`` holds an ``{o}`` placeholder after every selector and is drawn a
    second time with ``offset 1w`` as a dashed overlay. ``alert_lines`` are ``(expr,
    legend)`` of what an alert compares with, drawn as they are: legends ending in
    ``BASELINE`` as grey dots, in ``ALERT_LINE`` as red dashes."""
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
    refs = iter(REF_IDS)
    for expr, legend in queries:
        now = expr.format(o="") if week_over_week else expr
        panel = panel.with_target(query(now, legend, next(refs)))
    if week_over_week:
        for expr, legend in queries:
            panel = panel.with_target(query(expr.format(o=OFFSET), legend + LAST_WEEK, next(refs)))
        panel = dash_last_week(panel)
    for expr, legend in alert_lines:
        panel = panel.with_target(query(expr, legend, next(refs)))
    if alert_lines:
        panel = panel.override_by_regexp(f".*{BASELINE}$", [
            DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dot", "dash": [0, 8]}),
            DynamicConfigValue(id_val="custom.lineWidth", value=2),
            DynamicConfigValue(id_val="custom.fillOpacity", value=0),
            DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "text"}),
        ]).override_by_regexp(f".*{ALERT_LINE}$", [
            DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
            DynamicConfigValue(id_val="custom.lineWidth", value=1),
            DynamicConfigValue(id_val="custom.fillOpacity", value=0),
            DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
        ])
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
