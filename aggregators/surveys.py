"""Survey answers: counted per score, so every survey statistic is exact.

Cell kind ``surveys`` holds, per bucket, the number of responses with each score as
label ``<survey>:<score>`` (scores are validated into the survey's configured range,
so labels stay bounded). From those counts:

* responses = their sum;
* NPS (survey ``nps``, 0..10) = % promoters (9-10) - % detractors (0-6), -100..100;
* CSAT (survey ``csat``) = mean score.

Empty windows give 0 for all three.
"""

from __future__ import annotations

from collections.abc import Mapping

KIND = "surveys"
NPS = "nps"
CSAT = "csat"


def label(survey: str, score: int) -> str:
    return f"{survey}:{score}"


def scores(counts: Mapping[str, int], survey: str) -> dict[int, int]:
    """Score -> responses of one survey, from a window's summed labels."""
    prefix = f"{survey}:"
    return {int(k[len(prefix):]): v for k, v in counts.items() if k.startswith(prefix)}


def responses(by_score: Mapping[int, int]) -> int:
    return sum(by_score.values())


def nps(by_score: Mapping[int, int]) -> float:
    n = responses(by_score)
    if n == 0:
        return 0.0
    promoters = sum(v for s, v in by_score.items() if s >= 9)
    detractors = sum(v for s, v in by_score.items() if s <= 6)
    return 100.0 * (promoters - detractors) / n


def mean(by_score: Mapping[int, int]) -> float:
    n = responses(by_score)
    return sum(s * v for s, v in by_score.items()) / n if n else 0.0
