"""A real Prometheus for tests, and every query the dashboards and rules run.

``start_prometheus(targets)`` runs the ``prometheus`` binary (Debian package
``prometheus``) on a free loopback port, in a temporary directory, with a
generated config that scrapes ``targets`` every second as job ``leadline`` and
loads the repository's rule files (evaluated every second). Use it as a context
manager, or call ``stop()``::

    with start_prometheus([f"127.0.0.1:{worker_port}"]) as prom:
        prom.wait_for_targets_up()
        for q in panel_queries():
            if not q.historical:
                assert prom.wait_for(q.expr), q

``panel_queries()`` lists every target expression of the committed dashboards
with the template variables substituted (``$platform`` -> ``all``,
``$__rate_interval`` -> ``1m``, ...). ``rule_expressions()`` lists every
recording and alert rule. Queries that look back with ``offset`` are marked
``historical``: a fresh Prometheus has no data for them, but must still accept
them; so are queries of a recording rule that looks back (the baselines).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "prometheus" / "rules"
DASHBOARDS_DIR = REPO / "grafana" / "dashboards"

INSTALL_HINT = (
    "install Debian's prometheus package: apt-get update && apt-get install -y prometheus"
)

#: Values given to the dashboards' template variables by :func:`panel_queries`.
DEFAULT_VARIABLES: Mapping[str, str] = {
    "platform": "all",
    "window": "24h",
    "day": "7",
    "event": "page_load",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered a query with an error."""


def require_binary(name: str) -> str:
    """Absolute path of ``name`` (``prometheus``, ``promtool``), or a clear error."""
    path = shutil.which(name)
    if path is None:
        raise PrometheusError(f"{name} not found on PATH: {INSTALL_HINT}")
    return path


def rule_files(rules_dir: Path = RULES_DIR) -> list[Path]:
    """The repository's rule files, in name order."""
    return sorted(rules_dir.glob("*.rules.yml"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Prometheus:
    """A running Prometheus. ``stop()`` is idempotent; the temp dir goes with it."""

    base_url: str
    workdir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _owns_workdir: bool = True
    _stopped: bool = field(default=False, repr=False)

    # ------------------------------------------------------------------ HTTP API

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; returns ``data`` or raises :class:`PrometheusError`."""
        url = f"{self.base_url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode(errors="replace")
            raise PrometheusError(f"GET {url}: HTTP {exc.code}: {detail}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"GET {url}: {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query: the result vector (``[{"metric": {...}, "value": [t, "v"]}]``).

        A scalar or string result comes back as a one-element list with an empty metric.
        """
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, Any]]:
        data = self.api(
            "query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step}"
        )
        return list(data["result"])

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    def rule_groups(self) -> list[dict[str, Any]]:
        return list(self.api("rules")["groups"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(self.api("alerts")["alerts"])

    # ------------------------------------------------------------------- waiting

    def wait_for(
        self,
        expr: str,
        timeout: float = 30.0,
        predicate: Callable[[list[dict[str, Any]]], bool] = bool,
        interval: float = 0.5,
    ) -> list[dict[str, Any]]:
        """Poll ``expr`` until ``predicate(result)`` (default: non-empty); return the result.

        Raises :class:`PrometheusError` with the last result on timeout.
        """
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while True:
            result = self.query(expr)
            if predicate(result):
                return result
            if time.monotonic() > deadline:
                raise PrometheusError(f"timed out after {timeout}s waiting for {expr!r}: {result}")
            time.sleep(interval)

    def wait_for_targets_up(self, timeout: float = 30.0, job: str = "leadline") -> None:
        """Wait until every target of ``job`` has been scraped successfully."""
        deadline = time.monotonic() + timeout
        while True:
            targets = [t for t in self.targets() if t["labels"].get("job") == job]
            if targets and all(t["health"] == "up" for t in targets):
                return
            if time.monotonic() > deadline:
                states = [(t["scrapeUrl"], t["health"], t.get("lastError")) for t in targets]
                raise PrometheusError(f"targets of job {job} not up after {timeout}s: {states}")
            time.sleep(0.25)

    # ------------------------------------------------------------------- process

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prometheus_config(
    targets: Sequence[str],
    rules: Sequence[Path],
    *,
    job: str = "leadline",
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
) -> dict[str, Any]:
    """The generated ``prometheus.yml``: one static job, the given rule files."""
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(p.resolve()) for p in rules],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }


def start_prometheus(
    targets: Sequence[str],
    *,
    rules: Sequence[Path] | None = None,
    job: str = "leadline",
    scrape_interval: str = "1s",
    evaluation_interval: str = "1s",
    workdir: Path | None = None,
    startup_timeout: float = 30.0,
    extra_args: Sequence[str] = (),
) -> Prometheus:
    """Start ``prometheus`` scraping ``targets`` (``host:port``) and wait until it is ready.

    ``rules`` defaults to the repository's rule files. ``workdir`` (config, TSDB,
    log) defaults to a fresh temporary directory removed by ``stop()``.
    """
    binary = require_binary("prometheus")
    owns = workdir is None
    root = Path(tempfile.mkdtemp(prefix="promstack-")) if workdir is None else workdir
    root.mkdir(parents=True, exist_ok=True)
    config = prometheus_config(
        targets,
        rule_files() if rules is None else rules,
        job=job,
        scrape_interval=scrape_interval,
        evaluation_interval=evaluation_interval,
    )
    config_path = root / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    last_error = ""
    for _attempt in range(3):  # a free port can be taken between probe and bind
        port = free_port()
        log_path = root / f"prometheus-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=warn",
                    *extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=root,
                env={**os.environ, "GOMAXPROCS": "2"},
            )
        prom = Prometheus(f"http://127.0.0.1:{port}", root, process, log_path, owns)
        if _wait_ready(prom, startup_timeout):
            return prom
        last_error = prom.log()[-2000:]
        prom._owns_workdir = False
        prom.stop()
    if owns:
        shutil.rmtree(root, ignore_errors=True)
    raise PrometheusError(f"prometheus did not become ready; last log:\n{last_error}")


def _wait_ready(prom: Prometheus, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if prom.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"{prom.base_url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


# --------------------------------------------------------------------------- queries

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_OFFSET = re.compile(r"\boffset\s+-?\d+[smhdwy]")


def substitute(expr: str, variables: Mapping[str, str] = DEFAULT_VARIABLES) -> str:
    """Replace Grafana template variables; an unknown variable raises ``KeyError``."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in variables:
            raise KeyError(f"no value for template variable ${name} in {expr!r}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


@dataclass(frozen=True)
class PanelQuery:
    """One target of one dashboard panel."""

    dashboard: str  # dashboard uid
    panel: str  # panel title
    ref_id: str
    expr: str  # variables substituted
    raw_expr: str  # as in the dashboard JSON
    historical: bool  # looks back with `offset`: no data on a fresh Prometheus

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}: {self.expr}"


def dashboards(dashboards_dir: Path = DASHBOARDS_DIR) -> dict[str, dict[str, Any]]:
    """Committed dashboard JSON by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(dashboards_dir.glob("*.json"))}


def iter_panels(board: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(
    variables: Mapping[str, str] | None = None, dashboards_dir: Path = DASHBOARDS_DIR
) -> list[PanelQuery]:
    """Every PromQL target of the committed dashboards, variables substituted."""
    values = {**DEFAULT_VARIABLES, **(variables or {})}
    past = [r.name for r in rule_expressions() if r.kind == "record" and r.historical]
    queries = []
    for board in dashboards(dashboards_dir).values():
        for panel in iter_panels(board):
            for target in panel.get("targets", []):
                raw = target.get("expr")
                if not raw:
                    continue
                queries.append(
                    PanelQuery(
                        dashboard=board["uid"],
                        panel=panel.get("title", ""),
                        ref_id=target.get("refId", ""),
                        expr=substitute(raw, values),
                        raw_expr=raw,
                        historical=bool(_OFFSET.search(raw)) or any(
                            re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", raw)
                            for name in past),
                    )
                )
    return queries


@dataclass(frozen=True)
class RuleExpression:
    """One recording or alerting rule of the repository."""

    file: str
    group: str
    kind: str  # "record" or "alert"
    name: str
    expr: str
    historical: bool  # looks back with `offset`, or reads a rule that does

    def __str__(self) -> str:
        return f"{self.file} / {self.group} / {self.kind} {self.name}: {self.expr.strip()}"


def rule_expressions(rules_dir: Path = RULES_DIR) -> list[RuleExpression]:
    """Every rule of every rule file, in file order. A rule reading a historical
    recording rule (the median of past weeks) is historical too."""
    out: list[RuleExpression] = []
    for path in rule_files(rules_dir):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                kind = "record" if "record" in rule else "alert"
                past = {r.name for r in out if r.kind == "record" and r.historical}
                reads_past = any(
                    re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", rule["expr"])
                    for name in past
                )
                out.append(
                    RuleExpression(
                        file=path.name,
                        group=group["name"],
                        kind=kind,
                        name=rule[kind],
                        expr=rule["expr"],
                        historical=bool(_OFFSET.search(rule["expr"])) or reads_past,
                    )
                )
    return out
