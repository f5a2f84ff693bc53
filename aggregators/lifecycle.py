"""Lifecycle: who is new, who comes back, who stays and who leaves (SPEC 3b), exactly.

Every user with an activity event (any valid event but marketing spend) has a
component, and each of its parts is counted in cells as sums of 1 per user, so every
count is exact and merges across partitions by addition:

* ``new_users``: 1 in the bucket of the user's *first-seen* time, labelled with the
  platform of that event. First seen = the least (time, platform label) over the
  user's activity: order independent, and a late earlier event moves it.
* ``last_seen``: 1 in the bucket of the user's latest activity. Users active in a
  window are exactly those whose latest activity is in it, so returning users =
  last-seen users of the window - its new users.
* ``activity_gaps`` (at the resolution of each churn window only): 1 in every bucket
  the user is active in, labelled with the number of buckets since their previous
  active bucket (capped at :attr:`LifecycleRule.caps`). The users active in a run of
  buckets ``[a, e)`` are those with a bucket ``c`` there whose gap exceeds ``c - a``
  (their first one in the run), so any run's distinct users is a sum: churn needs
  the window, the one before it and their union.
* ``retained`` (daily buckets): 1 in the bucket of the user's first-seen day D per
  retention day N with activity on day D + N. The cohort is ``new_users`` of that day.
* ``new_customers``: 1 in the bucket of the user's first conversion (a purchase or
  a subscription start).

When an event changes a part, the old contribution is subtracted and the new one
added, like ``aggregators/activation.py``. Remembered per user:
``[first_ms, first_platform, last, conversion_ms, spans]`` where ``last`` is the
latest activity in ms floored to the finest resolution (so it changes at most once
per finest bucket) and ``spans`` maps a resolution (text) to the sorted bucket
numbers (time // resolution) the user was active in: the visible ones and the one
before them (which the gap of the first visible one is measured from). The rest is
kept until ``forget_after`` after the last activity.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from typing import Any

from leadline.aggregators.buckets import DAY, WindowPlan, resolution_for
from leadline.aggregators.users import Deltas
from leadline.config.definitions import Definitions

NEW = "new_users"
LAST = "last_seen"
GAPS = "activity_gaps"
RETAINED = "retained"
CUSTOMERS = "new_customers"
#: The single label of the ``last_seen`` and ``new_customers`` cells.
USERS = "users"

Component = list[Any]  # [first_ms, first_platform, last_ms, conversion_ms | None, spans]


def plan_for(window_seconds: Mapping[str, int], churn_windows: Iterable[int],
             retention_days: Iterable[int]) -> WindowPlan:
    """The window plan with the reach lifecycle needs: twice each churn window at its
    resolution, and the cohort day of the longest retention day in daily buckets."""
    reach: dict[int, int] = {}
    for w in churn_windows:
        res = resolution_for(w)
        reach[res] = max(reach.get(res, 0), 2 * w)
    days = list(retention_days)
    if days:
        reach[DAY] = max(reach.get(DAY, 0), (max(days) + 2) * DAY)
    return WindowPlan(window_seconds, reach)


def churn_seconds(definitions: Definitions) -> list[int]:
    return [definitions.window_seconds[w] for w in definitions.churn_windows]


def plan_of(definitions: Definitions) -> WindowPlan:
    """The window plan of these definitions: every cell writer and reader uses it."""
    return plan_for(definitions.window_seconds, churn_seconds(definitions),
                    definitions.retention.days)


def gap_caps(churn_windows: Iterable[int]) -> dict[int, int]:
    """Resolution -> the gap label cap of ``activity_gaps``: above the length (in
    buckets) of any run a reader counts (a window and the one before it, plus a bucket
    of events slightly in the future)."""
    caps: dict[int, int] = {}
    for w in churn_windows:
        res = resolution_for(w)
        caps[res] = max(caps.get(res, 0), 2 * w // res + 2)
    return caps


def users_in_run(gaps: Mapping[int, Mapping[str, int]], first: int,
                 end: int | None = None) -> int:
    """Distinct users active in bucket numbers ``first`` .. ``end`` - 1 (no end: on), from
    the ``activity_gaps`` cells of one resolution (bucket number -> gap label -> users):
    each such user is counted in their first active bucket of the run."""
    total = 0
    for c, labels in gaps.items():
        if c >= first and (end is None or c < end):
            total += sum(n for gap, n in labels.items() if int(gap) > c - first)
    return total


class LifecycleRule:
    """Folds activity into a user's lifecycle component, emitting cell deltas."""

    def __init__(self, plan: WindowPlan, churn_windows: Iterable[int],
                 retention_days: Iterable[int], forget_after: int) -> None:
        self.finest_ms = plan.resolutions[0] * 1000
        self._horizon = {r: plan.horizon(r) for r in plan.resolutions}
        #: resolution -> gap cap, for the resolutions of churn windows
        self.caps = gap_caps(churn_windows)
        self.days = tuple(sorted(retention_days))
        #: The resolutions whose active buckets are remembered (text keys: JSON).
        self.spans = tuple(sorted(set(self.caps) | ({DAY} if self.days else set())))
        self._keys = tuple(str(r) for r in self.spans)
        self.forget_after_ms = forget_after * 1000

    def apply(self, comp: Component | None, t: int, platform: str, converts: bool,
              now: float, out: Deltas) -> Component | None:
        """The component after an activity event at ``t`` ms (None if nothing changed)."""
        first: int | None
        first_platform: str
        if comp is None:
            first = last = conv = None
            spans: dict[str, list[int]] = {}
            first_platform = ""
        else:
            first, first_platform, last, conv, spans = comp
        changed = False
        floor = t // self.finest_ms * self.finest_ms
        if last is None or floor > last:
            out.move(LAST, last, floor, USERS)  # its only updates (Deltas.moves)
            last, changed = floor, True
        if converts and (conv is None or t < conv):
            if conv is not None:
                out.add(CUSTOMERS, conv, USERS, -1)
            out.add(CUSTOMERS, t, USERS, 1)
            conv, changed = t, True
        t_s = t // 1000
        for res, key in zip(self.spans, self._keys, strict=True):
            b = t_s // res
            buckets = spans.get(key)
            if buckets is None:
                buckets = []
            i = bisect_left(buckets, b)
            if i < len(buckets) and buckets[i] == b:
                continue
            if b < self._kept_from(res, now):
                continue  # before anything a visible bucket depends on
            cap = self.caps.get(res)
            if cap is not None:
                prev = buckets[i - 1] if i else None
                out.add_cell(GAPS, res, b * res, self._gap(b, prev, cap), 1)
                if i < len(buckets):
                    n = buckets[i]
                    out.add_cell(GAPS, res, n * res, self._gap(n, prev, cap), -1)
                    out.add_cell(GAPS, res, n * res, self._gap(n, b, cap), 1)
            if res == DAY and first is not None:
                n_days = b - first // (DAY * 1000)
                if n_days in self.days:
                    out.add_cell(RETAINED, DAY, (b - n_days) * DAY, str(n_days), 1)
            spans = {**spans, key: [*buckets[:i], b, *buckets[i:]]}
            changed = True
        if first is None or (t, platform) < (first, first_platform):
            if first is not None:
                out.add(NEW, first, first_platform, -1)
                self._retained(first, spans, -1, out)
            out.add(NEW, t, platform, 1)
            self._retained(t, spans, 1, out)
            first, first_platform, changed = t, platform, True
        return [first, first_platform, last, conv, spans] if changed else None

    def _retained(self, first: int, spans: Mapping[str, list[int]], sign: int,
                  out: Deltas) -> None:
        """Add (sign 1) or take back (-1) the ``retained`` cells of a first-seen time."""
        if not self.days:
            return
        day = first // (DAY * 1000)
        active = spans.get(str(DAY), ())
        for n in self.days:
            i = bisect_left(active, day + n)
            if i < len(active) and active[i] == day + n:
                out.add_cell(RETAINED, DAY, day * DAY, str(n), sign)

    @staticmethod
    def _gap(b: int, prev: int | None, cap: int) -> str:
        return str(cap if prev is None else min(b - prev, cap))

    def _visible_from(self, res: int, now: float) -> int:
        """The oldest bucket number of ``res`` a cell may still be written in (or one less)."""
        return int((now - self._horizon[res]) // res)

    def _kept_from(self, res: int, now: float) -> int:
        """The oldest bucket number of ``res`` that a visible cell can depend on: a gap
        of a visible bucket reaches back at most its cap."""
        return self._visible_from(res, now) - self.caps.get(res, 0)

    def prune(self, comp: Component, now: float) -> Component | None:
        """Forget active buckets no visible cell depends on; None forgets the user
        (no activity for ``forget_after``: a later event makes them new again)."""
        first, first_platform, last, conv, spans = comp
        if last < now * 1000 - self.forget_after_ms:
            return None
        kept = {}
        for res, key in zip(self.spans, self._keys, strict=True):
            buckets = spans.get(key)
            if buckets:
                # Visible buckets, and the one before them: the only one their gaps and a
                # late event's can still be measured from.
                cut = bisect_left(buckets, self._visible_from(res, now))
                kept[key] = buckets[max(cut - 1, 0):]
        if kept == spans:
            return comp
        return [first, first_platform, last, conv, kept]
