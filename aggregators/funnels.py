"""Funnels: users who entered in a window and reached step k, in order, in time.

Definition (monotone in the set of events, so arrival order never matters): a user
*reached step k for an entry at time e* if they have events step_0 at e and step_1..k
at t_1..t_k with ``e <= t_1 <= ... <= t_k <= e + within``. A user counts for step k in
window W if some entry e with that reach lies in W (by the bucket of e). Repeated steps
are allowed (any of them may be used); an event outside ``e + within`` does not count
for entry e but may for a later entry.

The greedy chain (always the earliest next step at or after the previous one) reaches
the furthest, so reach(e) is computed exactly from the user's step times. A new event
can only raise the reach of entries in ``[t - within, t]``; the raise is registered in a
HyperLogLog per step in the bucket of each such entry (cell kind ``funnel:<name>``,
labels = step index). HyperLogLog registration is idempotent and reach only grows, so
the sketches equal those of the final event set.

Remembered per user and funnel: the sorted times of each step, for as long as an entry
they could serve is still in a visible bucket.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from leadline.aggregators.users import Deltas
from leadline.config.definitions import Funnel

KIND_PREFIX = "funnel:"

Times = list[list[int]]  # per step, sorted event times in ms


def kind_of(name: str) -> str:
    return KIND_PREFIX + name


class FunnelRule:
    """One configured funnel."""

    def __init__(self, name: str, funnel: Funnel) -> None:
        self.name = name
        self.kind = kind_of(name)
        self.steps = tuple(funnel.steps)
        self.within_ms = funnel.within_seconds * 1000

    def reach(self, times: Times, e: int) -> int:
        """Furthest step index reached in order from the entry at ``e`` (0 = entered)."""
        t, deadline, k = e, e + self.within_ms, 0
        for j in range(1, len(self.steps)):
            col = times[j]
            i = bisect_left(col, t)
            if i == len(col) or col[i] > deadline:
                break
            t, k = col[i], j
        return k

    def apply(self, times: Times | None, step: int, t: int, out: Deltas) -> Times | None:
        """Times after a step event at ``t`` (None if nothing changed); new reach to ``out``.

        Updates ``times`` in place (and returns it) when it changes.
        """
        if times is None or len(times) != len(self.steps):
            times = [[] for _ in self.steps]  # none yet, or the funnel's steps were redefined
        col = times[step]
        i = bisect_left(col, t)
        if i < len(col) and col[i] == t:
            return None  # a repeat at the same millisecond changes nothing
        entries = times[0]
        if step == 0:
            affected = [t]
            before = {t: -1}
        else:
            lo, hi = bisect_left(entries, t - self.within_ms), bisect_right(entries, t)
            affected = entries[lo:hi]
            before = {e: self.reach(times, e) for e in affected}
        col.insert(i, t)
        for e in affected:
            reached = self.reach(times, e)
            for k in range(before[e] + 1, reached + 1):
                out.mark(self.kind, e, str(k))
        return times

    @staticmethod
    def prune(times: Times, cutoff: int) -> Times | None:
        """Drop step times before ``cutoff`` (they only serve entries no window shows)."""
        kept = [c[bisect_left(c, cutoff):] for c in times]
        if not any(kept):
            return None
        return times if all(len(a) == len(b) for a, b in zip(kept, times, strict=True)) else kept
