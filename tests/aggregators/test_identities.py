"""Forward identity stitching (``aggregators/identities.py``) against a naive model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from leadline.aggregators.identities import LINK_RETENTION, Links

USERS = st.sampled_from(["u1", "u2", "u3"])
# A partition's link records: distinct offsets, each naming a user.
LOGS = st.dictionaries(st.integers(0, 60), USERS, max_size=25)


def naive(log: dict[int, str], offset: int) -> str | None:
    """The user of the latest link below ``offset``: the rule, without compression."""
    before = [o for o in log if o < offset]
    return log[max(before)] if before else None


@given(LOGS)
def test_the_answer_at_every_offset_is_the_latest_link_below_it(log: dict[int, str]) -> None:
    links = Links()
    for offset in sorted(log):
        links.add("anon:a", offset, log[offset], 0.0)
    for offset in range(-1, 63):
        assert links.user_at("anon:a", offset) == naive(log, offset)


@given(LOGS, st.data())
def test_replays_in_any_order_over_a_restored_copy_decide_the_same(
        log: dict[int, str], data: st.DataObject) -> None:
    """A crash restores some later state, then replays a suffix of the log: the answers
    equal the first pass's, whatever was restored."""
    first = Links()
    for offset in sorted(log):
        first.add("anon:a", offset, log[offset], 0.0)
    encoded = first.encode("anon:a")
    restored = Links()
    if encoded is not None and data.draw(st.booleans()):
        restored.load("anon:a", encoded)
    replayed = data.draw(st.permutations(sorted(log)))
    for offset in replayed[: data.draw(st.integers(0, len(replayed)))]:
        restored.add("anon:a", offset, log[offset], 0.0)
    for offset in sorted(log):  # the rest of the replay, in offset order
        restored.add("anon:a", offset, log[offset], 0.0)
    for offset in range(-1, 63):
        assert restored.user_at("anon:a", offset) == naive(log, offset)


def test_a_run_of_links_to_one_user_costs_one_entry() -> None:
    links = Links()
    for offset in range(1000):  # identify on every page load
        links.add("anon:a", offset, "u1", 0.0)
    links.add("anon:a", 1000, "u2", 0.0)
    data = links.encode("anon:a")
    assert data is not None and data.count(b'"u1"') == 1 and data.count(b'"u2"') == 1
    assert links.user_at("anon:a", 0) is None
    assert links.user_at("anon:a", 500) == "u1"
    assert links.user_at("anon:a", 1001) == "u2"


def test_unlinked_ids_and_other_identities_stay_as_they_are() -> None:
    links = Links()
    links.add("anon:a", 5, "u1", 0.0)
    assert links.user_at("anon:b", 10) is None
    assert links.user_at("u9", 10) is None


def test_changes_are_taken_once_and_expiry_writes_tombstones() -> None:
    links = Links()
    links.add("anon:a", 1, "u1", 100.0)
    links.add("anon:b", 2, "u2", 100.0 + LINK_RETENTION)
    assert set(links.take_dirty()) == {"anon:a", "anon:b"}
    assert links.take_dirty() == {}
    assert links.expire(100.0 + LINK_RETENTION + 1) == ["anon:a"]
    assert links.user_at("anon:a", 10) is None
    assert links.user_at("anon:b", 10) == "u2"
    assert len(links) == 1
