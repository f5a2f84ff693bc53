"""``promtool test rules`` over prometheus/tests/*.yml, started when the session starts.

promtool evaluates every rule at every evaluation interval from 0 to the last eval_time
of a file, on one core: alert_latency.test.yml (three weeks) keeps it busy for about a
minute, the other files for another minute together. The pytest run uses one core, so
tests/observability/conftest.py starts the files selected for test_rule_unit_tests_pass
in a background lane (one file after the other) as soon as collection is done; the test
then only reads each file's result. A test that finds its file not started yet runs it
itself, in the foreground (a second lane): a lone ``pytest tests/observability`` waits
for two lanes, not seven files in turn.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from pathlib import Path

#: promtool's time limit. alert_latency.test.yml alone takes it 50-90 s (3 weeks at a
#: 2m interval) and minutes on a machine loaded 4-5 deep; test_rule_unit_tests_pass
#: raises pytest's own limit (300 s) above this one.
PROMTOOL_TIMEOUT = 840

REPO = Path(__file__).resolve().parents[2]


class PromtoolRuns:
    """Each path run once by ``promtool test rules``: (exit status, output) by path."""

    def __init__(self, promtool: str, paths: list[Path]) -> None:
        self.promtool = promtool
        self.pending = list(dict.fromkeys(paths))  # for the lane, in the order given
        self.claimed: set[Path] = set()  # started by the lane or a test
        self.results: dict[Path, tuple[int, str]] = {}
        self.procs: dict[Path, subprocess.Popen[bytes]] = {}
        self.stopped = False
        self.changed = threading.Condition()
        self.lane = threading.Thread(target=self._lane, name="promtool-lane", daemon=True)

    def start(self) -> PromtoolRuns:
        self.lane.start()
        return self

    def result(self, path: Path) -> tuple[int, str]:
        """promtool's exit status and output for ``path``: run now unless already
        started; while the lane runs it, the files it has not started are run here."""
        while (run := self._claim(path)) is not None:
            self._run(run)
        with self.changed:
            self.changed.wait_for(lambda: path in self.results or self.stopped,
                                  timeout=PROMTOOL_TIMEOUT + 30)
            return self.results.get(path, (-1, "promtool did not finish"))

    def stop(self) -> None:
        """Kill what still runs (a session ending early); idempotent."""
        with self.changed:
            self.stopped = True
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.kill()
            self.changed.notify_all()
        if self.lane.is_alive():
            self.lane.join(timeout=30)

    def _claim(self, wanted: Path | None = None) -> Path | None:
        """``wanted`` if nobody started it, else the next file nobody started, else None
        (once ``wanted`` is started, ``None`` too if ``wanted`` is done)."""
        with self.changed:
            if self.stopped:
                return None
            if wanted is not None and wanted not in self.claimed:
                path: Path | None = wanted
            elif wanted is not None and wanted in self.results:
                path = None
            else:
                path = next((p for p in self.pending if p not in self.claimed), None)
            if path is not None:
                self.claimed.add(path)
            return path

    def _lane(self) -> None:
        while (path := self._claim()) is not None:
            self._run(path)

    def _run(self, path: Path) -> None:
        with tempfile.TemporaryFile() as output:
            try:
                with self.changed:
                    if self.stopped:
                        raise OSError("the session ended first")
                    proc = self.procs[path] = subprocess.Popen(
                        [self.promtool, "test", "rules", str(path)], stdin=subprocess.DEVNULL,
                        stdout=output, stderr=subprocess.STDOUT, cwd=REPO)
                try:
                    returncode = proc.wait(timeout=PROMTOOL_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    returncode = proc.wait()
                output.seek(0)
                result = returncode, output.read().decode(errors="replace")
            except OSError as exc:  # promtool gone, or the session over
                result = -1, f"promtool could not run: {exc}"
        with self.changed:
            self.results[path] = result
            self.changed.notify_all()
