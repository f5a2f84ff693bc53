"""The installed layout: one ``leadline`` namespace, typed, with visible wiring.

These check the repository's shape, not behaviour: what a wheel installs, that mypy
sees the installed code, that only the adapter touches Faust's and aiokafka's private
attributes, and that ``streams/`` has no import cycle.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from mypy import api as mypy_api

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGE_DIR: dict[str, str] = PROJECT["tool"]["setuptools"]["package-dir"]
#: The one module allowed to use Faust's and aiokafka's private attributes.
ADAPTER = "leadline.streams.faust_adapter"


def modules() -> dict[str, Path]:
    """Installed module name -> its source file in the repository."""
    found: dict[str, Path] = {}
    for package, folder in PACKAGE_DIR.items():
        for path in sorted((REPO / folder).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def test_every_installed_package_is_typed_checked_and_banned_bare() -> None:
    assert set(PROJECT["tool"]["setuptools"]["packages"]) == set(PACKAGE_DIR)
    assert set(PROJECT["tool"]["mypy"]["packages"]) == set(PACKAGE_DIR)
    banned = PROJECT["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-api"]
    makefile = (REPO / "Makefile").read_text()
    listed = re.search(r"^PACKAGES := (.*)$", makefile, flags=re.M)
    assert listed is not None
    assert set(listed.group(1).split()) == set(PACKAGE_DIR.values())
    for package, folder in PACKAGE_DIR.items():
        assert package == f"leadline.{folder}"
        assert (REPO / folder / "py.typed").is_file(), folder
        assert folder in banned, f"bare 'import {folder}' is not banned"


@pytest.mark.slow  # pip builds the wheel and installs it: seconds
def test_the_wheel_installs_only_the_leadline_namespace(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("leadline-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert tops == {"leadline", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    assert "leadline/__init__.py" not in names  # an implicit namespace package
    for package in PACKAGE_DIR:
        assert f"{package.replace('.', '/')}/py.typed" in names, package
    assert "leadline/config/leadline.yaml" in names

    # Installed from that wheel alone, outside the repository, the app imports.
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(wheel)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", "import leadline.streams.app as m; print(m.__file__)"],
        check=True, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.stdout.strip().startswith(str(target)), out.stdout


def test_mypy_sees_the_installed_code(tmp_path: Path) -> None:
    """With an editable install mypy cannot follow, ``ignore_missing_imports`` turns every
    leadline module into ``Any`` and type errors in and against it go unreported."""
    config = tmp_path / "mypy.ini"  # the project's settings, without its package targets
    settings = {k: v for k, v in PROJECT["tool"]["mypy"].items() if k != "packages"}
    config.write_text("[mypy]\n" + "".join(
        f"{k} = {str(v).lower() if isinstance(v, bool) else v}\n" for k, v in settings.items()))
    code = "from leadline.config.settings import Settings\nwrong: int = Settings.model_fields\n"
    stdout, stderr, status = mypy_api.run(
        ["--config-file", str(config), "--no-incremental", "-c", code])
    assert status == 1 and "Incompatible types in assignment" in stdout, stdout + stderr


def _private(name: object) -> bool:
    return isinstance(name, str) and name.startswith("_") and not name.startswith("__")


def private_accesses(path: Path) -> list[str]:
    """``obj._name`` where ``obj`` is not ``self``/``cls`` (another object's private part),
    and ``getattr``/``setattr``/``hasattr`` with a private name."""
    hits = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (isinstance(node, ast.Attribute) and _private(node.attr)
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            hits.append(f"{path.name}:{node.lineno}: .{node.attr}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and _private(node.args[1].value)):
            hits.append(f"{path.name}:{node.lineno}: {node.func.id} {node.args[1].value}")
    return hits


def test_only_the_adapter_touches_private_attributes() -> None:
    offenders = [hit for name, path in modules().items() if name != ADAPTER
                 for hit in private_accesses(path)]
    assert offenders == []


def test_the_private_attribute_check_finds_one(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text("def f(app, self):\n    self._own = 1\n"
                       "    getattr(app, '_x', None)\n"
                       "    return app.producer._ensure_producer()\n")
    assert private_accesses(planted) == ["planted.py:3: getattr _x",
                                         "planted.py:4: ._ensure_producer"]


def imports_of(path: Path, package: str) -> set[str]:
    """Modules of ``package`` that ``path`` imports, at any level (functions included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == package:
                out |= {f"{package}.{alias.name}" for alias in node.names}
            elif node.module.startswith(package + "."):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith(package + ".")}
    return out


@pytest.mark.parametrize("package", sorted(PACKAGE_DIR))
def test_no_import_cycle_within_a_package(package: str) -> None:
    mods = {name: path for name, path in modules().items()
            if name.startswith(package + ".")}
    graph = {name: imports_of(path, package) & set(mods) for name, path in mods.items()}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> None:
        if name in visiting:
            cycle = [*visiting[visiting.index(name):], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        visiting.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
