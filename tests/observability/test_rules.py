"""Prometheus config, rules and alert unit tests (promtool), and Alertmanager routing (amtool)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.promstack import free_port, rule_files
from tests.observability.promtool_runs import PROMTOOL_TIMEOUT, PromtoolRuns

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "prometheus"
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
RUNBOOK = REPO / "docs" / "runbook.md"
ALERTMANAGER = PROM / "alertmanager" / "alertmanager.yml"
RENDER = PROM / "render_rules.py"
SINK = PROM / "alertmanager" / "sink.py"
WATCHDOG = "LeadlineWatchdog"
#: The rule files that read product_* gauges.
PRODUCT_RULES = ["lifecycle.rules.yml", "performance.rules.yml", "product.rules.yml"]
sys.path.insert(0, str(PROM))
import render_rules  # noqa: E402  (prometheus/ is not a package)


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT,
                          cwd=REPO, check=False)


def alerts() -> list[dict[str, Any]]:
    out = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [r for r in group["rules"] if "alert" in r]
    return out


def parse_duration(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    parts = re.findall(r"(\d+)([smhdw])", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    return sum(int(n) * units[u] for n, u in parts)


def test_rule_files_exist() -> None:
    assert [p.name for p in rule_files()] == [
        "capacity.rules.yml", "lifecycle.rules.yml", "performance.rules.yml",
        "pipeline.rules.yml", "product.rules.yml"]
    assert RULE_TESTS, "no promtool unit tests in prometheus/tests/"


def test_prometheus_config_is_valid(promtool: str) -> None:
    result = run(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    # The config's rule_files glob must pick up every rule file.
    assert f"SUCCESS: {len(rule_files())} rule files found" in result.stdout + result.stderr


@pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.name)
def test_rule_file_is_valid(promtool: str, path: Path) -> None:
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    fired: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), "alerts never shown to fire in prometheus/tests/"
    # the Watchdog fires always: that is its whole point
    assert names - silent == {WATCHDOG}, "alerts never shown to stay silent in prometheus/tests/"


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"] + r["labels"].get("cause", ""))
def test_alert_metadata(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    if name == WATCHDOG:  # always firing, no for:, to the dead man's switch
        assert rule["labels"]["severity"] == "heartbeat" and rule["expr"].strip() == "vector(1)"
        assert "for" not in rule
        return
    assert rule["labels"]["severity"] in ("page", "ticket")
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    # Absolute links a pager or chat client can open (issue 17, defect 6).
    assert annotations["runbook_url"] == (
        f"{render_rules.DEFAULT_RUNBOOK_URL}#{name.lower()}"
    )
    assert annotations["dashboard_url"].startswith(
        f"{render_rules.DEFAULT_GRAFANA_URL}/d/leadline-"
    )
    assert "viewPanel=" in annotations["dashboard_url"]
    assert parse_duration(rule["for"]) >= 300, "for: under 5 minutes invites flapping"
    if "keep_firing_for" in rule:
        parse_duration(rule["keep_firing_for"])


def test_every_alert_has_a_runbook_section() -> None:
    headings = re.findall(r"^#+\s+(\S+)", RUNBOOK.read_text(), flags=re.M)
    anchors = {h.lower() for h in headings}
    missing = {a["alert"].lower() for a in alerts()} - anchors
    assert not missing, f"docs/runbook.md has no section for {sorted(missing)}"


def test_recording_rule_names_follow_convention() -> None:
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    assert re.fullmatch(r"leadline:[a-z_]+:[a-z0-9_]+", rule["record"]), rule


@pytest.mark.parametrize("name", PRODUCT_RULES)
def test_product_rules_never_sum_product_gauges(name: str) -> None:
    """product_* gauges are global: every raw selector sits directly inside max by (...)."""
    text = (PROM / "rules" / name).read_text()
    exprs = [r["expr"] for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
    for expr in exprs:
        for match in re.finditer(r"(?<![\w:])product_\w+\{", expr):
            before = expr[: match.start()]
            assert re.search(r"max by \([^)]*\) \($", before), expr


def test_alertmanager_config_is_valid(amtool: str) -> None:
    result = run(amtool, "check-config", str(ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=page", "alertname=LeadlineNoEvents"], "page"),
        (["severity=ticket", "alertname=LeadlineWorkerDown"], "ticket"),
        (["alertname=Unlabelled"], "ticket"),
    ],
)
def test_alertmanager_routes_by_severity(amtool: str, labels: list[str], receiver: str) -> None:
    result = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


def test_every_severity_used_has_a_route() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    routed = {m for r in config["route"]["routes"] for m in r["matchers"]}
    receivers = {r["name"] for r in config["receivers"]}
    for rule in alerts():
        assert f'severity="{rule["labels"]["severity"]}"' in routed
    assert {r["receiver"] for r in config["route"]["routes"]} <= receivers


def test_rendered_links_are_up_to_date() -> None:
    """The committed rules hold the links render_rules.py writes for the defaults."""
    result = run(sys.executable, str(RENDER), "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_uses_the_operators_urls(tmp_path: Path) -> None:
    result = run(sys.executable, str(RENDER), "--out", str(tmp_path),
                 "--runbook-url", "https://git.example.org/ops/leadline/runbook.md",
                 "--grafana-url", "https://grafana.example.org/")
    assert result.returncode == 0, result.stdout + result.stderr
    text = (tmp_path / "product.rules.yml").read_text()
    assert "runbook_url: 'https://git.example.org/ops/leadline/runbook.md#leadlinerevenuedrop'" \
        in text
    assert ("dashboard_url: 'https://grafana.example.org/d/leadline-leading-indicators?orgId=1"
            "&viewPanel=10&var-platform={{$labels.platform}}&var-window=1h'") in text
    assert "leadline.example.com" not in text and "localhost:3000" not in text
    bad = run(sys.executable, str(RENDER), "--out", str(tmp_path), "--runbook-url", "docs/x.md")
    assert bad.returncode != 0


def test_render_sets_the_expected_workers(tmp_path: Path, promtool: str) -> None:
    """LEADLINE_EXPECTED_WORKERS=3: two workers up is "missing"; the committed rules
    (1 expected) stay silent on the same series."""
    result = run(sys.executable, str(RENDER), "--out", str(tmp_path / "rules"),
                 "--expected-workers", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "expr: vector(3)" in (tmp_path / "rules" / "capacity.rules.yml").read_text()
    up = [{"series": f'up{{job="leadline",instance="w{i}:6066"}}', "values": "1x30"}
          for i in (1, 2)]

    (rule,) = [a for a in alerts() if a["alert"] == "LeadlineWorkersMissing"]
    annotations = dict(rule["annotations"])
    annotations["summary"] = annotations["summary"].replace("{{ $value }}", "2")

    def case(rules: Path, fires: bool) -> dict[str, Any]:
        exp = [{"exp_labels": {"severity": "ticket"}, "exp_annotations": annotations}]
        return {"rule_files": [str(rules)], "evaluation_interval": "1m", "tests": [{
            "interval": "1m", "input_series": up,
            "alert_rule_test": [{"eval_time": "15m", "alertname": "LeadlineWorkersMissing",
                                 "exp_alerts": exp if fires else []}]}]}

    for name, rules, fires in (("three", tmp_path / "rules" / "capacity.rules.yml", True),
                               ("one", PROM / "rules" / "capacity.rules.yml", False)):
        test = tmp_path / f"{name}.test.yml"
        test.write_text(yaml.safe_dump(case(rules, fires)))
        result = run(promtool, "test", "rules", str(test))
        assert result.returncode == 0, result.stdout + result.stderr


def test_render_sets_the_retention_cohort_minimum(tmp_path: Path, promtool: str) -> None:
    """LEADLINE_RETENTION_MIN_COHORT=100: D1 retention of cohorts of 150 falling from
    40 % to 10 % fires; the committed rules (minimum 500) stay silent on the same series."""
    result = run(sys.executable, str(RENDER), "--out", str(tmp_path / "rules"),
                 "--retention-min-cohort", "100")
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = tmp_path / "rules" / "lifecycle.rules.yml"
    assert "expr: vector(100)" in rendered.read_text()
    # 24 days at one sample an hour: three weeks of baseline, the drop on day 23.
    series = [
        {"series": 'product_retention_ratio{job="leadline",day="1"}',
         "values": "0.4+0x551 0.1+0x23"},
        {"series": 'product_retention_cohort_users{job="leadline",day="1"}',
         "values": "150+0x575"},
    ]
    (rule,) = [a for a in alerts() if a["alert"] == "LeadlineRetentionDrop"]
    annotations = {
        key: value.replace("{{ $labels.day }}", "1").replace("{{$labels.day}}", "1")
        .replace("{{ $value | humanizePercentage }}", "10%")
        for key, value in rule["annotations"].items()
    }

    def case(rules: Path, fires: bool) -> dict[str, Any]:
        exp = [{"exp_labels": {"severity": "ticket", "day": "1"},
                "exp_annotations": annotations}]
        return {"rule_files": [str(rules)], "evaluation_interval": "1h", "tests": [{
            "interval": "1h", "input_series": series,
            "alert_rule_test": [{"eval_time": "23d2h", "alertname": "LeadlineRetentionDrop",
                                 "exp_alerts": exp if fires else []}]}]}

    for name, rules, fires in (("hundred", rendered, True),
                               ("default", PROM / "rules" / "lifecycle.rules.yml", False)):
        test = tmp_path / f"{name}.test.yml"
        test.write_text(yaml.safe_dump(case(rules, fires)))
        result = run(promtool, "test", "rules", str(test))
        assert result.returncode == 0, result.stdout + result.stderr
    bad = run(sys.executable, str(RENDER), "--out", str(tmp_path / "bad"),
              "--retention-min-cohort", "0")
    assert bad.returncode != 0


def _history(before: str, after: str) -> str:
    """22 days at one sample an hour (three weeks of baseline): ``before``, then
    ``after`` from 21d21h."""
    return f"{before}+0x524 {after}+0x2"


#: For each setting of the performance alerts: the option and a value, hourly series on
#: which that value and the committed default disagree, the alert and its labels, and
#: whether it fires with the default.
PERFORMANCE_SETTINGS = [
    # a p95 twice its baseline: over 1.5 x, not over 3 x
    ("--latency-alert-factor", "3", "LeadlineResponseTimeHigh",
     {'product_response_time_seconds{window="5m",event="api_request",quantile="0.95"}':
      _history("0.3", "0.6"),
      'product_events{window="5m",name="api_request"}': _history("500", "500")},
     {"severity": "ticket", "window": "5m", "event": "api_request", "quantile": "0.95"}, True),
    # 20 % errors: over 5 %, not over 25 %
    ("--error-ratio-max", "0.25", "LeadlineRequestErrorRatioHigh",
     {'product_request_error_ratio{window="5m",event="api_request"}': _history("0.01", "0.2"),
      'product_events{window="5m",name="api_request"}': _history("500", "500")},
     {"severity": "page", "window": "5m", "event": "api_request"}, True),
    # 40 events per 5 minutes: under 100, at least 20
    ("--performance-min-events", "20", "LeadlineRequestErrorRatioHigh",
     {'product_request_error_ratio{window="5m",event="search"}': _history("0.01", "0.3"),
      'product_events{window="5m",name="search"}': _history("40", "40")},
     {"severity": "page", "window": "5m", "event": "search"}, False),
    # 99.5 % crash-free: not under 99 %, under 99.9 %
    ("--crash-free-min", "0.999", "LeadlineCrashFreeUsersLow",
     {'product_crash_free_users_ratio{window="1h",platform="ios"}': _history("0.9995", "0.995"),
      'product_active_users{window="1h",platform="ios"}': _history("2000", "2000")},
     {"severity": "ticket", "window": "1h", "platform": "ios"}, False),
    # 300 active users: under 1,000, at least 200
    ("--crash-min-users", "200", "LeadlineCrashFreeUsersLow",
     {'product_crash_free_users_ratio{window="1h",platform="ios"}': _history("0.995", "0.95"),
      'product_active_users{window="1h",platform="ios"}': _history("300", "300")},
     {"severity": "ticket", "window": "1h", "platform": "ios"}, False),
]


@pytest.mark.parametrize(("option", "value", "alertname", "series", "labels", "default"),
                         PERFORMANCE_SETTINGS, ids=[c[0] for c in PERFORMANCE_SETTINGS])
def test_render_sets_the_performance_alert_settings(
        tmp_path: Path, promtool: str, option: str, value: str, alertname: str,
        series: dict[str, str], labels: dict[str, str], default: bool) -> None:
    """Each setting of performance.rules.yml moves its alert: on the same series, the
    committed default and the rendered value give opposite answers."""
    result = run(sys.executable, str(RENDER), "--out", str(tmp_path / "rules"), option, value)
    assert result.returncode == 0, result.stdout + result.stderr
    rendered = tmp_path / "rules" / "performance.rules.yml"
    assert f"expr: vector({value})" in rendered.read_text()
    inputs = [{"series": name.replace("{", '{job="leadline",'), "values": values}
              for name, values in series.items()]
    firing = {"alertname": alertname, "alertstate": "firing", **labels}
    sample = "ALERTS{" + ",".join(f'{k}="{v}"' for k, v in sorted(firing.items())) + "}"

    def case(rules: Path, fires: bool) -> dict[str, Any]:
        # One hour after the change: past every `for:` at a 1-hour evaluation interval.
        return {"rule_files": [str(rules)], "evaluation_interval": "1h", "tests": [{
            "interval": "1h", "input_series": inputs,
            "promql_expr_test": [{
                "expr": f'ALERTS{{alertname="{alertname}", alertstate="firing"}}',
                "eval_time": "21d22h",
                "exp_samples": [{"labels": sample, "value": 1}] if fires else []}]}]}

    for name, rules, fires in (("rendered", rendered, not default),
                               ("default", PROM / "rules" / "performance.rules.yml", default)):
        test = tmp_path / f"{name}.test.yml"
        test.write_text(yaml.safe_dump(case(rules, fires)))
        result = run(promtool, "test", "rules", str(test))
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("option", "value"), [
    ("--latency-alert-factor", "1"), ("--latency-alert-factor", "nan"),
    ("--error-ratio-max", "0"), ("--error-ratio-max", "1"), ("--performance-min-events", "0"),
    ("--crash-free-min", "1.5"), ("--crash-min-users", "0"), ("--crash-min-users", "2.5"),
])
def test_render_rejects_bad_performance_settings(tmp_path: Path, option: str,
                                                 value: str) -> None:
    bad = run(sys.executable, str(RENDER), "--out", str(tmp_path), option, value)
    assert bad.returncode != 0 and option.lstrip("-").split("-")[0] in bad.stderr.lower()
    assert not (tmp_path / "performance.rules.yml").exists()


def test_render_reads_the_settings_from_the_environment(tmp_path: Path) -> None:
    env = {**os.environ, "LEADLINE_LATENCY_ALERT_FACTOR": "2.5", "LEADLINE_CRASH_MIN_USERS": "50"}
    result = subprocess.run([sys.executable, str(RENDER), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (tmp_path / "performance.rules.yml").read_text()
    assert "expr: vector(2.5)" in text and "expr: vector(50)" in text
    assert "expr: vector(0.05)" in text  # the others keep their defaults
    env["LEADLINE_ERROR_RATIO_MAX"] = "five percent"
    bad = subprocess.run([sys.executable, str(RENDER), "--out", str(tmp_path / "bad")],
                         capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
                         check=False)
    assert bad.returncode != 0 and "LEADLINE_ERROR_RATIO_MAX" in bad.stderr


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        # One incident pages once: platform="all" pages, a single platform is a ticket.
        (["alertname=LeadlineActiveUsersDrop", "severity=page", "platform=all"], "page"),
        (["alertname=LeadlineActiveUsersDrop", "severity=ticket", "platform=web"], "ticket"),
        (["alertname=LeadlineRedisDown", "severity=page"], "page"),
        (["alertname=LeadlineBrokerDown", "severity=page"], "page"),
        (["alertname=LeadlineRevenueDrop", "severity=page", "currency=EUR"], "page"),
        (["alertname=LeadlineNoWorkers", "severity=page"], "page"),
        (["alertname=LeadlineWorkersMissing", "severity=ticket"], "ticket"),
        (["alertname=LeadlineConsumerLagGrowing", "severity=ticket"], "ticket"),
        (["alertname=LeadlineMemoryOverBudget", "severity=ticket", "instance=w1"], "ticket"),
        (["alertname=LeadlineWatchdog", "severity=heartbeat"], "heartbeat"),
        (["alertname=LeadlineRequestErrorRatioHigh", "severity=page", "event=api_request"],
         "page"),
        (["alertname=LeadlineResponseTimeHigh", "severity=ticket", "event=page_load"],
         "ticket"),
        (["alertname=LeadlineCrashFreeUsersLow", "severity=page", "platform=all"], "page"),
        (["alertname=LeadlineCrashFreeUsersLow", "severity=ticket", "platform=ios"], "ticket"),
    ],
)
def test_alertmanager_routes_new_alerts(amtool: str, labels: list[str], receiver: str) -> None:
    """Routing only: `amtool config routes test` does not apply inhibit_rules."""
    result = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == [receiver]


@pytest.fixture  # one per case: an alert of one case must not inhibit another's
def alertmanager() -> Iterator[str]:
    """A real Alertmanager (Debian's prometheus-alertmanager) on the repository's config."""
    with running_alertmanager(ALERTMANAGER) as url:
        yield url


@contextmanager
def running_alertmanager(config: Path) -> Iterator[str]:
    """A real Alertmanager on ``config``, on a free port; its URL."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if binary is None:
        pytest.fail("prometheus-alertmanager is not installed: "
                    "apt-get update && apt-get install -y prometheus-alertmanager")
    workdir = Path(tempfile.mkdtemp(prefix="alertmanager-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (workdir / "log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={workdir}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("alertmanager did not start: " + (workdir / "log").read_text())
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def post_alerts(url: str, alerts: list[dict[str, str]]) -> None:
    now = datetime.now(UTC)
    body = [{"labels": labels, "startsAt": now.isoformat(),
             "endsAt": (now + timedelta(minutes=10)).isoformat()} for labels in alerts]
    request = urllib.request.Request(f"{url}/api/v2/alerts", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5):
        pass


def not_inhibited(url: str, names: set[str]) -> set[str]:
    """Names among ``names`` whose alerts Alertmanager would notify (not inhibited)."""
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as resp:
        alerts = json.load(resp)
    return {a["labels"]["alertname"] for a in alerts
            if a["labels"]["alertname"] in names and not a["status"]["inhibitedBy"]}


PERFORMANCE_ALERTS = ["LeadlineResponseTimeHigh", "LeadlineRequestErrorRatioHigh",
                      "LeadlineCrashFreeUsersLow"]


@pytest.mark.services  # a real Alertmanager, started by the test itself
@pytest.mark.parametrize(
    ("cause", "symptoms"),
    [
        # Redis down: the decaying gauges fire the product drops (alert_latency.test.yml).
        ("LeadlineRedisDown", ["LeadlineActiveUsersDrop", "LeadlineRevenueDrop",
                               "LeadlineConversionRatioDrop", "LeadlineMetricsStale",
                               "LeadlineRetentionDrop", *PERFORMANCE_ALERTS]),
        ("LeadlineBrokerDown", ["LeadlineNoEvents", "LeadlineActiveUsersDrop",
                                "LeadlineEventLagHigh", *PERFORMANCE_ALERTS]),
        ("LeadlineNoEvents", ["LeadlineActiveUsersDrop", "LeadlineRetentionDrop",
                              *PERFORMANCE_ALERTS]),
        ("LeadlineRevenueStalled", ["LeadlineRevenueDrop"]),
        ("LeadlineNoWorkers", ["LeadlineWorkersMissing", "LeadlineNoEvents",
                               "LeadlineActiveUsersDrop", "LeadlineConsumerLagGrowing",
                               *PERFORMANCE_ALERTS]),
    ],
)
def test_alertmanager_inhibits(alertmanager: str, cause: str, symptoms: list[str]) -> None:
    """With the cause firing, Alertmanager notifies the cause only (inhibit_rules)."""
    tag = f"{cause}-{time.monotonic_ns()}"  # keep the cases' alerts apart
    alerts = [{"alertname": cause, "severity": "page", "case": tag}]
    alerts += [{"alertname": s, "severity": "page", "platform": "all", "case": tag}
               for s in symptoms]
    post_alerts(alertmanager, alerts)
    names = {cause, *symptoms}
    deadline = time.monotonic() + 10
    while (left := not_inhibited(alertmanager, names)) != {cause}:
        assert time.monotonic() < deadline, f"not inhibited: {sorted(left)}"
        time.sleep(0.2)


@pytest.mark.services  # a real Alertmanager and the sink, started by the test itself
def test_alertmanager_notifications_reach_the_sink(tmp_path: Path) -> None:
    """The compose stack's receivers post to prometheus/alertmanager/sink.py, which logs
    one JSON line per alert: here with the repository's config, the sink's address
    swapped for a free local port."""
    port = free_port()
    sink_log = (tmp_path / "sink.log").open("w")
    sink = subprocess.Popen([sys.executable, str(SINK), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=sink_log, stderr=subprocess.DEVNULL)
    config = tmp_path / "alertmanager.yml"
    config.write_text(ALERTMANAGER.read_text().replace("http://alert-sink:5001/",
                                                       f"http://127.0.0.1:{port}/"))
    try:
        with running_alertmanager(config) as url:
            post_alerts(url, [{"alertname": "LeadlineNoWorkers", "severity": "page"},
                              {"alertname": "LeadlineWatchdog", "severity": "heartbeat"}])
            deadline = time.monotonic() + 30  # group_wait: 10 s for pages, 0 s for beats
            lines: list[dict[str, Any]] = []
            while {(n["alertname"], n["receiver"]) for n in lines} != {
                    ("LeadlineNoWorkers", "page"), ("LeadlineWatchdog", "heartbeat")}:
                assert time.monotonic() < deadline, f"sink got only {lines}"
                time.sleep(0.3)
                lines = [json.loads(line) for line in
                         (tmp_path / "sink.log").read_text().splitlines()]
            assert all(n["status"] == "firing" for n in lines)
    finally:
        sink.terminate()
        sink.wait(timeout=10)
        sink_log.close()


# Last in the module: promtool has run each file in the background since the session
# started (tests/observability/promtool_runs.py); a file not started yet runs here.
@pytest.mark.slow  # promtool evaluates every alert test series: up to ~50 s a file
@pytest.mark.timeout(PROMTOOL_TIMEOUT + 60)
@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(path: Path, promtool_runs: PromtoolRuns) -> None:
    returncode, output = promtool_runs.result(path)
    assert returncode == 0, output
    assert "SUCCESS" in output, output
