"""Activation: of the users who signed up in a window, who had the "aha" event in time.

A user's signup time ``s`` is their *first* signup event by event time; a later
signup event does not move it, an earlier one (arriving late) does. The user is
*activated* if some activation event ``a`` has ``s <= a <= s + within``; the time to
activate is ``a* - s`` for the first such ``a*``. Activation before the signup does not
count, nor does one after ``s + within``. Both depend only on the set of events, so
arrival order never changes the answer.

Everything is counted in the bucket of ``s`` (cell kind ``activation``): ``signups``
(users whose first signup is there), ``activated``, ``tta_ms`` (sum of times to
activate, exact milliseconds) and ``tta:i`` (activated users whose time to activate
falls in histogram bucket i, see :data:`TTA_BOUNDS`). When a late event moves ``s`` or
changes ``a*``, the old contribution is subtracted and the new one added.

Remembered per user: ``[s, acts]`` where ``acts`` holds the activation times that can
still matter: before ``s`` (a late, earlier signup could make them count) and the first
one at or after ``s``; later ones never can, since ``s`` only ever moves earlier.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from typing import Any

from leadline.aggregators.users import Deltas

KIND = "activation"
SIGNUPS = "signups"
ACTIVATED = "activated"
TTA_SUM = "tta_ms"
#: Upper bounds (seconds, ``le``) of the time-to-activate histogram; +Inf is implied.
TTA_BOUNDS: tuple[int, ...] = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600,
                               86400, 2 * 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400)
_TTA_BOUNDS_MS = tuple(b * 1000 for b in TTA_BOUNDS)

Component = list[Any]  # [signup_ms | None, sorted activation ms]


def tta_label(tta_ms: int) -> str:
    """Histogram bucket label of a time to activate: ``tta:i`` (i = len(bounds) is +Inf)."""
    return f"tta:{bisect_left(_TTA_BOUNDS_MS, tta_ms)}"


class ActivationRule:
    """Folds signup and activation times into a user's component, emitting cell deltas."""

    def __init__(self, within_seconds: int) -> None:
        self.within_ms = within_seconds * 1000

    def contribution(self, comp: Component | None) -> tuple[int, dict[str, int]] | None:
        """(signup ms, labels) this user adds to the bucket of their signup, if signed up."""
        if comp is None or comp[0] is None:
            return None
        s, acts = comp
        labels = {SIGNUPS: 1}
        i = bisect_left(acts, s)
        if i < len(acts) and acts[i] - s <= self.within_ms:
            tta = acts[i] - s
            labels[ACTIVATED] = 1
            labels[TTA_SUM] = tta
            labels[tta_label(tta)] = 1
        return s, labels

    def apply(
        self, comp: Component | None, t: int, signup: bool, activation: bool, out: Deltas
    ) -> Component | None:
        """The component after an event at ``t`` (None if nothing changed); deltas to ``out``."""
        new = comp
        if activation:
            new = self._activation(new, t)
        if signup:
            new = self._signup(new, t)
        if new is comp:
            return None
        before, after = self.contribution(comp), self.contribution(new)
        if before is not None:
            for label, v in before[1].items():
                out.add(KIND, before[0], label, -v)
        if after is not None:
            for label, v in after[1].items():
                out.add(KIND, after[0], label, v)
        return new

    @staticmethod
    def _signup(comp: Component | None, t: int) -> Component | None:
        if comp is None:
            return [t, []]
        s, acts = comp
        if s is not None and s <= t:
            return comp  # not the first signup
        i = bisect_left(acts, t)
        return [t, acts[: i + 1]]  # activations after the new a* can never matter again

    @staticmethod
    def _activation(comp: Component | None, t: int) -> Component | None:
        if comp is None:
            return [None, [t]]
        s, acts = comp
        i = bisect_left(acts, t)
        if i < len(acts) and acts[i] == t:
            return comp
        if s is not None:
            first = bisect_left(acts, s)
            if first < len(acts) and t > acts[first]:
                return comp  # after the first activation since signup: irrelevant
        acts = list(acts)
        insort(acts, t)
        if s is not None and t >= s:
            del acts[bisect_left(acts, t) + 1:]
        return [s, acts]

    @staticmethod
    def prune(comp: Component, signup_cutoff: int, time_cutoff: int) -> Component | None:
        """Forget what no visible bucket can depend on; None drops the component.

        A first signup before ``signup_cutoff`` is forgotten with its activations (a
        signup event after that starts over); activations before ``time_cutoff`` could
        only pair with a signup in a bucket no window shows any more.
        """
        s, acts = comp
        if s is not None and s < signup_cutoff:
            return None
        kept = acts[bisect_left(acts, time_cutoff):]
        if s is None and not kept:
            return None
        return comp if len(kept) == len(acts) else [s, kept]
