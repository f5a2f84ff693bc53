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
import os
import re
import sys
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

DEFAULT_EXPECTED_WORKERS = 1
DEFAULT_RETENTION_MIN_COHORT = 500

#: Recording rules whose expression is ``vector(<a setting>)``: rule -> render() argument.
SETTINGS = {
    "leadline:workers:configured": "expected_workers",
    "leadline:product_retention_cohort_users:configured_min": "retention_min_cohort",
}

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


def render(text: str, runbook_url: str, grafana_url: str,
           expected_workers: int = DEFAULT_EXPECTED_WORKERS,
           retention_min_cohort: int = DEFAULT_RETENTION_MIN_COHORT) -> str:
    """The rule file ``text`` with every alert's link annotations and the settings of
    ``SETTINGS`` (the expected worker count, the retention cohort minimum) rendered."""
    values = {"expected_workers": expected_workers, "retention_min_cohort": retention_min_cohort}
    out, alert, seen = [], None, {}
    setting: int | None = None
    for line in text.splitlines(keepends=True):
        if m := _RECORD.match(line):
            alert = None
            setting = values[SETTINGS[m.group(1)]] if m.group(1) in SETTINGS else None
        elif setting is not None and (m := _EXPR.match(line)):
            line = f"{m.group(1)}expr: vector({setting})\n"
            setting = None
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
    parser.add_argument("--expected-workers", type=int, default=int(os.environ.get(
        "LEADLINE_EXPECTED_WORKERS", DEFAULT_EXPECTED_WORKERS)))
    parser.add_argument("--retention-min-cohort", type=int, default=int(os.environ.get(
        "LEADLINE_RETENTION_MIN_COHORT", DEFAULT_RETENTION_MIN_COHORT)))
    parser.add_argument("--out", type=Path, default=RULES_DIR, help="output directory")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed rules differ from the defaults' rendering")
    args = parser.parse_args(argv)
    for url in (args.runbook_url, args.grafana_url):
        if not re.match(r"https?://[^/]+", url):
            parser.error(f"not an absolute http(s) URL: {url!r}")
    if args.expected_workers < 1:
        parser.error(f"expected workers must be at least 1, got {args.expected_workers}")
    if args.retention_min_cohort < 1:
        parser.error("the retention cohort minimum must be at least 1, got "
                     f"{args.retention_min_cohort}")
    stale = []
    for path in sorted(RULES_DIR.glob("*.rules.yml")):
        text = path.read_text()
        if args.check:
            if render(text, DEFAULT_RUNBOOK_URL, DEFAULT_GRAFANA_URL) != text:
                stale.append(path)
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / path.name).write_text(
            render(text, args.runbook_url, args.grafana_url, args.expected_workers,
                   args.retention_min_cohort))
        print(f"wrote {args.out / path.name}")
    for path in stale:
        print(f"{path} is out of date: run python prometheus/render_rules.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
