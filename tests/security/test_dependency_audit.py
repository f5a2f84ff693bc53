"""Dependency audit: a known vulnerability in what ``make test`` installed fails the build.

Both checks use PyPI's vulnerability data (the ``vulnerabilities`` field of its JSON API)
and the waivers in ``audit-ignore.txt`` beside this file (policy: docs/reliability.md).

1. ``pip-audit -s pypi`` (pinned in the ``test`` extra) over this environment: the full
   audit, every installed distribution at its installed version. It reads PyPI's
   per-release JSON (``/pypi/NAME/VERSION/json``).
2. The latest-release check: PyPI's per-project JSON (``/pypi/NAME/json``) lists the
   advisories of the project's *latest* release. For an installed distribution that is
   the latest release, those are exactly the advisories of the installed version; one
   that is not the latest release is not covered by this check (it is listed in the
   output, ``pytest -s``).

Each check skips only when its PyPI service cannot be used from here: the host is not
reachable, or (check 1) the index reached is a mirror that does not serve per-release JSON,
as on the development and CI machines, where check 2 is therefore the one that runs.
With ``LEADLINE_AUDIT_REQUIRED=1`` (``make audit``) such a skip is a failure.
"""

from __future__ import annotations

import datetime as dt
import http.client
import importlib.metadata as metadata
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

PYPI = "https://pypi.org/pypi"
IGNORE_FILE = Path(__file__).with_name("audit-ignore.txt")
MAX_WAIVER_DAYS = 30
OWN = "leadline"  # the project itself (editable); a "leadline" on PyPI is someone else's
# URLError, timeouts and refused / reset connections are all OSErrors
NETWORK_ERRORS = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class Waiver:
    id: str
    package: str
    look_again: dt.date
    reason: str

    def active(self, today: dt.date) -> bool:
        return today < self.look_again


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]

    def __str__(self) -> str:
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        fixed = f", fixed in {', '.join(self.fixed_in)}" if self.fixed_in else ", no fix yet"
        return f"{self.package} {self.version}: {self.id}{aliases}{fixed}"


def parse_waivers(text: str) -> list[Waiver]:
    waivers = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(None, 3)
        if len(fields) < 4:
            raise ValueError(f"{IGNORE_FILE.name}:{number}: want ID PACKAGE LOOK-AGAIN REASON")
        try:
            look_again = dt.date.fromisoformat(fields[2])
        except ValueError:
            raise ValueError(f"{IGNORE_FILE.name}:{number}: LOOK-AGAIN {fields[2]!r} "
                             f"is not YYYY-MM-DD") from None
        waivers.append(Waiver(fields[0], canonicalize_name(fields[1]), look_again, fields[3]))
    return waivers


def unwaived(findings: Iterable[Finding], waivers: list[Waiver],
             today: dt.date) -> list[Finding]:
    active = [w for w in waivers if w.active(today)]
    return [f for f in findings
            if not any(w.package == canonicalize_name(f.package)
                       and w.id in (f.id, *f.aliases) for w in active)]


def _unusable(what: str) -> NoReturn:
    if os.environ.get("LEADLINE_AUDIT_REQUIRED") == "1":
        pytest.fail(f"{what} (LEADLINE_AUDIT_REQUIRED=1)")
    pytest.skip(what)


def distinct(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per advisory: PyPI lists e.g. a PYSEC and a GHSA id for the same CVE."""
    kept: list[Finding] = []
    for f in findings:
        if not any(k.package == f.package and f.id in (k.id, *k.aliases) for k in kept):
            kept.append(f)
    return kept


def _fail_on(findings: list[Finding], how: str) -> None:
    left = distinct(unwaived(findings, parse_waivers(IGNORE_FILE.read_text()),
                             dt.date.today()))
    if left:
        pytest.fail(f"{how}: {len(left)} known vulnerabilities (bump the pin in "
                    f"pyproject.toml, or waive with a reason in {IGNORE_FILE.name}):\n"
                    + "\n".join(f"  {f}" for f in left), pytrace=False)


def _get_json(url: str, timeout: float = 15.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.load(response)


# --- the waiver file --------------------------------------------------------------------


def test_the_waiver_file_is_well_formed_and_short_lived() -> None:
    today = dt.date.today()
    for w in parse_waivers(IGNORE_FILE.read_text()):
        assert (w.look_again - today).days <= MAX_WAIVER_DAYS, (
            f"{w.id}: look again at most {MAX_WAIVER_DAYS} days ahead, not {w.look_again}")
        assert len(w.reason) >= 20, f"{w.id}: give a reason (owner, why, until when)"


def test_waivers_match_by_id_or_alias_for_their_package_until_their_date() -> None:
    waivers = parse_waivers("# comment\n\nGHSA-aaaa  Some_Pkg  2030-01-02  "
                            "tester: not reachable from leadline, see the issue\n")
    finding = Finding("some-pkg", "1.0", "PYSEC-2029-1", ("GHSA-aaaa", "CVE-2029-1"), ())
    other = Finding("other", "1.0", "GHSA-aaaa", (), ())
    assert unwaived([finding, other], waivers, dt.date(2030, 1, 1)) == [other]
    assert unwaived([finding], waivers, dt.date(2030, 1, 2)) == [finding]  # expired
    twin = Finding("some-pkg", "1.0", "GHSA-aaaa", ("PYSEC-2029-1", "CVE-2029-1"), ())
    assert distinct([finding, twin, other]) == [finding, other]
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_waivers("GHSA-aaaa pkg soon because")
    with pytest.raises(ValueError, match="ID PACKAGE"):
        parse_waivers("GHSA-aaaa pkg 2030-01-01")


# --- check 1: pip-audit ---------------------------------------------------------------


def _pip_audit_findings(report: dict[str, Any]) -> tuple[list[Finding], list[str]]:
    findings, unaudited = [], []
    for dep in report.get("dependencies", []):
        reason = dep.get("skip_reason")
        if reason:
            if canonicalize_name(dep["name"]) != OWN:
                unaudited.append(f"{dep['name']}: {reason}")
            continue
        for vuln in dep.get("vulns", []):
            findings.append(Finding(dep["name"], dep["version"], vuln["id"],
                                    tuple(vuln.get("aliases", [])),
                                    tuple(vuln.get("fix_versions", []))))
    return findings, unaudited


@pytest.mark.slow  # pip-audit asks PyPI about every installed package
def test_pip_audit_finds_no_known_vulnerability(tmp_path: Path) -> None:
    try:
        pip_audit = metadata.version("pip-audit")
    except metadata.PackageNotFoundError:
        pytest.fail("pip-audit is not installed: `make install` installs the test extra")
    pip = metadata.version("pip")
    try:  # what pip-audit -s pypi asks for, for every installed distribution
        _get_json(f"{PYPI}/pip/{pip}/json", timeout=10)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404:
            _unusable(f"pip-audit {pip_audit} -s pypi cannot run here: {PYPI} is a mirror "
                      f"without the per-release JSON API (GET /pypi/pip/{pip}/json -> 404), "
                      f"so every package would come back 'not found on PyPI'")
        _unusable(f"PyPI's vulnerability service answered HTTP {exc.code}")
    except NETWORK_ERRORS as exc:
        _unusable(f"PyPI's vulnerability service is unreachable: {exc!r}")

    out = tmp_path / "pip-audit.json"
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pip_audit", "--vulnerability-service", "pypi",
             "--skip-editable", "--progress-spinner", "off", "--timeout", "15",
             "--format", "json", "--output", str(out)],
            capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        _unusable("pip-audit did not finish in 120 s (PyPI too slow or unreachable)")
    if not out.exists():
        if any(s in run.stderr for s in ("ConnectionError", "ConnectTimeout", "ReadTimeout",
                                         "Max retries exceeded")):
            _unusable(f"PyPI became unreachable during pip-audit: {run.stderr[-300:]}")
        pytest.fail(f"pip-audit failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
    findings, unaudited = _pip_audit_findings(json.loads(out.read_text()))
    _fail_on(findings, f"pip-audit {pip_audit} -s pypi")
    # --strict: a distribution that could not be checked is a failure, not a pass
    assert not unaudited, "pip-audit could not audit:\n" + "\n".join(unaudited)


# --- check 2: advisories of the latest releases -----------------------------------------


def installed() -> dict[str, str]:
    """Canonical name -> version of every distribution on ``sys.path`` but leadline."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        direct = dist.read_text("direct_url.json")
        editable = bool(direct and json.loads(direct).get("dir_info", {}).get("editable"))
        if name and name != OWN and not editable:
            found.setdefault(name, dist.version)
    return found


def _same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def _project(name: str) -> dict[str, Any] | int | str:
    """PyPI's project JSON, or the HTTP status it answered, or the network error's text."""
    for attempt in (1, 2):
        try:
            return dict(_get_json(f"{PYPI}/{name}/json"))
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code < 500 or attempt == 2:
                return exc.code
        except NETWORK_ERRORS as exc:
            if attempt == 2:
                return repr(exc)
    raise AssertionError("not reached")


@pytest.mark.slow  # one PyPI request per installed package
def test_installed_latest_releases_have_no_known_vulnerability() -> None:
    dists = installed()
    assert "pytest" in dists and "aiokafka" in dists, dists  # this environment, not another
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = dict(zip(dists, pool.map(_project, dists), strict=True))

    findings: list[Finding] = []
    checked, not_latest, missing, unreachable = [], [], [], []
    for name, answer in sorted(answers.items()):
        if answer == 404:
            missing.append(name)
        elif not isinstance(answer, dict):
            unreachable.append(f"{name}: {answer}")
        elif not _same_version(dists[name], answer["info"]["version"]):
            not_latest.append(f"{name} {dists[name]} (latest {answer['info']['version']})")
        else:
            checked.append(name)
            findings += [Finding(name, dists[name], v["id"], tuple(v.get("aliases") or ()),
                                 tuple(v.get("fixed_in") or ()))
                         for v in answer.get("vulnerabilities") or []
                         if not v.get("withdrawn")]
    print(f"\nlatest-release check: {len(dists)} distributions, {len(checked)} checked "
          f"(installed = latest release); not covered ({len(not_latest)}): "
          f"{', '.join(not_latest) or 'none'}")
    _fail_on(findings, "PyPI advisories of installed latest releases")
    if unreachable:
        _unusable(f"PyPI's JSON API is unreachable for {len(unreachable)} of {len(dists)} "
                  f"distributions: {unreachable[0]}")
    assert not missing, f"not on PyPI, so not audited: {', '.join(missing)}"
