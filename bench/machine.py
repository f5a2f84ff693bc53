"""What the figures were measured on: hardware, Python, and the versions that matter."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from leadline.embedded.services import redis_binary, tansu_binary

ROOT = Path(__file__).resolve().parents[1]


def _first(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _output(argv: list[str]) -> str | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10,
                              cwd=ROOT).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def describe() -> dict[str, Any]:
    mem_kb = _first("/proc/meminfo", "MemTotal")
    return {
        "cpu_model": _first("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(int(mem_kb.split()[0]) / 1024 / 1024, 1) if mem_kb else None,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "faust_streaming": _version("faust-streaming"),
        "aiokafka": _version("aiokafka"),
        "mode_streaming": _version("mode-streaming"),
        "orjson": _version("orjson"),
        "tansu": (_output([str(tansu_binary()), "--version"]) or "?").removeprefix("tansu "),
        "redis_server": (_output([str(redis_binary()), "--version"]) or "?").split(" ")[2]
        .removeprefix("v="),
        "leadline_commit": _output(["git", "rev-parse", "--short", "HEAD"]),
    }
