"""Render the absolute ``runbook_url`` and ``dashboard_url`` of every alert rule.

Prometheus rule files cannot read a setting, so the two link annotations are written
into ``prometheus/rules/*.rules.yml`` by this script; everything else in those files
is edited by hand. Every alert must carry both lines (``runbook_url: ...`` and
``dashboard_url: ...``); each is replaced in place, comments and layout kept.

Settings (environment, or the options of the same name):

- ``LEADLINE_RUNBOOK_URL``: where ``docs/runbook.md`` is served (rendered markdown:
  a Git host's file view, a wiki, an internal docs site). Default: a placeholder.
- ``LEADLINE_GRAFANA_URL``: Grafana's root URL. Default ``http://localhost:3000``
  (the docker-compose stack).
- ``LEADLINE_EXPECTED_WORKERS``: how many workers should run, the value of the
  ``leadline:workers:configured`` recording rule (``LeadlineWorkersMissing`` expects it,
  or more if more were up in the last 6 hours). Default 1.
- ``LEADLINE_RETENTION_MIN_COHORT``: the smallest retention cohort (users first seen on
  one day) that ``LeadlineRetentionDrop`` watches, the value of the
  ``leadline:product_retention_cohort_users:configured_min`` recording rule. Default 500.
- ``LEADLINE_LATENCY_ALERT_FACTOR``: ``LeadlineResponseTimeHigh`` fires when an event's
  p95 response time is above its baseline times this factor
  (``leadline:product_response_time_seconds:configured_factor``). Default 1.5, over 1.
- ``LEADLINE_ERROR_RATIO_MAX``: ``LeadlineRequestErrorRatioHigh`` fires above this share
  of failed events (``leadline:product_request_error_ratio:configured_max``). Default
  0.05, between 0 and 1.
- ``LEADLINE_PERFORMANCE_MIN_EVENTS``: the fewest events of a performance event in the
  last 5 minutes for those two alerts to judge it
  (``leadline:product_events:configured_min_per_5m``). Default 100.
- ``LEADLINE_CRASH_FREE_MIN``: ``LeadlineCrashFreeUsersLow`` fires under this share of
  crash-free users (``leadline:product_crash_free_users_ratio:configured_min``). Default
  0.99, between 0 and 1.
- ``LEADLINE_CRASH_MIN_USERS``: the fewest active users in the last hour (of the
  platform) for that alert to judge it
  (``leadline:product_crash_free_users_ratio:configured_min_users``). Default 1000.

Usage, from the repository root::

    python prometheus/render_rules.py            # rewrite the committed rules (defaults)
    python prometheus/render_rules.py --check    # exit 1 if they are out of date
    LEADLINE_RUNBOOK_URL=https://git.example.org/leadline/-/blob/main/docs/runbook.md \\
    LEADLINE_GRAFANA_URL=https://grafana.example.org \\
        python prometheus/render_rules.py --out /etc/prometheus/rules   # a deployment

The committed files always hold the defaults (``--check`` compares with them); a
deployment renders its own copy with ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

REPO = Path(__file__).resolve().parents[1]
RULES_DIR = REPO / "prometheus" / "rules"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"

DEFAULT_RUNBOOK_URL = "https://leadline.example.com/docs/runbook.md"
DEFAULT_GRAFANA_URL = "http://localhost:3000"

LEADING = "leading-indicators.json"
PIPELINE = "pipeline-health.json"

#: alert -> (dashboard file, panel title, template variables). A value may use the
#: alert's labels (Go template, rendered by Prometheus when the alert fires).
PANELS: dict[str, tuple[str, str, dict[str, str]]] = {
    "LeadlineActiveUsersDrop": (
        LEADING, "Active users against the baseline ($window)",
        {"platform": "{{$labels.platform}}", "window": "1h"}),
    "LeadlineConversionRatioDrop": (
        LEADING, "Conversion ratio ($window)",
        {"platform": "{{$labels.platform}}", "window": "1h"}),
    "LeadlineRevenueDrop": (LEADING, "Revenue by currency ($window)", {"window": "1h"}),
    "LeadlineRevenueStalled": (LEADING, "Revenue by currency ($window)", {"window": "1h"}),
    "LeadlineSignupsStalled": (
        LEADING, "Signups ($window)", {"platform": "all", "window": "1h"}),
    "LeadlineRetentionDrop": (
        LEADING, "D$day retention against the baseline", {"day": "{{$labels.day}}"}),
    "LeadlineResponseTimeHigh": (
        LEADING, "Response time of $event ($window)",
        {"event": "{{$labels.event}}", "window": "5m"}),
    "LeadlineRequestErrorRatioHigh": (
        LEADING, "Request error ratio by event ($window)", {"window": "5m"}),
    "LeadlineCrashFreeUsersLow": (
        LEADING, "Crash-free users by platform ($window)", {"window": "1h"}),
    "LeadlineNoEvents": (PIPELINE, "Events received and processed", {}),
    "LeadlineDeadLetterRatioHigh": (PIPELINE, "Dead-letter ratio", {}),
    "LeadlineEventLagHigh": (PIPELINE, "Event lag (processing time - event time)", {}),
    "LeadlineWorkerDown": (PIPELINE, "Workers up", {}),
    "LeadlineMetricsStale": (PIPELINE, "Watermark age by worker", {}),
    "LeadlinePartitionStalled": (PIPELINE, "Consumer lag by partition", {}),
    "LeadlineRedisDown": (PIPELINE, "Redis and broker up", {}),
    "LeadlineBrokerDown": (PIPELINE, "Redis and broker up", {}),
    "LeadlineConsumerLagGrowing": (PIPELINE, "Consumer lag by partition", {}),
    "LeadlineNoWorkers": (PIPELINE, "Workers up / expected", {}),
    "LeadlineWorkersMissing": (PIPELINE, "Workers up / expected", {}),
    "LeadlineMemoryOverBudget": (PIPELINE, "Memory against budget", {}),
    "LeadlineWatchdog": (PIPELINE, "Workers up", {}),
}

@dataclass(frozen=True)
class Setting:
    """A number written into a recording rule ``expr: vector(<value>)``."""

    name: str  # render() keyword; the option is --name-with-dashes
    env: str
    default: int | float
    kind: type[int] | type[float]
    valid: Callable[[float], bool]
    rule: str  # what `valid` asks, for the error message

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")


def _above(low: float) -> Callable[[float], bool]:
    return lambda v: v > low


def _share(v: float) -> bool:
    return 0 < v < 1


#: Recording rules whose expression is ``vector(<a setting>)``: rule -> its setting.
SETTINGS: dict[str, Setting] = {
    "leadline:workers:configured": Setting(
        "expected_workers", "LEADLINE_EXPECTED_WORKERS", 1, int, _above(0), "at least 1"),
    "leadline:product_retention_cohort_users:configured_min": Setting(
        "retention_min_cohort", "LEADLINE_RETENTION_MIN_COHORT", 500, int, _above(0),
        "at least 1"),
    "leadline:product_response_time_seconds:configured_factor": Setting(
        "latency_alert_factor", "LEADLINE_LATENCY_ALERT_FACTOR", 1.5, float, _above(1),
        "over 1"),
    "leadline:product_request_error_ratio:configured_max": Setting(
        "error_ratio_max", "LEADLINE_ERROR_RATIO_MAX", 0.05, float, _share,
        "between 0 and 1"),
    "leadline:product_events:configured_min_per_5m": Setting(
        "performance_min_events", "LEADLINE_PERFORMANCE_MIN_EVENTS", 100, int, _above(0),
        "at least 1"),
    "leadline:product_crash_free_users_ratio:configured_min": Setting(
        "crash_free_min", "LEADLINE_CRASH_FREE_MIN", 0.99, float, _share, "between 0 and 1"),
    "leadline:product_crash_free_users_ratio:configured_min_users": Setting(
        "crash_min_users", "LEADLINE_CRASH_MIN_USERS", 1000, int, _above(0), "at least 1"),
}
DEFAULTS = {s.name: s.default for s in SETTINGS.values()}

_ALERT = re.compile(r"^\s*- alert: (\w+)\s*$")
_RECORD = re.compile(r"^\s*- record: (\S+)\s*$")
_EXPR = re.compile(r"^(\s*)expr: .*$")
_LINK = re.compile(r"^(\s*)(runbook_url|dashboard_url): .*$")


class RenderError(ValueError):
    pass


def panel_link(grafana_url: str, board_file: str, title: str, variables: dict[str, str]) -> str:
    """``<grafana>/d/<uid>?viewPanel=<id>&var-...``, the panel looked up by title in
    the committed dashboard JSON (a renamed panel fails the render)."""
    board = json.loads((DASHBOARDS_DIR / board_file).read_text())
    panels = [p for top in board["panels"] for p in (top, *top.get("panels", []))]
    ids = [p["id"] for p in panels if p.get("title") == title]
    if len(ids) != 1:
        raise RenderError(f"{board_file} has {len(ids)} panels titled {title!r}")
    params = {"orgId": "1", "viewPanel": str(ids[0])}
    params |= {f"var-{k}": v for k, v in variables.items()}
    # Keep the Go template ({{$labels.x}}) intact: Prometheus renders it into a plain
    # label value (a platform name) when the alert fires.
    query = urlencode(params, safe="{}$.", quote_via=quote)
    return f"{grafana_url.rstrip('/')}/d/{board['uid']}?{query}"


def check_setting(setting: Setting, value: float) -> None:
    """Raise RenderError unless ``value`` is a finite number of the setting's kind
    that the setting allows."""
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or (setting.kind is int and not float(value).is_integer())
            or not math.isfinite(value) or not setting.valid(value)):
        raise RenderError(f"{setting.env} must be {setting.rule}"
                          f"{' (a whole number)' if setting.kind is int else ''}, got {value!r}")


def literal(value: float) -> str:
    """``value`` as a PromQL number: ``3``, ``1.5``, ``0.05``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(text: str, runbook_url: str, grafana_url: str, **settings: float) -> str:
    """The rule file ``text`` with every alert's link annotations and the settings of
    ``SETTINGS`` (by their ``name``: ``expected_workers=3``; the others keep their
    defaults) rendered."""
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise RenderError(f"no such setting: {sorted(unknown)}")
    values = {**DEFAULTS, **settings}
    for setting in SETTINGS.values():
        check_setting(setting, values[setting.name])
    out, alert, seen = [], None, {}
    number: str | None = None  # the setting of the recording rule being read
    for line in text.splitlines(keepends=True):
        if m := _RECORD.match(line):
            alert = None
            known = SETTINGS.get(m.group(1))
            number = None if known is None else literal(values[known.name])
        elif number is not None and (m := _EXPR.match(line)):
            line = f"{m.group(1)}expr: vector({number})\n"
            number = None
        elif m := _ALERT.match(line):
            alert = m.group(1)
        elif (m := _LINK.match(line)) and alert is not None:
            indent, key = m.groups()
            if key == "runbook_url":
                value = f"{runbook_url}#{alert.lower()}"
            else:
                if alert not in PANELS:
                    raise RenderError(f"no dashboard panel for {alert} in PANELS")
                value = panel_link(grafana_url, *PANELS[alert])
            line = f"{indent}{key}: '{value}'\n"
            seen.setdefault(alert, set()).add(key)
        out.append(line)
    for name, keys in seen.items():
        if keys != {"runbook_url", "dashboard_url"}:
            raise RenderError(f"alert {name} lacks {({'runbook_url', 'dashboard_url'} - keys)}")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runbook-url",
                        default=os.environ.get("LEADLINE_RUNBOOK_URL", DEFAULT_RUNBOOK_URL))
    parser.add_argument("--grafana-url",
                        default=os.environ.get("LEADLINE_GRAFANA_URL", DEFAULT_GRAFANA_URL))
    for setting in SETTINGS.values():
        raw = os.environ.get(setting.env)
        try:
            default = setting.default if raw is None else setting.kind(raw)
        except ValueError:
            parser.error(f"{setting.env}={raw!r} is not a number")
        parser.add_argument(setting.option, type=setting.kind, default=default,
                            help=f"{setting.env}: {setting.rule} (default {setting.default})")
    parser.add_argument("--out", type=Path, default=RULES_DIR, help="output directory")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed rules differ from the defaults' rendering")
    args = parser.parse_args(argv)
    for url in (args.runbook_url, args.grafana_url):
        if not re.match(r"https?://[^/]+", url):
            parser.error(f"not an absolute http(s) URL: {url!r}")
    settings = {s.name: getattr(args, s.name) for s in SETTINGS.values()}
    for setting in SETTINGS.values():
        try:
            check_setting(setting, settings[setting.name])
        except RenderError as exc:
            parser.error(str(exc))
    stale = []
    for path in sorted(RULES_DIR.glob("*.rules.yml")):
        text = path.read_text()
        if args.check:
            if render(text, DEFAULT_RUNBOOK_URL, DEFAULT_GRAFANA_URL) != text:
                stale.append(path)
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / path.name).write_text(
            render(text, args.runbook_url, args.grafana_url, **settings))
        print(f"wrote {args.out / path.name}")
    for path in stale:
        print(f"{path} is out of date: run python prometheus/render_rules.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
