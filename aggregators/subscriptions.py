"""Subscriptions: current MRR, its movements, and churn.

A user's subscription at any time is given by their latest subscription event at or
before it *by event time* (ties broken by ``event_id``): ``subscription_started`` and
``subscription_changed`` set it to (plan, currency, mrr), ``subscription_cancelled``
to none. So arrival order never matters: a late event is inserted where it belongs.

Every event is a transition from the state before it (by event time) to its own,
counted in the bucket of the event (cell kind ``mrr_moves``):

* none -> active: ``new:<cur>`` += mrr, ``starts`` += 1 (also a re-subscribe)
* active -> none: ``churn:<cur>`` += the mrr lost (the previous mrr), ``cancels`` += 1
* active -> active, same currency: ``expansion:<cur>`` or ``contraction:<cur>`` by the
  mrr difference (a plan change at the same mrr moves nothing)
* active -> active in another currency: ``contraction`` of the old mrr in the old
  currency and ``expansion`` of the new mrr in the new one (not churn: nobody left)
* none -> none (cancel without a subscription): nothing

A late event between two others replaces one transition by two: the deltas subtract
the old one. The latest state of every user is summed in the unbucketed cell
``subscriptions/0/0``: ``mrr:<cur>:<plan>``, ``active`` (users with a subscription) and
``active:<cur>`` (those paying in that currency).
Subscriptions active at a window's start are then ``active - starts + cancels`` over
the window, exactly, which gives the churn ratio without storing history.

Remembered per user: the events still in a visible bucket and the last one before
them (the state they start from); an active subscription is never forgotten.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from leadline.aggregators.users import Deltas

MOVES = "mrr_moves"
CURRENT = "subscriptions"
MOVEMENT_KINDS = ("new", "expansion", "contraction", "churn")
STARTS = "starts"
CANCELS = "cancels"
ACTIVE = "active"

Sub = list[Any]        # [ts_ms, event_id, currency | None (cancelled), plan label, mrr micros]
Component = list[Any]  # [floor: [ts_ms, event_id] | None, sorted subs]
State = tuple[str, str, int] | None  # (currency, plan label, mrr micros), None = no subscription


def _state(sub: Sub | None) -> State:
    if sub is None or sub[2] is None:
        return None
    return sub[2], sub[3], sub[4]


def mrr_label(currency: str, plan: str) -> str:
    return f"mrr:{currency}:{plan}"


def active_label(currency: str) -> str:
    """Active subscriptions in one currency (their average MRR gives the LTV)."""
    return f"{ACTIVE}:{currency}"


class SubscriptionRule:
    """Inserts subscription events into a user's history and emits the cell deltas."""

    def __init__(self, currency_label: Callable[[str], str]) -> None:
        self.currency_label = currency_label

    def transition(self, before: State, after: State) -> dict[str, int]:
        """Labels and amounts of ``mrr_moves`` for one change of state."""
        cur = self.currency_label
        if before is None:
            return {} if after is None else {f"new:{cur(after[0])}": after[2], STARTS: 1}
        if after is None:
            return {f"churn:{cur(before[0])}": before[2], CANCELS: 1}
        if before[0] != after[0]:
            return {f"contraction:{cur(before[0])}": before[2],
                    f"expansion:{cur(after[0])}": after[2]}
        diff = after[2] - before[2]
        if diff > 0:
            return {f"expansion:{cur(after[0])}": diff}
        if diff < 0:
            return {f"contraction:{cur(after[0])}": -diff}
        return {}

    def current(self, state: State) -> dict[str, int]:
        """This state's share of the unbucketed ``subscriptions`` cell."""
        if state is None:
            return {}
        currency = self.currency_label(state[0])
        return {mrr_label(currency, state[1]): state[2], ACTIVE: 1, active_label(currency): 1}

    def apply(self, comp: Component | None, sub: Sub, out: Deltas) -> Component | None:
        """The component after one event (None if nothing changed); deltas to ``out``."""
        floor, subs = comp if comp is not None else (None, [])
        key = [sub[0], sub[1]]
        if floor is not None and key < floor:
            return None  # older than the history kept: only invisible buckets depend on it
        keys = [s[:2] for s in subs]
        i = bisect_left(keys, key)
        if i < len(subs) and keys[i] == key:
            return None  # this very event again
        prev = _state(subs[i - 1]) if i > 0 else None
        mine = _state(sub)
        for label, v in self.transition(prev, mine).items():
            out.add(MOVES, sub[0], label, v)
        if i < len(subs):
            nxt = subs[i]
            for label, v in self.transition(prev, _state(nxt)).items():
                out.add(MOVES, nxt[0], label, -v)
            for label, v in self.transition(mine, _state(nxt)).items():
                out.add(MOVES, nxt[0], label, v)
        else:
            for label, v in self.current(prev).items():
                out.add_current(CURRENT, label, -v)
            for label, v in self.current(mine).items():
                out.add_current(CURRENT, label, v)
        return [floor, [*subs[:i], sub, *subs[i:]]]

    @staticmethod
    def prune(comp: Component, cutoff: int) -> Component | None:
        """Keep events from ``cutoff`` on and the last one before (their starting state).

        None drops the component: nothing after ``cutoff`` and no subscription now.
        """
        floor, subs = comp
        old = bisect_left([s[0] for s in subs], cutoff)
        if old <= 1:
            kept = subs
        else:
            kept = subs[old - 1:]
            floor = kept[0][:2]
        if len(kept) == 1 and kept[0][0] < cutoff and kept[0][2] is None:
            return None
        return comp if kept is subs else [floor, kept]
