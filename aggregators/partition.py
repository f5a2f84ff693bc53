"""The aggregated state of one partition: cells keyed by (kind, resolution, bucket start).

``fold`` applies one event in offset order; ``take_dirty`` hands over every cell
changed since the last call, encoded, so a batch writes each cell once.
Each event updates a given cell at most once (all of its labels of that cell in one
step), which is what lets a single offset stamp per cell decide "already applied".

Most kinds depend on the event alone. Lifecycle (every activity event), activation,
funnels and subscriptions join a user's events: their state (``aggregators/users.py``)
decides what the event adds, possibly to other buckets than the event's own, and is
handed over by ``take_dirty_users`` to be written *after* the cells (see
``streams/store.py``). Sessions join the events of one ``session_id`` the same way,
with records of their own (``aggregators/sessions.py``, ``take_dirty_sessions``).
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from leadline.aggregators import surveys
from leadline.aggregators.activation import ActivationRule
from leadline.aggregators.buckets import DAY
from leadline.aggregators.cells import Cell
from leadline.aggregators.funnels import FunnelRule
from leadline.aggregators.kinds import (
    CONVERTERS,
    CRASHERS,
    CURRENT,
    EVENTS,
    FEATURES,
    LATENCY,
    REFUNDS,
    REQUESTS,
    REVENUE,
    SIGNUPS,
    SPEND,
    SURVEYS,
    USERS,
    CellKey,
    spend_label,
)
from leadline.aggregators.labels import LabelSets
from leadline.aggregators.lifecycle import LifecycleRule, churn_seconds, plan_of
from leadline.aggregators.money import to_micros
from leadline.aggregators.quantiles import bucket_label
from leadline.aggregators.sessions import Record as SessionRecord
from leadline.aggregators.sessions import apply as apply_session
from leadline.aggregators.sessions import decode as decode_session
from leadline.aggregators.sessions import encode as encode_session
from leadline.aggregators.sessions import session_key
from leadline.aggregators.sketch import _Q, _RANK_MASK, HyperLogLog, hash64
from leadline.aggregators.subscriptions import SubscriptionRule
from leadline.aggregators.users import Deltas, UserState, to_ms
from leadline.config.definitions import Definitions
from leadline.events.model import Event

_CELL_KEY = 200                        # a key tuple (str, int, int) and its dict slot
_STR = sys.getsizeof("")               # an ASCII str's header
_BYTES = sys.getsizeof(b"")            # a bytes object's header


@dataclass(slots=True)
class _Role:
    """What an event name means (one name may mean several things)."""

    signup: bool = False
    activation: bool = False
    steps: list[tuple[FunnelRule, int]] = field(default_factory=list)
    subscription: str | None = None  # "active" (started/changed) or "cancel"
    refund: bool = False
    feature: bool = False
    survey: str | None = None
    customer: bool = False  # a first one makes a new customer (purchase, subscription start)
    performance: bool = False  # duration_ms, status, error (technical performance)
    crash: bool = False


def _roles(definitions: Definitions) -> dict[str, _Role]:
    e = definitions.events
    roles: dict[str, _Role] = defaultdict(_Role)
    roles[e.signup].signup = True
    roles[e.activation].activation = True
    for name, funnel in definitions.funnels.items():
        rule = FunnelRule(name, funnel)
        for i, step in enumerate(funnel.steps):
            roles[step].steps.append((rule, i))
    roles[e.subscription_started].subscription = "active"
    roles[e.subscription_changed].subscription = "active"
    roles[e.subscription_cancelled].subscription = "cancel"
    roles[e.purchase].customer = True
    roles[e.subscription_started].customer = True
    roles[e.refund].refund = True
    roles[e.feature].feature = True
    for name, survey in definitions.surveys.items():
        roles[survey.event].survey = name
    for name in definitions.performance.events:
        roles[name].performance = True
    roles[definitions.performance.crash].crash = True
    return dict(roles)


class PartitionState:
    """Cells and per-user state of one partition, plus what changed since the last flush."""

    def __init__(self, definitions: Definitions,
                 users: MutableMapping[str, bytes] | None = None,
                 sessions: MutableMapping[str, bytes] | None = None) -> None:
        self.plan = plan_of(definitions)
        self.labels = LabelSets(definitions)
        self._resolutions = [(r, self.plan.horizon(r)) for r in self.plan.resolutions]
        self._res_ms = [(r, r * 1000, h) for r, h in self._resolutions]
        self._conversion = definitions.events.conversion
        self._purchase = definitions.events.purchase
        self._roles = _roles(definitions)
        self._activation = ActivationRule(definitions.activation.within_seconds)
        self._subscriptions = SubscriptionRule(self.labels.currency)
        self._lifecycle = LifecycleRule(
            self.plan, churn_seconds(definitions), definitions.retention.days,
            definitions.retention.forget_after_seconds)
        self._spend = definitions.events.marketing_spend
        self._horizon_of = dict(self._resolutions)
        self.cells: dict[CellKey, Cell] = {}
        self._dirty: set[CellKey] = set()
        # identity -> encoded UserState (at rest: a dict, or the worker's local store,
        # state/local.py); the decoded ones changed since the last take_dirty_users
        self.users: MutableMapping[str, bytes] = {} if users is None else users
        self._decoded: dict[str, UserState] = {}
        self._dirty_users: set[str] = set()
        # session key -> encoded session record (aggregators/sessions.py), likewise
        self.sessions: MutableMapping[str, bytes] = {} if sessions is None else sessions
        self._sessions: dict[str, SessionRecord] = {}
        longest = max(self.plan.horizon(r) for r in self.plan.resolutions)
        #: Per-user times older than now - this (s) can only touch buckets no window shows.
        self.user_horizon = longest + DAY
        #: First signups are remembered this long (so a repeat signup is not a new one).
        self.signup_horizon = longest + definitions.activation.within_seconds + DAY

    def load(self, key: CellKey, data: bytes) -> None:
        """Restore a cell from its encoded form (changelog recovery)."""
        self.cells[key] = Cell.decode(data)

    def load_user(self, identity: str, data: bytes) -> None:
        """Restore a user's state from its encoded form (changelog recovery)."""
        self.users[identity] = data

    def load_session(self, key: str, data: bytes) -> None:
        """Restore a session's record (changelog recovery)."""
        self.sessions[key] = data

    def fold(self, offset: int, event: Event, now: float) -> None:
        """Apply one event (at ``offset`` of this partition) to every cell it touches."""
        if event.name == self._spend:
            self._fold_spend(offset, event, now)
            return
        h = hash64(event.identity)
        idx, rank = h >> _Q, _Q - (h & _RANK_MASK).bit_length() + 1
        platform = self.labels.platform(event.platform)
        name = self.labels.name(event.name)
        converts = event.name == self._conversion
        revenue = None
        if event.name == self._purchase and event.props:
            revenue = (self.labels.currency(event.props["currency"]),
                       to_micros(event.props["amount"]))
        role = self._roles.get(event.name)
        signup = False
        refund = feature = survey = latency = None
        crash = False
        if role is not None:
            props = event.props or {}
            signup = role.signup
            crash = role.crash
            if role.performance and "duration_ms" in props:
                failed = props.get("status", 0) >= 500 or props.get("error") is True
                latency = (name, f"{name}:{bucket_label(props['duration_ms'] / 1000)}",
                           {name: 1, f"{name}:errors": 1} if failed else {name: 1})
            if role.refund and "amount" in props and "currency" in props:
                refund = (self.labels.currency(props["currency"]), to_micros(props["amount"]))
            if role.feature and "feature" in props:
                feature = self.labels.feature(props["feature"])
            if role.survey is not None and "score" in props:
                survey = surveys.label(role.survey, props["score"])
        ts = event.ts
        for res, horizon in self._resolutions:
            start = int(ts // res) * res
            if start < now - horizon:
                continue  # no window reaches this bucket any more
            self._register(USERS, res, start, platform, offset, h, idx, rank)
            self._add(EVENTS, res, start, name, offset, 1)
            if converts:
                self._register(CONVERTERS, res, start, platform, offset, h, idx, rank)
            if revenue is not None:
                self._add(REVENUE, res, start, revenue[0], offset, revenue[1])
            if role is None:
                continue
            if signup:
                self._register(SIGNUPS, res, start, platform, offset, h, idx, rank)
            if refund is not None:
                self._add(REFUNDS, res, start, refund[0], offset, refund[1])
            if feature is not None:
                self._register(FEATURES, res, start, feature, offset, h, idx, rank)
            if survey is not None:
                self._add(SURVEYS, res, start, survey, offset, 1)
            if latency is not None:
                self._add(LATENCY, res, start, latency[1], offset, 1)
                self._add_all((REQUESTS, res, start), offset, latency[2])
            if crash:
                self._register(CRASHERS, res, start, platform, offset, h, idx, rank)
        self._fold_user(offset, event, role, platform, now, h, idx, rank)
        if event.session_id is not None:
            self._fold_session(offset, event, now, h, idx, rank)

    def _fold_spend(self, offset: int, event: Event, now: float) -> None:
        """Marketing spend: a sum by currency and channel; it makes no one active."""
        props = event.props or {}
        label = spend_label(self.labels.currency(props["currency"]),
                            self.labels.channel(props.get("channel")))
        micros = to_micros(props["amount"])
        name = self.labels.name(event.name)
        ts = event.ts
        for res, horizon in self._resolutions:
            start = int(ts // res) * res
            if start >= now - horizon:
                self._add(EVENTS, res, start, name, offset, 1)
                self._add(SPEND, res, start, label, offset, micros)

    def _fold_user(
        self, offset: int, event: Event, role: _Role | None, platform: str, now: float,
        h: int, idx: int, rank: int,
    ) -> None:
        identity = event.identity
        user = self._user(identity)
        if user is None:
            user = UserState()
        elif user.stamp >= offset:
            return  # replayed: the user's record was written after every cell it touched
        t = round(event.ts * 1000)  # users.to_ms, inlined: this runs per event
        out = Deltas()
        changed = False
        life = self._lifecycle.apply(user.life, t, platform,
                                     role is not None and role.customer, now, out)
        if life is not None:
            user.life, changed = life, True
        if role is not None and self._fold_roles(user, role, t, event, out):
            changed = True
        if not changed:
            return
        user.stamp = offset
        self._decoded[identity] = user
        self._dirty_users.add(identity)
        if out:
            self._apply(out, offset, now, h, idx, rank)

    def _fold_session(self, offset: int, event: Event, now: float, h: int, idx: int,
                      rank: int) -> None:
        key = session_key(event.identity, event.session_id or "")
        record = self._sessions.get(key)  # changed in this batch, else as stored
        if record is None:
            data = self.sessions.get(key)
            if data is not None:
                record = decode_session(data)
        if record is not None and record[0] >= offset:
            return  # replayed: the record was written after every cell the event touched
        out = Deltas()
        new = apply_session(record, round(event.ts * 1000), out)
        if new is None:
            return
        new[0] = offset
        self._sessions[key] = new
        self._apply(out, offset, now, h, idx, rank)

    def _fold_roles(self, user: UserState, role: _Role, t: int, event: Event,
                    out: Deltas) -> bool:
        """Activation, funnels and subscriptions: True if the user's state changed."""
        changed = False
        if role.signup or role.activation:
            comp = self._activation.apply(user.activation, t, role.signup, role.activation, out)
            if comp is not None:
                user.activation, changed = comp, True
        for rule, step in role.steps:
            funnels = user.funnels or {}
            times = rule.apply(funnels.get(rule.name), step, t, out)
            if times is not None:
                funnels[rule.name] = times
                user.funnels, changed = funnels, True
        if role.subscription is not None:
            props = event.props or {}
            if role.subscription == "cancel":
                sub = [t, event.event_id, None, None, 0]
            elif {"currency", "plan", "mrr"} <= props.keys():
                sub = [t, event.event_id, props["currency"], self.labels.plan(props["plan"]),
                       to_micros(props["mrr"])]
            else:
                sub = None
            if sub is not None:
                comp = self._subscriptions.apply(user.subs, sub, out)
                if comp is not None:
                    user.subs, changed = comp, True
        return changed

    def _user(self, identity: str) -> UserState | None:
        user = self._decoded.get(identity)
        if user is None:
            data = self.users.get(identity)
            if data is None:
                return None
            user = self._decoded[identity] = UserState.decode(data)
        return user

    def _apply(self, out: Deltas, offset: int, now: float, h: int, idx: int,
               rank: int) -> None:
        """Place a user's deltas in the buckets of every resolution; each cell once."""
        for kind, old, new, label in out.moves:
            # Most events of a known user only move their last-seen time to the next 15 s
            # bucket: two cells of the finest resolution, no dict merging.
            for res, res_ms, horizon in self._res_ms:
                start = new // res_ms * res
                if old is not None:
                    before = old // res_ms * res
                    if before == start:
                        break  # the same bucket here and at every coarser one (they nest)
                    if before >= now - horizon:
                        self._add_all((kind, res, before), offset, {label: -1})
                if start >= now - horizon:
                    self._add_all((kind, res, start), offset, {label: 1})
        if not (out.sums or out.marks or out.cells or out.current):
            return
        if len(out.sums) == 1 and not out.current and not out.marks and not out.cells:
            # The common case (a signup, a subscription change at the end): one event
            # time, so one cell per resolution and nothing to merge.
            (kind, t), labels = next(iter(out.sums.items()))
            for res, res_ms, horizon in self._res_ms:
                start = t // res_ms * res
                if start >= now - horizon:
                    self._add_all((kind, res, start), offset, labels)
            return
        if len(out.marks) == 1 and not out.sums and not out.current and not out.cells:
            (kind, t), names = next(iter(out.marks.items()))  # e.g. a funnel entry
            for res, res_ms, horizon in self._res_ms:
                start = t // res_ms * res
                if start >= now - horizon:
                    self._register_all((kind, res, start), offset, names, h, idx, rank)
            return
        sums: dict[CellKey, dict[str, int]] = {}
        for (kind, t), labels in out.sums.items():
            for res, res_ms, horizon in self._res_ms:
                start = t // res_ms * res
                if start >= now - horizon:
                    key = (kind, res, start)
                    acc = sums.get(key)
                    if acc is None:
                        sums[key] = dict(labels)
                    else:
                        for label, v in labels.items():
                            acc[label] = acc.get(label, 0) + v
        for key, labels in out.cells.items():
            if key[2] >= now - self._horizon_of[key[1]]:
                acc = sums.get(key)
                if acc is None:
                    sums[key] = dict(labels)
                else:
                    for label, v in labels.items():
                        acc[label] = acc.get(label, 0) + v
        for kind, labels in out.current.items():
            sums[(kind, CURRENT, CURRENT)] = labels
        for key, deltas in sums.items():
            self._add_all(key, offset, deltas)
        if not out.marks:
            return
        marks: dict[CellKey, set[str]] = {}
        for (kind, t), names in out.marks.items():
            for res, res_ms, horizon in self._res_ms:
                start = t // res_ms * res
                if start >= now - horizon:
                    key = (kind, res, start)
                    got = marks.get(key)
                    marks[key] = names if got is None else got | names
        for key, names in marks.items():
            self._register_all(key, offset, names, h, idx, rank)

    def _add_all(self, key: CellKey, offset: int, deltas: dict[str, int]) -> None:
        if not any(deltas.values()):
            return
        cell = self._cell(key, offset)
        if cell is None:
            return
        values = cell.values
        for label, v in deltas.items():
            total = values.get(label, 0) + v
            if total:
                values[label] = total
            else:
                values.pop(label, None)

    def _register_all(
        self, key: CellKey, offset: int, names: set[str], h: int, idx: int, rank: int
    ) -> None:
        cell = self._cell(key, offset)
        if cell is None:
            return
        values = cell.values
        for label in names:
            hll = values.get(label)
            if hll is None:
                hll = values[label] = HyperLogLog()
            hll.add_hashed(h, idx, rank)

    def _cell(self, key: CellKey, offset: int) -> Cell | None:
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = Cell()
        elif cell.offset >= offset:
            return None  # replayed event, already inside this cell
        cell.offset = offset
        self._dirty.add(key)
        return cell

    def _add(self, kind: str, res: int, start: int, label: str, offset: int, amount: int) -> None:
        cell = self._cell((kind, res, start), offset)
        if cell is not None:
            cell.values[label] = cell.values.get(label, 0) + amount

    def _register(
        self, kind: str, res: int, start: int, label: str, offset: int, h: int, idx: int,
        rank: int,
    ) -> None:
        cell = self._cell((kind, res, start), offset)
        if cell is not None:
            hll = cell.values.get(label)
            if hll is None:
                hll = cell.values[label] = HyperLogLog()
            hll.add_hashed(h, idx, rank)

    def take_dirty(self) -> dict[CellKey, tuple[int, bytes]]:
        """Cells changed since the last call: key -> (offset stamp, encoded cell)."""
        out = {}
        for key in self._dirty:
            cell = self.cells[key]
            out[key] = (cell.offset, cell.encode())
        self._dirty.clear()
        return out

    def take_dirty_users(self) -> dict[str, tuple[int, bytes]]:
        """Users changed since the last call: identity -> (offset stamp, encoded state).

        Must be written after the cells of the same :meth:`take_dirty`.
        """
        out = {}
        records = {}
        for identity in self._dirty_users:
            user = self._decoded[identity]
            data = records[identity] = user.encode()
            out[identity] = (user.stamp, data)
        self.users.update(records)  # one write batch in the local store
        self._dirty_users.clear()
        self._decoded.clear()
        return out

    def take_dirty_sessions(self) -> dict[str, tuple[int, bytes]]:
        """Sessions changed since the last call: key -> (offset stamp, encoded record).

        Must be written after the cells of the same :meth:`take_dirty`.
        """
        out = {key: (record[0], encode_session(record))
               for key, record in self._sessions.items()}
        self.sessions.update({key: data for key, (_, data) in out.items()})
        self._sessions.clear()
        return out

    def prune_sessions(self, now: float) -> list[str]:
        """Forget sessions whose last event is older than any per-user time kept (a
        late event for one of those can only touch buckets no window shows, unless the
        session lasted more than a day). Sessions not yet taken are left for later."""
        cutoff = to_ms(now - self.user_horizon)
        gone = [key for key, data in self.sessions.items()
                if key not in self._sessions and decode_session(data)[2] < cutoff]
        for key in gone:
            del self.sessions[key]
        return gone

    def prune_users(self, now: float) -> dict[str, bytes | None]:
        """Forget per-user times no visible bucket can depend on any more.

        Returns identity -> new encoded state (stamp unchanged), or None when the user
        has nothing left. Users with changes not yet taken are left for the next call.
        """
        time_cutoff = to_ms(now - self.user_horizon)
        signup_cutoff = to_ms(now - self.signup_horizon)
        out: dict[str, bytes | None] = {}
        for identity, data in self.users.items():
            if identity in self._dirty_users:
                continue
            user = UserState.decode(data)
            changed = False
            if user.activation is not None:
                act = ActivationRule.prune(user.activation, signup_cutoff, time_cutoff)
                changed |= act is not user.activation
                user.activation = act
            if user.funnels:
                funnels = {}
                for name, times in user.funnels.items():
                    kept = FunnelRule.prune(times, time_cutoff)
                    changed |= kept is not times
                    if kept is not None:
                        funnels[name] = kept
                user.funnels = funnels or None
            if user.subs is not None:
                subs = SubscriptionRule.prune(user.subs, time_cutoff)
                changed |= subs is not user.subs
                user.subs = subs
            if user.life is not None:
                life = self._lifecycle.prune(user.life, now)
                changed |= life is not user.life
                user.life = life
            if changed:
                out[identity] = None if user.is_empty() else user.encode()
        for identity, new in out.items():
            self._decoded.pop(identity, None)
            if new is None:
                del self.users[identity]
        self.users.update({i: new for i, new in out.items() if new is not None})
        return out

    def expired(self, now: float) -> list[CellKey]:
        """Remove and return the cells no window can reach any more."""
        gone = [k for k in self.cells
                if k[1] != CURRENT and self.plan.is_expired(k[1], k[2], now)]
        for key in gone:
            del self.cells[key]
            self._dirty.discard(key)
        return gone

    def nbytes(self) -> dict[str, int]:
        """Memory held by the cells and by the users at rest (an estimate from object
        sizes; the per-batch decoded users are left out). Users in the worker's local
        store take no heap: the store reports its own memory (``state/local.py``)."""
        cells = sys.getsizeof(self.cells) + len(self.cells) * _CELL_KEY + sum(
            cell.nbytes() for cell in self.cells.values())
        held = 0
        for records in (self.users, self.sessions):
            if isinstance(records, dict) and records:
                # keys (ASCII: header + 1 byte a character), records, the dict
                keys = len(records) * _STR + sum(map(len, records))
                values = len(records) * _BYTES + sum(map(len, records.values()))
                held += sys.getsizeof(records) + keys + values
        return {"cells": cells, "users": held}

    def encoded(self) -> dict[CellKey, tuple[int, bytes]]:
        """Every cell as (offset stamp, encoded cell), to rebuild the serving view."""
        return {key: (cell.offset, cell.encode()) for key, cell in self.cells.items()}

