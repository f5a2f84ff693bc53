"""Survey statistics from per-score counts."""

from __future__ import annotations

from leadline.aggregators import surveys


def test_nps_of_every_boundary_score() -> None:
    # 0 and 6 detract, 7 and 8 are passive, 9 and 10 promote
    by_score = {0: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 1}
    assert surveys.nps(by_score) == 0.0
    assert surveys.nps({9: 3, 10: 1}) == 100.0
    assert surveys.nps({0: 2, 6: 2}) == -100.0
    assert surveys.nps({7: 5, 8: 5}) == 0.0
    assert surveys.nps({10: 1, 6: 1, 8: 2}) == 0.0
    assert surveys.nps({10: 3, 0: 1}) == 50.0
    assert surveys.nps({}) == 0.0


def test_mean_and_responses() -> None:
    assert surveys.mean({1: 1, 5: 3}) == 4.0
    assert surveys.mean({}) == 0.0
    assert surveys.responses({1: 1, 5: 3}) == 4


def test_scores_pick_one_survey() -> None:
    counts = {"nps:9": 2, "nps:10": 1, "csat:4": 7, "npsx:1": 5}
    assert surveys.scores(counts, "nps") == {9: 2, 10: 1}
    assert surveys.scores(counts, "csat") == {4: 7}
    assert surveys.label("nps", 0) == "nps:0"
