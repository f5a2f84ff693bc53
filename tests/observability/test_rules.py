"""Prometheus config, rules and alert unit tests (promtool), and Alertmanager routing (amtool)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.observability.promstack import rule_files

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "prometheus"
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))
RUNBOOK = REPO / "docs" / "runbook.md"
ALERTMANAGER = PROM / "alertmanager" / "alertmanager.yml"


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, check=False)


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
    assert [p.name for p in rule_files()] == ["pipeline.rules.yml", "product.rules.yml"]
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


@pytest.mark.slow  # promtool evaluates every alert test series: up to ~15 s a file
@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_rule_unit_tests_pass(promtool: str, path: Path) -> None:
    result = run(promtool, "test", "rules", str(path))
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
    assert names - silent == set(), "alerts never shown to stay silent in prometheus/tests/"


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"] + r["labels"].get("cause", ""))
def test_alert_metadata(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert rule["labels"]["severity"] in ("page", "ticket")
    annotations = rule["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert annotations["runbook_url"] == f"docs/runbook.md#{name.lower()}"
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


def test_product_rules_never_sum_product_gauges() -> None:
    """product_* gauges are global: every raw selector sits directly inside max by (...)."""
    text = (PROM / "rules" / "product.rules.yml").read_text()
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
