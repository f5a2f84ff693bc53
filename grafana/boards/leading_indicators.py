"""The PMs' board: engagement, retention, activation, funnels, revenue, unit economics,
satisfaction, technical performance.

The windows, the retention days, the funnels with their steps, the currencies and the
performance events it enumerates come from the definitions
(``leadline.config.definitions``): regenerate after changing them.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, dashboard, stat
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DynamicConfigValue,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from grafana.boards.frame import LEADING_UID, PIPELINE_UID, frame, link_to
from grafana.layout import Layout
from grafana.panels import (
    ALERT_LINE,
    BASELINE,
    CURRENCY_UNITS,
    DATASOURCE,
    REF_IDS,
    currency_units,
    last_value,
    query,
    stat_panel,
    thresholds,
    timeseries_panel,
)
from leadline.config.definitions import Definitions, Funnel

# The selector of the window chosen in the board's `window` variable.
WINDOW = 'window="$window"'
CONVERSION_BASELINE = (
    'leadline:product_conversion_ratio:median_1w_2w_3w{platform="$platform", ' + WINDOW + "}")
REVENUE_BASELINE = "leadline:product_revenue:median_1w_2w_3w{" + WINDOW + "}"
ACTIVE_BASELINE = (
    'leadline:product_active_users:median_1w_2w_3w{platform="$platform", ' + WINDOW + "}")
# The retention day chosen in the board's `day` variable, and what LeadlineRetentionDrop
# compares that day's retention with (the share is the alert's own).
DAY = 'day="$day"'
RETENTION_BASELINE = "leadline:product_retention_ratio:median_1w_2w_3w{" + DAY + "}"
RETENTION_DROP = "0.7"
#: The smallest cohort LeadlineRetentionDrop watches (LEADLINE_RETENTION_MIN_COHORT).
COHORT_MINIMUM = "leadline:product_retention_cohort_users:configured_min"
# The performance event chosen in the board's `event` variable, and what
# LeadlineResponseTimeHigh compares its p95 with: the baseline times the configured
# factor (LEADLINE_LATENCY_ALERT_FACTOR, a recording rule, so the line follows it).
EVENT = 'event="$event"'
LATENCY_BASELINE = (
    "leadline:product_response_time_seconds:median_1w_2w_3w{" + EVENT + ", " + WINDOW + "}")
LATENCY_FACTOR = "leadline:product_response_time_seconds:configured_factor"
LATENCY_TRIGGER = f"{LATENCY_BASELINE} * on () group_left () {LATENCY_FACTOR}"
#: The alert thresholds and guards of the performance alerts (render_rules.py settings).
ERROR_RATIO_MAXIMUM = "leadline:product_request_error_ratio:configured_max"
PERFORMANCE_MIN_EVENTS = "leadline:product_events:configured_min_per_5m"
CRASH_FREE_MINIMUM = "leadline:product_crash_free_users_ratio:configured_min"
#: Quantiles of SPEC 3b: response times, session lengths.
RESPONSE_QUANTILES = ("0.5", "0.95", "0.99")
SESSION_QUANTILES = ("0.5", "0.9", "0.99")


def windowed(metric: str, by: str) -> str:
    """``max by (by)`` of a windowed product gauge in the chosen window, with the ``{o}``
    placeholder of the week-over-week overlay."""
    return f'max by ({by}) ({metric}{{{{job="leadline", {WINDOW}}}}}{{o}})'


def add_trend(layout: Layout, title: str, description: str, queries: list[tuple[str, str]],
              *, unit: str, decimals: int, w: int = 12) -> None:
    """A time series from 0 with last week dashed (``queries`` hold the ``{o}``)."""
    layout.add(timeseries_panel(title, description + " Dashed: one week earlier.", queries,
                                unit=unit, decimals=decimals, week_over_week=True,
                                min_val=0), w=w)


def add_windowed(layout: Layout, title: str, description: str, metric: str, by: str,
                 legend: str, *, unit: str, decimals: int, w: int = 12) -> None:
    """A panel of one windowed product gauge (``add_trend``)."""
    add_trend(layout, title, description, [(windowed(metric, by), legend)], unit=unit,
              decimals=decimals, w=w)


def default_window(windows: list[str]) -> str:
    """The window the board opens on: 24h (DAU) when configured, else the first one."""
    return "24h" if "24h" in windows else windows[0]


def default_day(days: list[int]) -> str:
    """The retention day the board opens on: 7 (D7) when configured, else the first one."""
    return "7" if 7 in days else str(days[0])


def build(defs: Definitions) -> dashboard.Dashboard:
    """The leading indicators board for ``defs``: the window variable offers its windows,
    each funnel gets its pair of panels in declared order, and each configured currency
    with a Grafana unit (``CURRENCY_UNITS``) gets that unit on the revenue panels."""
    layout = Layout()
    currencies = defs.labels.currency
    _headline(layout, defs.windows, currencies)
    _engagement(layout, defs.windows)
    _retention(layout, defs.retention.days)
    _activation_and_conversion(layout, defs.funnels)
    _revenue(layout, currencies)
    _refunds(layout, currencies)
    _unit_economics(layout, currencies, defs.windows)
    _features(layout)
    _satisfaction(layout)
    _performance(layout, defs.performance.events)
    board = (
        frame(
            "leadline · Leading indicators",
            uid=LEADING_UID,
            description=(
                "Product leading indicators computed in real time from product events. Every "
                "worker reports the same global values; queries take max across workers."
            ),
            time_from="now-7d",
            refresh="1m",
            link=link_to(PIPELINE_UID, "Pipeline health"),
        )
        .with_variable(_platform_variable())
        .with_variable(_window_variable(defs.windows))
        .with_variable(_day_variable(defs.retention.days))
    )
    if defs.performance.events:
        board = board.with_variable(_event_variable(defs.performance.events))
    return layout.apply(board)


def _platform_variable() -> dashboard.QueryVariable:
    return (
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


def _window_variable(windows: list[str]) -> dashboard.CustomVariable:
    default = default_window(windows)
    return (
        dashboard.CustomVariable("window")
        .label("Window")
        .description("Trailing window of the windowed panels.")
        .values(",".join(windows))
        .current(VariableOption(selected=True, text=default, value=default))
        .options([VariableOption(selected=w == default, text=w, value=w) for w in windows])
        .include_all(False)
        .multi(False)
    )


def _day_variable(days: list[int]) -> dashboard.CustomVariable:
    default = default_day(days)
    values = [str(n) for n in days]
    return (
        dashboard.CustomVariable("day")
        .label("Retention day")
        .description("Day N of the retention panel against its baseline (retention.days).")
        .values(",".join(values))
        .current(VariableOption(selected=True, text=default, value=default))
        .options([VariableOption(selected=n == default, text=n, value=n) for n in values])
        .include_all(False)
        .multi(False)
    )


def _event_variable(events: list[str]) -> dashboard.CustomVariable:
    default = events[0]
    return (
        dashboard.CustomVariable("event")
        .label("Performance event")
        .description("The event of the response-time panel against its baseline "
                     "(performance.events).")
        .values(",".join(events))
        .current(VariableOption(selected=True, text=default, value=default))
        .options([VariableOption(selected=e == default, text=e, value=e) for e in events])
        .include_all(False)
        .multi(False)
    )


#: Legend suffix of the week-over-week change in the headline stats.
WOW = " vs last week"


def _headline_stat(title: str, description: str, expr: str, legend: str, *, unit: str,
                   decimals: int) -> stat.Panel:
    """The value now with its sparkline, and its change against one week earlier (%),
    green up, red down."""
    change = f"({expr} / ({expr} offset 1w) - 1)"
    return (
        stat_panel(title, description + " Below: the change against the same window one "
                   "week earlier, green when up, red when down.",
                   unit=unit, decimals=decimals, limits=thresholds((None, "blue")))
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .orientation(common.VizOrientation.HORIZONTAL)
        .with_target(query(expr, legend, "A"))
        .with_target(query(change, legend + WOW, "B"))
        .override_by_regexp(f".*{WOW}$", [
            DynamicConfigValue(id_val="unit", value="percentunit"),
            DynamicConfigValue(id_val="decimals", value=1),
            DynamicConfigValue(id_val="thresholds", value={
                "mode": "absolute",
                "steps": [{"color": "red", "value": None}, {"color": "green", "value": 0}]}),
        ])
    )


def _headline(layout: Layout, windows: list[str], currencies: list[str]) -> None:
    """The first row a PM reads: the main numbers over the board's default window (24h
    when configured), each with its week-over-week change."""
    win = default_window(windows)
    layout.row(f"Headline (last {win}, against a week earlier)")
    for title, description, expr, unit, decimals in (
        ("Active users", f"Distinct users with any event in the last {win}, selected "
         "platform.",
         f'leadline:product_active_users:max{{platform="$platform", window="{win}"}}',
         "short", 0),
        ("Signups", f"Users who signed up in the last {win}, selected platform.",
         f'leadline:product_signups:max{{platform="$platform", window="{win}"}}', "short", 0),
        ("Conversions", f"Distinct converting users in the last {win}, all platforms.",
         f'leadline:product_conversions:max{{window="{win}"}}', "short", 0),
        ("Conversion ratio", f"Converting over active users in the last {win}, selected "
         "platform.",
         f'leadline:product_conversion_ratio:max{{platform="$platform", window="{win}"}}',
         "percentunit", 2),
    ):
        layout.add(_headline_stat(title, description, expr, title.lower(), unit=unit,
                                  decimals=decimals), w=4, h=5)
    revenue = _headline_stat(
        "Revenue", f"Purchases in the last {win}, per currency (never added across "
        "currencies).", f'leadline:product_revenue:max{{window="{win}"}}', "{{currency}}",
        unit="short", decimals=2)
    for code in currencies:
        unit = CURRENCY_UNITS.get(code)
        if unit:
            revenue = revenue.override_by_regexp(
                f"^{code}$", [DynamicConfigValue(id_val="unit", value=unit)])
    layout.add(revenue, w=8, h=5)


def _engagement(layout: Layout, windows: list[str]) -> None:
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
        stat_panel(
            "Active users now",
            "Current distinct active users per trailing window for the selected platform "
            "(24h = DAU, 7d = WAU, 30d = MAU).",
            unit="short",
            decimals=0,
            limits=thresholds((None, "blue")),
        )
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .orientation(common.VizOrientation.VERTICAL)
    )
    # One query per window keeps the windows in their configured order.
    for ref, window in zip(REF_IDS, windows, strict=False):
        now_panel = now_panel.with_target(
            query(
                f'leadline:product_active_users:max{{platform="$platform", window="{window}"}}',
                "{{window}}",
                ref,
                instant=True,
            )
        )
    layout.add(now_panel, w=8, h=9)
    layout.add(
        timeseries_panel(
            "Active users against the baseline ($window)",
            "Distinct active users in the window for the selected platform, as "
            "LeadlineActiveUsersDrop sees them. Dashed: one week earlier. Dotted: the "
            "baseline, the median of the same moment 1, 2 and 3 weeks ago; red dashes: 85 % "
            "of it, the 1h line of the alert (it pages when the 1h window is under it and the "
            "5m window under 60 %, or the 1h under 95 % and the 5m under 20 %).",
            [('leadline:product_active_users:max{{platform="$platform", ' + WINDOW + "}}{o}",
              "active users")],
            unit="short",
            decimals=0,
            week_over_week=True,
            min_val=0,
            alert_lines=[(ACTIVE_BASELINE, "active users" + BASELINE),
                         (f"0.85 * {ACTIVE_BASELINE}", "active users" + ALERT_LINE)],
        ),
        w=24,
    )
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
    add_windowed(layout, "Events by name ($window)",
                 "Valid events in the window per event name (configured names; the rest "
                 "are 'other'), all platforms.", "product_events", "name", "{{name}}",
                 unit="short", decimals=0)
    add_windowed(layout, "Sessions per user ($window)",
                 "Session starts in the window over distinct active users, all platforms.",
                 "product_sessions_per_user", "window", "sessions per user",
                 unit="none", decimals=2)
    layout.add(
        timeseries_panel(
            "Signups ($window)",
            "Users who signed up in the trailing window chosen above, for the selected platform. "
            "Dashed: one week earlier. Dotted: the baseline, the median of the same moment 1, "
            "2 and 3 weeks ago. Alert LeadlineSignupsStalled fires when the 1h value is zero "
            "while the baseline is at least 10.",
            [
                (
                    'leadline:product_signups:max{{platform="$platform", ' + WINDOW + "}}{o}",
                    "signups",
                )
            ],
            unit="short",
            decimals=0,
            week_over_week=True,
            min_val=0,
            alert_lines=[(
                'leadline:product_signups:median_1w_2w_3w{platform="$platform", ' + WINDOW + "}",
                "signups" + BASELINE)],
        ),
        w=12,
    )


def _retention(layout: Layout, days: list[int]) -> None:
    """Day-N retention of the latest complete cohorts, the cohorts' sizes, new against
    returning users and user churn (SPEC 3b)."""
    layout.row("Retention")
    names = ", ".join(f"D{n}" for n in days)
    # One query per day keeps the days in their configured order (and their colours).
    add_trend(layout, f"Retention ({names})",
              "Day-N retention of the latest cohort whose day N is over: of the users first "
              "seen on UTC day D = today - N - 1, the share with any event on day D + N. "
              "The value moves at UTC midnight, to the next cohort (and between, as late "
              "events arrive). Dashed: one week earlier, the cohort of the same weekday a "
              "week before.",
              [(f'max by (day) (product_retention_ratio{{{{job="leadline", day="{n}"}}}}{{o}})',
                f"D{n}") for n in days],
              unit="percentunit", decimals=1)
    layout.add(
        timeseries_panel(
            "D$day retention against the baseline",
            "Day-N retention (N chosen above) as LeadlineRetentionDrop sees it. Dashed: one "
            "week earlier. Dotted: the baseline, the median of the same moment 1, 2 and 3 "
            f"weeks ago (the cohorts of the same weekday); red dashes: {RETENTION_DROP} of "
            "it, where the alert fires when the cohort is at least its minimum (panel "
            "Retention cohort size) for 2 hours.",
            [('leadline:product_retention_ratio:max{{' + DAY + '}}{o}', "retention")],
            unit="percentunit",
            decimals=1,
            week_over_week=True,
            min_val=0,
            alert_lines=[(RETENTION_BASELINE, "retention" + BASELINE),
                         (f"{RETENTION_DROP} * {RETENTION_BASELINE}",
                          "retention" + ALERT_LINE)],
        ),
        w=12,
    )
    layout.add(
        timeseries_panel(
            "Retention cohort size",
            "Users first seen on the cohort's day, for each retention day: the denominator "
            "of the retention panels (a small cohort makes a noisy ratio). Dashed: one week "
            "earlier. Red dashes: the smallest cohort LeadlineRetentionDrop watches "
            "(LEADLINE_RETENTION_MIN_COHORT); under it the alert stays silent.",
            [(f'max by (day) (product_retention_cohort_users{{{{job="leadline", day="{n}"}}}}'
              "{o})", f"D{n} cohort") for n in days],
            unit="short",
            decimals=0,
            week_over_week=True,
            min_val=0,
            alert_lines=[(COHORT_MINIMUM, "minimum cohort" + ALERT_LINE)],
        ),
        w=12,
    )
    add_trend(layout, "User churn by period",
              "Of the users active in the previous period (the window shifted back by its "
              "length), the share with no event in the window: 24h is yesterday's users "
              "missing today, 7d last week's missing this week (churn.windows).",
              [('max by (window) (product_user_churn_ratio{{job="leadline"}}{o})', "{{window}}")],
              unit="percentunit", decimals=1)
    add_trend(layout, "New and returning users ($window)",
              "Users active in the window, split by their first-seen time: new (first seen "
              "in the window) and returning (first seen before it), all platforms. Exact "
              "counts; new + returning = active users of the window.",
              [('max by (window) (product_new_users{{job="leadline", platform="all", '
                + WINDOW + "}}{o})", "new"),
               (windowed("product_returning_users", "window"), "returning")],
              unit="short", decimals=0)
    add_trend(layout, "New users by platform ($window)",
              "Users first seen in the window, by the platform of their first event "
              "(platforms add up to all).",
              [('max by (platform) (product_new_users{{job="leadline", platform!="all", '
                + WINDOW + "}}{o})", "{{platform}}")],
              unit="short", decimals=0)


def _activation_and_conversion(layout: Layout, funnels: dict[str, Funnel]) -> None:
    layout.row("Activation and conversion")
    layout.add(
        timeseries_panel(
            "Activation ratio ($window)",
            "Of the users who signed up in the window, the share with an activation ('aha') "
            "event within 7 days of signing up. All platforms. Dashed: one week earlier.",
            [
                (
                    'max by (window) (product_activation_ratio{{job="leadline", '
                    + WINDOW
                    + "}}{o})",
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
            "the window, for the selected platform. Dashed: one week earlier. Dotted: the "
            "baseline, the median of the same moment 1, 2 and 3 weeks ago; red dashes: half "
            "of it, where LeadlineConversionRatioDrop fires (it watches the 1h window).",
            [
                (
                    'leadline:product_conversion_ratio:max{{platform="$platform", '
                    + WINDOW
                    + "}}{o}",
                    "conversion",
                )
            ],
            unit="percentunit",
            decimals=2,
            limits=thresholds((None, "red"), (0.01, "yellow"), (0.03, "green")),
            week_over_week=True,
            min_val=0,
            alert_lines=[
                (f"{CONVERSION_BASELINE}", "conversion" + BASELINE),
                (f"0.5 * {CONVERSION_BASELINE}", "conversion" + ALERT_LINE),
            ],
        ),
        w=12,
    )
    for name, funnel in funnels.items():
        _funnel(layout, name, funnel)


def _funnel(layout: Layout, name: str, funnel: Funnel) -> None:
    """Two panels side by side, one line: users per step, and conversion per step."""
    title = name[:1].upper() + name[1:]
    gauge = (
        bargauge.Panel()
        .title(f"{title} funnel ($window)")
        .description(
            f"Users who entered the {name} funnel in the window and reached each step, in "
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
        .reduce_options(last_value())
    )
    # One query per step keeps the steps in funnel order.
    for ref, step in zip(REF_IDS, funnel.steps, strict=False):
        gauge = gauge.with_target(
            query(
                f'max by (step) (product_funnel_users{{job="leadline", funnel="{name}", '
                f'step="{step}", ' + WINDOW + "})",
                "{{step}}",
                ref,
                instant=True,
            )
        )
    layout.add(gauge, w=10, h=9)
    layout.add(
        timeseries_panel(
            f"{title} step conversion ($window)",
            f"For each {name} step, the users who reached it divided by the users who entered "
            "the funnel (first step = 100 %). The last step is the funnel's overall conversion. "
            "Dashed: one week earlier.",
            [
                (
                    'max by (step) (product_funnel_conversion_ratio{{job="leadline", '
                    f'funnel="{name}", ' + WINDOW + "}}{o})",
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


def _revenue(layout: Layout, currencies: list[str]) -> None:
    layout.row("Revenue")
    layout.add(
        currency_units(
            timeseries_panel(
                "Revenue by currency ($window)",
                "Sum of purchase amounts in the window, per currency, in the currency's major "
                "unit (never converted or added across currencies). Dashed: one week earlier. "
                "Dotted: the baseline, the median of the same moment 1, 2 and 3 weeks ago; red "
                "dashes: half of it, where LeadlineRevenueDrop fires (it watches the 1h "
                "window). LeadlineRevenueStalled fires when the last hour has none at an hour "
                "that usually has purchases.",
                [("leadline:product_revenue:max{{" + WINDOW + "}}{o}", "{{currency}}")],
                unit="short",
                decimals=2,
                week_over_week=True,
                min_val=0,
                alert_lines=[
                    (REVENUE_BASELINE, "{{currency}}" + BASELINE),
                    (f"0.5 * {REVENUE_BASELINE}", "{{currency}}" + ALERT_LINE),
                ],
            ),
            currencies,
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
                        'max by (currency) (product_arpu{{job="leadline", ' + WINDOW + "}}{o})",
                        "{{currency}}",
                    )
                ],
                unit="short",
                decimals=2,
                week_over_week=True,
                min_val=0,
            ),
            currencies,
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
            currencies,
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
                        + WINDOW
                        + "}}{o})",
                        "{{kind}} {{currency}}",
                    )
                ],
                unit="short",
                decimals=2,
                week_over_week=True,
                min_val=0,
            ),
            currencies,
        ),
        w=12,
    )


def _refunds(layout: Layout, currencies: list[str]) -> None:
    refunds = windowed("product_refunds", "currency")
    revenue = "max by (currency) (leadline:product_revenue:max{{" + WINDOW + "}}{o})"
    layout.add(
        currency_units(
            timeseries_panel(
                "Refunds and net revenue by currency ($window)",
                "Refunded amounts in the window, and revenue minus refunds, per currency in "
                "its major unit. Dashed: one week earlier.",
                [(refunds, "refunds {{currency}}"),
                 (f"{revenue} - ({refunds} or 0 * {revenue})", "net {{currency}}")],
                unit="short",
                decimals=2,
                week_over_week=True,
            ),
            currencies,
        ),
        w=24,
    )


def _unit_economics(layout: Layout, currencies: list[str], windows: list[str]) -> None:
    """New customers, what acquiring them cost, what they are worth, and net revenue
    retention (SPEC 3b). Money per currency, never converted or added across them."""
    layout.row("Customers and unit economics")
    add_windowed(layout, "New customers ($window)",
                 "Users whose first-ever conversion (a purchase or a subscription start) is "
                 "in the window, all platforms.", "product_new_customers", "window",
                 "new customers", unit="short", decimals=0)
    layout.add(
        currency_units(
            timeseries_panel(
                "Marketing spend by channel ($window)",
                "Sum of marketing_spend amounts in the window, per channel (marketing."
                "channels; others are 'other') and currency, in its major unit. Channels "
                "and currencies with no spend in the window are left out. Dashed: one week "
                "earlier.",
                [('max by (channel, currency) (product_marketing_spend{{job="leadline", '
                  + WINDOW + "}}{o}) > 0", "{{channel}} {{currency}}")],
                unit="short",
                decimals=2,
                week_over_week=True,
                min_val=0,
            ),
            currencies,
        ),
        w=12,
    )
    layout.add(
        currency_units(
            timeseries_panel(
                "CAC by currency ($window)",
                "Customer acquisition cost: marketing spend in the window (all channels) "
                "over new customers in the window, per currency. No value while the window "
                "has no new customer. Dashed: one week earlier.",
                [(windowed("product_cac", "currency"), "{{currency}}")],
                unit="short",
                decimals=2,
                week_over_week=True,
                min_val=0,
            ),
            currencies,
        ),
        w=12,
    )
    layout.add(
        currency_units(
            timeseries_panel(
                "LTV by currency",
                "Customer lifetime value: average MRR per active subscription in the "
                "currency over the 30d subscription churn ratio. No value while that churn "
                "is 0 or the currency has no subscription. Dashed: one week earlier.",
                [('max by (currency) (product_ltv{{job="leadline"}}{o})', "{{currency}}")],
                unit="short",
                decimals=2,
                week_over_week=True,
                min_val=0,
            ),
            currencies,
        ),
        w=12,
    )
    month = "30d" if "30d" in windows else windows[-1]
    layout.add(
        timeseries_panel(
            f"LTV / CAC ({month})",
            f"Lifetime value over the cost of acquiring a customer ({month} CAC), per "
            "currency: under 1 (red) a customer costs more than they bring; 3 or more "
            "(green) is the usual target. No value without both. Dashed: one week earlier.",
            [('max by (currency) (product_ltv{{job="leadline"}}{o}) / max by (currency) '
              f'(product_cac{{{{job="leadline", window="{month}"}}}}{{o}} > 0)',
              "{{currency}}")],
            unit="none",
            decimals=2,
            limits=thresholds((None, "red"), (1, "yellow"), (3, "green")),
            week_over_week=True,
            min_val=0,
            show_thresholds=True,
        ),
        w=12,
    )
    layout.add(
        timeseries_panel(
            "Net revenue retention",
            "1 + (expansion - contraction - churn MRR) / MRR at the window's start, per "
            "window (revenue_retention.windows) and currency: over 100 % the customers "
            "already paying at the window's start grow revenue without any new one. No "
            "value while MRR at the window's start is 0. Dashed: one week earlier.",
            [('max by (window, currency) '
              '(product_net_revenue_retention_ratio{{job="leadline"}}{o})',
              "{{window}} {{currency}}")],
            unit="percentunit",
            decimals=1,
            limits=thresholds((None, "red"), (1, "green")),
            week_over_week=True,
            show_thresholds=True,
        ),
        w=24,
    )

def _features(layout: Layout) -> None:
    layout.row("Features and activation time")
    add_trend(layout, "Feature adoption ($window)",
              "Distinct users of each feature (feature_used events) over all active users "
              "in the window, all platforms (recording rule "
              "leadline:product_feature_users:ratio_active_users).",
              [("leadline:product_feature_users:ratio_active_users{{" + WINDOW + "}}{o}",
                "{{feature}}")],
              unit="percentunit", decimals=1)
    add_windowed(layout, "Feature users ($window)",
                 "Distinct users of each feature in the window, all platforms.",
                 "product_feature_users", "feature", "{{feature}}", unit="short", decimals=0)
    add_trend(layout, "Time to activate",
              "How long after signing up users reach activation, for the activations of the "
              "longest window: median and 90th percentile of product_time_to_activate_seconds "
              "(the quantile's bucket interpolated).",
              [(f"histogram_quantile({q}, max by (le) "
                '(product_time_to_activate_seconds_bucket{{job="leadline"}}{o}))', f"p{p}")
               for q, p in ((0.5, 50), (0.9, 90))],
              unit="s", decimals=0)
    add_windowed(layout, "Subscription churn ($window)",
                 "Subscriptions cancelled in the window over those active at its start.",
                 "product_subscription_churn_ratio", "window", "churn",
                 unit="percentunit", decimals=2)


def _satisfaction(layout: Layout) -> None:
    layout.row("Satisfaction")
    add_windowed(layout, "Survey responses ($window)",
                 "Responses received in the window per survey (NPS, CSAT): how many answers "
                 "the scores below rest on.", "product_survey_responses", "survey",
                 "{{survey}}", unit="short", decimals=0, w=24)
    layout.add(
        timeseries_panel(
            "NPS ($window)",
            "Net Promoter Score of the nps_submitted responses in the window: % promoters "
            "(9-10) minus % detractors (0-6), from -100 to 100. Dashed: one week earlier.",
            [(windowed("product_nps", "window"), "NPS")],
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
            [(windowed("product_csat", "window"), "CSAT")],
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


def _quantile_label(q: str) -> str:
    """``0.95`` -> ``p95``."""
    return "p" + q.removeprefix("0.").ljust(2, "0")


def _performance(layout: Layout, events: list[str]) -> None:
    """Response-time quantiles, error ratios, crash-free users and sessions (SPEC 3b,
    issue 16), with what the performance alerts compare them with. Without performance
    events (``performance.events: []``), crashes and sessions only."""
    layout.row("Technical performance")
    if events:
        _response_times(layout, events)
    _crashes_and_sessions(layout)


def _response_times(layout: Layout, events: list[str]) -> None:
    add_trend(layout, "p95 response time by event ($window)",
              "95th percentile of duration_ms of each performance event (performance."
              "events) in the window, all platforms: 95 % of page loads or API requests "
              "took at most this long. From a DDSketch merged over every partition, within "
              "2 % of the exact value; no value while the window has no such event.",
              [(f'leadline:product_response_time_seconds:max{{{{quantile="0.95", {WINDOW}}}}}'
                "{o}", "{{event}}")],
              unit="s", decimals=2)
    layout.add(
        timeseries_panel(
            "Response time of $event ($window)",
            "p50, p95 and p99 of duration_ms of the event chosen above, in the window. "
            "Dashed: one week earlier. Dotted: the p95 baseline, the median of the same "
            "moment 1, 2 and 3 weeks ago; red dashes: that baseline times "
            "LEADLINE_LATENCY_ALERT_FACTOR (default 1.5), where LeadlineResponseTimeHigh "
            "fires after 15 minutes (it watches the 5m window, with at least the minimum "
            "of events of panel Performance events (5m)).",
            [(f'leadline:product_response_time_seconds:max{{{{quantile="{q}", {EVENT}, '
              f"{WINDOW}}}}}{{o}}", _quantile_label(q)) for q in RESPONSE_QUANTILES],
            unit="s",
            decimals=2,
            week_over_week=True,
            min_val=0,
            alert_lines=[(LATENCY_BASELINE, "p95" + BASELINE),
                         (LATENCY_TRIGGER, "p95" + ALERT_LINE)],
        ),
        w=12,
    )
    layout.add(
        timeseries_panel(
            "Request error ratio by event ($window)",
            "Of the window's events of each performance event, the share that failed: "
            "properties.status >= 500 or properties.error = true; 0 without any. Dashed: "
            "one week earlier. Red dashes: LEADLINE_ERROR_RATIO_MAX (default 5 %), over "
            "which LeadlineRequestErrorRatioHigh fires after 10 minutes (it watches the 5m "
            "window, with at least the minimum of events of panel Performance events (5m)).",
            [(f"leadline:product_request_error_ratio:max{{{{{WINDOW}}}}}{{o}}", "{{event}}")],
            unit="percentunit",
            decimals=2,
            week_over_week=True,
            min_val=0,
            alert_lines=[(ERROR_RATIO_MAXIMUM, "error ratio" + ALERT_LINE)],
        ),
        w=12,
    )
    names = "|".join(events)
    layout.add(
        timeseries_panel(
            "Performance events (5m)",
            "Events of each performance event in the last 5 minutes, all platforms: what "
            "the response-time quantiles and error ratios of the 5m window rest on. Dashed: "
            "one week earlier. Red dashes: LEADLINE_PERFORMANCE_MIN_EVENTS (default 100); "
            "with fewer, LeadlineResponseTimeHigh and LeadlineRequestErrorRatioHigh stay "
            "silent for that event.",
            [(f'max by (name) (product_events{{{{job="leadline", window="5m", '
              f'name=~"{names}"}}}}{{o}})', "{{name}}")],
            unit="short",
            decimals=0,
            week_over_week=True,
            min_val=0,
            alert_lines=[(PERFORMANCE_MIN_EVENTS, "minimum events" + ALERT_LINE)],
        ),
        w=12,
    )


def _crashes_and_sessions(layout: Layout) -> None:
    layout.add(
        timeseries_panel(
            "Crash-free users by platform ($window)",
            "1 - distinct users with an app crash (performance.crash) in the window / "
            "active users of the window, per platform of the crash event ('all' is the "
            "union); 100 % without a crash. Dashed: one week earlier. Red dashes: "
            "LEADLINE_CRASH_FREE_MIN (default 99 %), under which LeadlineCrashFreeUsersLow "
            "fires after 15 minutes (it watches the 1h window, on at least "
            "LEADLINE_CRASH_MIN_USERS active users).",
            [(f"leadline:product_crash_free_users_ratio:max{{{{{WINDOW}}}}}{{o}}",
              "{{platform}}")],
            unit="percentunit",
            decimals=2,
            week_over_week=True,
            max_val=1,
            alert_lines=[(CRASH_FREE_MINIMUM, "crash-free" + ALERT_LINE)],
        ),
        w=24,
    )
    add_trend(layout, "Session length ($window)",
              "p50, p90 and p99 of the length of the sessions whose first event is in the "
              "window: last minus first event time of a session_id (0 for a one-event "
              "session), all platforms. Within 2 % of the exact value; no value while the "
              "window has no session.",
              [('max by (quantile) (product_session_duration_seconds{{job="leadline", '
                f'quantile="{q}", {WINDOW}}}}}{{o}})', _quantile_label(q))
               for q in SESSION_QUANTILES],
              unit="s", decimals=0)
    add_windowed(layout, "Sessions ($window)",
                 "Sessions (distinct user and session_id) whose first event is in the window, "
                 "all platforms. Exact.", "product_sessions", "window", "sessions",
                 unit="short", decimals=0)
