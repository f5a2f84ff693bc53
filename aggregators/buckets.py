"""Event-time buckets and the trailing windows built from them.

Every event is folded into one bucket per *resolution*. A window of length W, at
wall-clock time ``now``, is the union of the buckets of its resolution g whose start
is ``>= now - W``. So it counts every event of age <= W - g and none of age > W
(SPEC section 3), with g <= W/12 for windows up to a day and g <= 1 day beyond.
Buckets are aligned to the Unix epoch (daily buckets start at 00:00 UTC), so every
worker and partition agrees on them and they merge by key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

DAY = 86400
LADDER: tuple[int, ...] = (1, 5, 15, 60, 300, 900, 3600, 7200, 21600, DAY)


def resolution_for(window: int) -> int:
    """The coarsest ladder step g allowed for a window of ``window`` seconds."""
    bound = window / 12 if window <= DAY else DAY
    fitting = [g for g in LADDER if g <= bound]
    if not fitting:
        raise ValueError(f"a window of {window}s is too short: the minimum is 12s")
    return fitting[-1]


def bucket_start(ts: float, resolution: int) -> int:
    """Start of the bucket of ``resolution`` seconds holding event time ``ts``."""
    return int(ts // resolution) * resolution


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """Which resolution serves which window, and how long buckets are kept.

    ``reach``: resolution -> how far back (s) its buckets must stay readable beyond the
    windows themselves (churn compares a window with the one before it, retention reads
    the day of a cohort; ``aggregators/lifecycle.py``). A resolution only there is kept too.
    """

    windows: Mapping[str, int]
    reach: Mapping[int, int] = field(default_factory=dict)

    @property
    def resolution_of(self) -> dict[str, int]:
        return {label: resolution_for(w) for label, w in self.windows.items()}

    @property
    def resolutions(self) -> tuple[int, ...]:
        """Distinct resolutions in use, finest first."""
        return tuple(sorted(set(self.resolution_of.values()) | set(self.reach)))

    @property
    def longest(self) -> int:
        return max(self.windows.values())

    def horizon(self, resolution: int) -> int:
        """How far back a bucket of this resolution can still be read."""
        longest = max((w for label, w in self.windows.items()
                       if self.resolution_of[label] == resolution), default=0)
        return max(longest, self.reach.get(resolution, 0)) + resolution

    def is_expired(self, resolution: int, start: int, now: float) -> bool:
        """True once no window can include this bucket again."""
        return start < now - self.horizon(resolution)


def in_window(starts: Iterable[int], window: int, now: float) -> list[int]:
    """The bucket starts (of the window's resolution) that make up the window at ``now``."""
    edge = now - window
    return [s for s in starts if s >= edge]
