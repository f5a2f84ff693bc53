"""Summaries of a py-spy profile (``--format raw --function``: collapsed stacks).

Each line is ``frame;frame;...;leaf count`` with frames like ``name (path:line)``.
Percentages are of all samples of all threads: a Faust worker runs its aiokafka
consumer in a second thread (mode's ``ServiceThread``), and both share the GIL.
*Self* time is charged to the leaf frame, *inclusive* time to every distinct frame
on the stack, and *by package* charges self time to the top-level package (or
stdlib module) of the leaf frame's file. A leaf ``EpollSelector.select`` is an event
loop waiting for I/O: *idle*.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>[^()]*?)(?::\d+)?\)$")
LEADLINE = ("aggregators", "events", "streams", "serving", "config", "cli", "bench")


def _parse(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame)
    return (m["name"], m["path"]) if m else (frame, "")


def package(path: str) -> str:
    """``faust/transport/consumer.py`` -> ``faust``; leadline's own modules -> ``leadline``."""
    if not path:
        return "?"
    head = path.split("/", 1)[0]
    if head in LEADLINE:
        return f"leadline ({head})"
    return head.removesuffix(".py")


def label(frame: str) -> str:
    name, path = _parse(frame)
    return f"{name} ({path})" if path else name


def summarize(collapsed: str, top: int = 20) -> dict[str, Any]:
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    idle = 0
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        leaf = frames[-1]
        self_time[label(leaf)] += count
        packages[package(_parse(leaf)[1])] += count
        consumer = any(f.startswith("ServiceThread._start_thread") for f in frames)
        threads["consumer thread" if consumer else "main thread"] += count
        if leaf.startswith("EpollSelector.select"):
            idle += count
        for frame in {label(f) for f in frames}:
            inclusive[frame] += count

    def pct(counter: Counter[str], n: int) -> list[dict[str, Any]]:
        return [{"frame": k, "percent": round(100 * v / total, 1)}
                for k, v in counter.most_common(n)] if total else []

    return {"samples": total, "idle_percent": round(100 * idle / total, 1) if total else 0.0,
            "by_thread": pct(threads, 2), "self": pct(self_time, top),
            "inclusive": pct(inclusive, top + 10), "by_package": pct(packages, 15)}
