"""Figures vs targets, as JSON rows and as the generated sections of docs/performance.md.

The doc keeps hand-written text around two generated sections, each between its
``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->`` markers (``figures`` and
``profile``); :func:`update_docs` replaces only what is between them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MB = 1_000_000
TARGETS = {
    "events_per_s_1_worker": 60_000,  # issue 14 (issue 5 asked 50,000)
    "ratio_vs_idiomatic": 15.0,
    "freshness_p99_s": 2.0,
    "peak_rss_mb": 300.0,
    "ready_s": 10.0,
    "after_session_timeout_s": 5.0,  # same host, standby: session timeout + this
    "new_host_s": 20.0,
}


def _row(what: str, value: Any, shown: str, target: str = "", met: bool | None = None,
         load: list[float] | None = None) -> dict[str, Any]:
    return {"what": what, "value": value, "shown": shown, "target": target,
            "met": met, "load_1m": load[0] if load else None}


def summary(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The table's rows: one per figure, with its target when it has one."""
    rows = []
    tp = r.get("throughput", {})
    n = r["settings"]["events"]
    for k, t in sorted(tp.items(), key=lambda kv: int(kv[0])):
        k_i = int(k)
        what = f"events/s, {k_i} worker{'s' if k_i > 1 else ''}, {n:,} events"
        cpu = t["cpu_seconds"]
        per_cpu = f"{t['events'] / cpu:,.0f} per CPU-second" if cpu else ""
        if k_i == 1:
            rows.append(_row(what, t["events_per_s"], f"{t['events_per_s']:,} ({per_cpu})",
                             f">= {TARGETS['events_per_s_1_worker']:,}",
                             t["events_per_s"] >= TARGETS["events_per_s_1_worker"], t["load"]))
        else:
            per = t["events_per_s"] / k_i
            rows.append(_row(what, t["events_per_s"],
                             f"{t['events_per_s']:,} ({per:,.0f} per worker; {per_cpu})", "", None,
                             t["load"]))
    idio = r.get("idiomatic")
    if idio:
        idio_cpu = idio["events"] / idio["cpu_seconds"] if idio["cpu_seconds"] else 0.0
        rows.append(_row(f"events/s, idiomatic Faust agent, {idio['events']:,} events",
                         idio["events_per_s"],
                         f"{idio['events_per_s']:,} ({idio_cpu:,.0f} per CPU-second)", "", None,
                         idio["load"]))
        if "1" in tp:
            ratio = tp["1"]["events_per_s"] / idio["events_per_s"]
            one = tp["1"]
            cpu_ratio = (one["events"] / one["cpu_seconds"] / idio_cpu
                         if one["cpu_seconds"] and idio_cpu else 0.0)
            rows.append(_row("leadline / idiomatic Faust (1 worker each)", round(ratio, 2),
                             f"{ratio:.1f}x ({cpu_ratio:.1f}x per CPU-second)",
                             f">= {TARGETS['ratio_vs_idiomatic']:.0f}x",
                             ratio >= TARGETS["ratio_vs_idiomatic"]))
    f = r.get("freshness")
    if f:
        rate = f"{f['rate']:,.0f}/s for {f['seconds']:.0f} s"
        rows.append(_row(f"freshness p50, produce -> /metrics, {rate}", f["p50_s"],
                         f"{f['p50_s']} s", "", None, f["load"]))
        ok = f["p99_s"] is not None and f["p99_s"] <= TARGETS["freshness_p99_s"] \
            and f["never_visible"] == 0
        rows.append(_row(f"freshness p99, produce -> /metrics, {rate}", f["p99_s"],
                         f"{f['p99_s']} s (max {f['max_s']} s)",
                         f"<= {TARGETS['freshness_p99_s']:.0f} s", ok, f["load"]))
    m = r.get("memory")
    if m:
        mb = m["peak_rss_bytes"] / MB
        after = f" (RSS when done: {m['rss_after_bytes'] / MB:,.0f} MB)" if "rss_after_bytes" in m \
            else ""
        rows.append(_row(f"peak RSS (VmHWM), 1 worker, {r['users']:,} distinct users over 30 d",
                         round(mb), f"{mb:,.0f} MB{after}", f"<= {TARGETS['peak_rss_mb']:.0f} MB",
                         mb <= TARGETS["peak_rss_mb"], m["load"]))
    s = r.get("startup")
    if s:
        runs = ", ".join(map(str, s["runs"]))
        rows.append(_row("`leadline worker` start -> /healthz 200 (empty state), median",
                         s["median_s"], f"{s['median_s']} s (runs: {runs})",
                         f"<= {TARGETS['ready_s']:.0f} s", s["median_s"] <= TARGETS["ready_s"],
                         s["load"]))
    variants = (("same_host", "worker restarted on its data dir", "Redis view kept"),
                ("view_kept", "new worker", "Redis view kept"),
                ("view_lost", "new worker", "Redis view deleted too"))
    timeout = r["settings"]["session_timeout"]
    within = timeout + TARGETS["after_session_timeout_s"]
    for variant, who, text in variants:
        rec = r.get(f"recovery_{variant}")
        if rec:
            limit = within if variant == "same_host" else TARGETS["new_host_s"]
            target = (f"<= {limit:.0f} s" + (" (session timeout + 5 s)"
                                             if variant == "same_host" else ""))
            rows.append(_row(f"SIGKILL -> {who} /healthz 200, {text}", rec["to_ready_s"],
                             f"{rec['to_ready_s']} s", target, rec["to_ready_s"] <= limit,
                             rec["load"]))
            rows.append(_row(f"SIGKILL -> {who}: product metrics equal to before, {text}",
                             rec["to_metrics_equal_s"], f"{rec['to_metrics_equal_s']} s "
                             f"(peak RSS {rec['peak_rss_bytes'] / MB:,.0f} MB)", "", None,
                             rec["load"]))
    sb = r.get("standby")
    if sb:
        rows.append(_row(
            f"SIGKILL 1 of 2 workers with standby copies -> survivor has every partition "
            f"live, {sb['users']:,} distinct users", sb["to_all_partitions_live_s"],
            f"{sb['to_all_partitions_live_s']} s (read "
            f"{sb['changelog_records_read_at_takeover']:,} of "
            f"{sb['changelog_records_of_taken_partitions']:,} changelog records; peak RSS "
            f"{sb['peak_rss_bytes'] / MB:,.0f} MB)", f"<= {within:.0f} s (session timeout + 5 s)",
            sb["to_all_partitions_live_s"] <= within, sb["load"]))
    return rows


def _met(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "**no**")


def table(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"Measured {r['started_at']} on {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB "
        f"RAM (shared with other work: see load), Linux {m['kernel']}; Python {m['python']}, "
        f"faust-streaming {m['faust_streaming']}, aiokafka {m['aiokafka']}, "
        f"mode-streaming {m['mode_streaming']}, tansu {m['tansu']} (memory storage), "
        f"redis-server {m['redis_server']}; leadline {m['leadline_commit']}. "
        f"Seed {r['settings']['seed']}, {r['settings']['partitions']} partitions; "
        f"the whole run took {r['duration_s'] / 60:.1f} min "
        f"(load at start {r['load_at_start'][0]}).",
        "",
        "| figure | measured | target | met | load (1 min) |",
        "|---|---|---|---|---|",
    ]
    for row in r["summary"]:
        load = "" if row["load_1m"] is None else f"{row['load_1m']}"
        lines.append(f"| {row['what']} | {row['shown']} | {row['target']} | {_met(row['met'])} "
                     f"| {load} |")
    return "\n".join(lines)


def profile_table(r: dict[str, Any]) -> str:
    p = r.get("profile")
    if not p:
        return "_No profile in this run (BENCH_PROFILE_SECONDS=0)._"
    if "skipped" in p:
        return f"_No profile in this run: {p['skipped']}._"
    threads = ", ".join(f"{t['frame']} {t['percent']} %" for t in p["by_thread"])
    lines = [
        f"py-spy, 100 Hz for {p['seconds']:.0f} s on one worker draining the pre-loaded topic, "
        f"from the moment {p['events_done_before']:,} messages were done ({p['samples']} "
        f"samples, {p['events_done_while_profiling']:,} messages done while recording, "
        f"load {p['load'][0]}). Raw collapsed stacks: `{p['raw']}` (not committed). "
        f"Share of samples: {threads}; idle (a leaf `EpollSelector.select`, an event loop "
        f"waiting for I/O): {p['idle_percent']} %.",
        "",
        "Self time by package (leaf frame's package):",
        "",
        "| package | % of samples |",
        "|---|---|",
    ]
    lines += [f"| {row['frame']} | {row['percent']} |" for row in p["by_package"]]
    lines += ["", "Top frames by self time:", "", "| frame | self % |", "|---|---|"]
    lines += [f"| `{row['frame']}` | {row['percent']} |" for row in p["self"]]
    lines += ["", "Top frames by inclusive time:", "", "| frame | inclusive % |", "|---|---|"]
    lines += [f"| `{row['frame']}` | {row['percent']} |" for row in p["inclusive"]]
    return "\n".join(lines)


def _splice(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        return text.rstrip("\n") + f"\n\n{begin}\n{body}\n{end}\n"
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text)


def update_docs(path: Path, r: dict[str, Any]) -> None:
    """Regenerate the ``figures`` and ``profile`` sections of ``path`` (created if missing)."""
    text = path.read_text() if path.exists() else "# Performance\n"
    text = _splice(text, "figures", table(r))
    text = _splice(text, "profile", profile_table(r))
    path.write_text(text)
