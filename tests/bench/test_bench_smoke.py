"""The bench harness end to end on a tiny workload: every figure lands in the JSON.

About 50 s: real broker, Redis and workers, a couple of thousand events, short
phases, a 2 s group session timeout. Checks the shape of the result, never a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.services]  # bench.run starts them itself

RUN_FIELDS = {"events", "done", "seconds", "events_per_s", "cpu_seconds", "handlers", "load"}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "latest.json"
    docs = out.with_name("performance.md")
    docs.write_text("# Performance\n\nhand-written text stays\n\n"
                    "<!-- bench:figures:begin -->\nold\n<!-- bench:figures:end -->\n")
    subprocess.run(
        [sys.executable, "-m", "bench.run", "--events", "2000", "--workers", "1",
         "--freshness-seconds", "2", "--ready-runs", "1", "--profile-seconds", "1",
         "--session-timeout", "2", "--out", str(out), "--docs", str(docs)],
        cwd=ROOT, check=True, timeout=300, stdout=subprocess.DEVNULL)
    data = json.loads(out.read_text())
    data["_docs"] = docs.read_text()
    return data


def test_machine_and_settings_are_described(result: dict) -> None:
    assert set(result["machine"]) >= {"cpu_model", "cores", "ram_gib", "python",
                                      "faust_streaming", "aiokafka", "tansu"}
    assert all(result["machine"][k] for k in ("cpu_model", "cores", "python", "tansu"))
    assert result["settings"]["events"] == 2000
    assert len(result["load_at_start"]) == 3


def test_throughput_and_baseline_count_every_message(result: dict) -> None:
    one = result["throughput"]["1"]
    assert set(one) >= RUN_FIELDS
    assert one["done"] == one["metrics_done"] == 2000
    assert one["events_per_s"] > 0
    assert set(one["handlers"]) == {"ingest", "aggregate"}
    assert set(result["idiomatic"]) >= RUN_FIELDS
    assert result["idiomatic"]["done"] == 2000


def test_freshness_memory_startup_and_recovery_are_measured(result: dict) -> None:
    fresh = result["freshness"]
    assert fresh["samples"] > 0 and fresh["never_visible"] == 0
    assert fresh["p50_s"] is not None and fresh["p99_s"] >= fresh["p50_s"]
    assert fresh["visible_at_end"] == fresh["produced"]
    assert result["memory"]["peak_rss_bytes"] > 0
    assert result["memory"]["active_users_30d_estimate"] > 0
    assert len(result["startup"]["runs"]) == 1
    for variant in ("same_host", "view_kept", "view_lost"):
        rec = result[f"recovery_{variant}"]
        assert {"to_ready_s", "to_metrics_equal_s", "peak_rss_bytes", "load"} <= set(rec)
    standby = result["standby"]
    assert len(standby["partitions_taken"]) in (1, 2, 3)      # the dead worker's share
    assert standby["to_all_partitions_live_s"] > 0
    # The survivor's copies held the dead worker's partitions: their records were counted.
    assert standby["changelog_records_of_taken_partitions"] > 0


def test_profile_and_summary_rows(result: dict) -> None:
    profile = result["profile"]
    assert profile["samples"] > 0
    assert profile["self"] and profile["inclusive"] and profile["by_package"]
    whats = " ".join(row["what"] for row in result["summary"])
    for needle in ("1 worker", "idiomatic", "freshness p99", "peak RSS", "healthz", "SIGKILL",
                   "standby copies"):
        assert needle in whats


def test_docs_sections_are_regenerated_and_text_kept(result: dict) -> None:
    docs = result["_docs"]
    assert "hand-written text stays" in docs and "\nold\n" not in docs
    assert docs.count("<!-- bench:figures:begin -->") == 1
    assert "<!-- bench:profile:begin -->" in docs
    assert report.table(result) in docs
