"""test_state_footprint.py's fold started in the background when the session starts.

The fold is a fresh interpreter busy for ~35 s on one core; the run uses one core of
two, so it is started as soon as collection is done (when its test is selected) and the
test only reads its result. Memory is what it measures, in its own process: the tests
running meanwhile do not change it.
"""

from __future__ import annotations

from typing import Any

import pytest

FOLDING = pytest.StashKey[Any]()  # test_state_footprint.Folding
FOLDING_TEST = "test_the_estimate_grows_as_the_memory_in_use"


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    for item in session.items:
        if isinstance(item, pytest.Function) and item.originalname == FOLDING_TEST \
                and hasattr(item.module, "Folding"):
            session.stash[FOLDING] = item.module.Folding.start()
            return


def pytest_sessionfinish(session: pytest.Session) -> None:
    folding = session.stash.get(FOLDING, None)
    if folding is not None:
        folding.stop()


@pytest.fixture
def folding(request: pytest.FixtureRequest) -> Any:
    """The fold started with the session, or started now."""
    stash = request.session.stash
    if FOLDING not in stash:
        stash[FOLDING] = request.module.Folding.start()
    return stash[FOLDING]
