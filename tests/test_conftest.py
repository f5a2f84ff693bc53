"""What tests/conftest.py promises: what a test starts is stopped when it fails, workers
before services, and tests that use real services are marked ``services`` and ``slow``.

Runs a small inner pytest session (``pytester``) on stand-ins for services and workers:
nothing real is started.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

_OPTIONS = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())[
    "tool"]["pytest"]["ini_options"]
#: The project's pytest settings (markers, warnings as errors), without its test paths.
SETTINGS = "\n".join([
    "[pytest]",
    *(f"{key} = {_OPTIONS[key]}"
      for key in ("addopts", "asyncio_mode", "asyncio_default_fixture_loop_scope")),
    *(line for key in ("filterwarnings", "markers")
      for line in (f"{key} =", *(f"    {v}" for v in _OPTIONS[key]))),
]) + "\n"

INNER_CONFTEST = 'pytest_plugins = ["tests.conftest"]\n'

INNER_TESTS = '''
import pytest

log = []


class Thing:
    def __init__(self, name):
        self.name = name

    def __enter__(self):
        log.append(f"start {self.name}")
        return self

    def __exit__(self, *exc):
        log.append(f"stop {self.name}")


class Pipeline:
    def worker(self, name):
        return Thing(name)


def test_a_failing_test(start_service, start_worker, at_teardown):
    start_service(Thing("broker"))
    start_worker(Pipeline(), "w1")
    start_service(Thing("redis"))  # after the worker, stopped after it all the same
    start_worker(Pipeline())
    at_teardown.callback(log.append, "sender finished")
    assert False, "the test fails"


@pytest.mark.parametrize("broker", ["k1:9092"])
def test_a_parameter_named_like_a_fixture(broker):
    assert broker == "k1:9092"


def test_afterwards_everything_was_stopped_in_order():
    assert log == [
        "start broker", "start w1", "start redis", "start w1",
        "sender finished", "stop w1", "stop w1", "stop redis", "stop broker",
    ]
'''


@pytest.fixture
def inner(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(SETTINGS)
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=INNER_TESTS)
    return pytester


def run(inner: pytest.Pytester, *args: str) -> pytest.RunResult:
    # (without hypothesis' plugin, which takes a second to set up and is not used here)
    return inner.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                                     *args)


def test_what_a_failing_test_started_is_stopped_workers_first(inner: pytest.Pytester) -> None:
    result = run(inner)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: the test fails*"])


def test_tests_using_services_are_slow_and_a_parameter_is_not_a_service(
    inner: pytest.Pytester,
) -> None:
    result = run(inner, "-v", "-m", "not slow", "-k", "not afterwards")
    result.assert_outcomes(passed=1, deselected=2)
    result.stdout.fnmatch_lines(["*test_a_parameter_named_like_a_fixture*PASSED*"])
    result = run(inner, "-v", "-m", "services")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*test_a_failing_test FAILED*"])
