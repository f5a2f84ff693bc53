"""The product gauges of SPEC section 3, computed from cells at one instant ``now``.

Input is every cell of every partition (in any order, duplicates of a key across
partitions allowed); output is plain samples, so the Prometheus side stays thin.
Every series of the configured label sets is always present (zeros when there is no
data), and ratios with a zero denominator are 0, never NaN, so alert expressions stay
simple; only CAC, LTV and net revenue retention have no sample while they are undefined
(SPEC 3b). Distinct counts of section 3 are unions of sketches, never sums; the user
counts of section 3b are sums of exact per-user cells (``aggregators/lifecycle.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from leadline.aggregators import activation, subscriptions, surveys
from leadline.aggregators.buckets import DAY
from leadline.aggregators.cells import Cell
from leadline.aggregators.funnels import kind_of
from leadline.aggregators.kinds import (
    ACTIVATION,
    ACTIVITY_GAPS,
    CONVERTERS,
    CRASHERS,
    CURRENT,
    EVENTS,
    FEATURES,
    LAST_SEEN,
    LATENCY,
    MRR_MOVES,
    NEW_CUSTOMERS,
    NEW_USERS,
    REFUNDS,
    REQUESTS,
    RETAINED,
    REVENUE,
    SESSION_LENGTH,
    SESSIONS,
    SIGNUPS,
    SPEND,
    SUBSCRIPTIONS,
    SURVEYS,
    USERS,
    CellKey,
    is_distinct,
    spend_label,
)
from leadline.aggregators.labels import ALL, OTHER, LabelSets
from leadline.aggregators.lifecycle import USERS as ONE_LABEL
from leadline.aggregators.lifecycle import plan_of, users_in_run
from leadline.aggregators.money import MICROS
from leadline.aggregators.quantiles import quantiles
from leadline.aggregators.sessions import ONE as ONE_SESSION
from leadline.aggregators.sketch import HyperLogLog, union
from leadline.config.definitions import Definitions

Labels = tuple[tuple[str, str], ...]

TIME_TO_ACTIVATE = "product_time_to_activate_seconds"
#: The quantile label values of SPEC 3b.
SESSION_QUANTILES = (0.5, 0.9, 0.99)
RESPONSE_QUANTILES = (0.5, 0.95, 0.99)
#: Histogram families: samples ``<name>_bucket`` (with ``le``), ``<name>_sum``, ``<name>_count``.
HISTOGRAMS = frozenset({TIME_TO_ACTIVATE})


@dataclass(frozen=True, slots=True)
class Sample:
    metric: str
    labels: Labels
    value: float


def _major(micros: int) -> float:
    try:
        return micros / MICROS
    except OverflowError:  # beyond a float (sums of 1e308 amounts): say so, don't crash
        return float("inf")


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


class Indicators:
    """Turns cells into samples for the configured windows and label sets."""

    def __init__(self, definitions: Definitions) -> None:
        self.plan = plan_of(definitions)
        self.labels = LabelSets(definitions)
        self.platforms = (*self.labels.platforms, OTHER)
        self.currencies = (*self.labels.currencies, OTHER)
        self.plans = (*self.labels.plans, OTHER)
        self.names = (*sorted(self.labels.names), OTHER)
        self.conversion = definitions.events.conversion
        self.session = self.labels.name(definitions.events.session)
        self.features = self.labels.features
        self.funnels = {name: (kind_of(name), tuple(f.steps))
                        for name, f in definitions.funnels.items()}
        self.surveys = tuple(definitions.surveys)
        self.longest = max(self.plan.windows, key=lambda w: self.plan.windows[w])
        self.channels = (*self.labels.channels, OTHER)
        self.retention_days = tuple(definitions.retention.days)
        self.churn_windows = tuple(definitions.churn_windows)
        self.nrr_windows = tuple(definitions.revenue_retention_windows)
        #: The subscription churn the LTV divides by: 30d, else the longest window.
        self.ltv_window = "30d" if "30d" in self.plan.windows else self.longest
        self.performance_events = tuple(definitions.performance.events)

    def compute(self, cells: Iterable[tuple[CellKey, Cell]], now: float) -> list[Sample]:
        sketches: dict[tuple[str, str, str], list[HyperLogLog]] = defaultdict(list)
        sums: dict[tuple[str, str, str], int] = defaultdict(int)
        current: dict[tuple[str, str], int] = defaultdict(int)
        windows = self.plan.windows
        res_of = self.plan.resolution_of
        # Cells read by bucket, not by window: activity gaps (resolution -> bucket number
        # -> gap -> users) and daily cohorts ((kind, day start) -> label -> users).
        gaps: dict[int, dict[int, dict[str, int]]] = defaultdict(dict)
        daily: dict[tuple[str, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for (kind, res, start), cell in cells:
            if res == CURRENT:
                for label, amount in cell.values.items():
                    current[(kind, label)] += amount
                continue
            if kind == ACTIVITY_GAPS:
                bucket = gaps[res].setdefault(start // res, defaultdict(int))
                for label, amount in cell.values.items():
                    bucket[label] += amount
                continue
            if res == DAY and kind in (RETAINED, NEW_USERS):
                cohort = daily[(kind, start)]
                for label, amount in cell.values.items():
                    cohort[label] += amount
                if kind == RETAINED:
                    continue
            distinct = is_distinct(kind)
            for window, length in windows.items():
                if res_of[window] != res or start < now - length:
                    continue
                if distinct:
                    for label, hll in cell.values.items():
                        sketches[(kind, window, label)].append(hll)
                else:
                    for label, amount in cell.values.items():
                        sums[(kind, window, label)] += amount

        def count(kind: str, window: str, labels: Iterable[str]) -> float:
            return union([h for label in labels for h in sketches.get((kind, window, label), [])
                          ]).count()

        out: list[Sample] = []
        emit = out.append
        active_all: dict[str, float] = {}
        for window in windows:
            w = ("window", window)
            per_kind: dict[str, dict[str, float]] = {}
            for kind in (USERS, CONVERTERS, SIGNUPS, CRASHERS):
                merged = {p: union(sketches.get((kind, window, p), [])) for p in self.platforms}
                counts = {p: h.count() for p, h in merged.items()}
                counts[ALL] = union(list(merged.values())).count()
                per_kind[kind] = counts
            active_all[window] = per_kind[USERS][ALL]
            for p in (*self.platforms, ALL):
                active = per_kind[USERS][p]
                emit(Sample("product_active_users", (w, ("platform", p)), round(active)))
                emit(Sample("product_conversion_ratio", (w, ("platform", p)),
                            _ratio(round(per_kind[CONVERTERS][p]), round(active))))
                emit(Sample("product_signups", (w, ("platform", p)),
                            round(per_kind[SIGNUPS][p])))
                emit(Sample("product_crash_free_users_ratio", (w, ("platform", p)),
                            1 - _ratio(round(per_kind[CRASHERS][p]), round(active))))
            for name in self.names:
                emit(Sample("product_events", (w, ("name", name)),
                            sums.get((EVENTS, window, name), 0)))
            emit(Sample("product_conversions", (w,),
                        sums.get((EVENTS, window, self.conversion), 0)))
            emit(Sample("product_sessions_per_user", (w,),
                        _ratio(sums.get((EVENTS, window, self.session), 0),
                               round(active_all[window]))))
            for currency in self.currencies:
                revenue = _major(sums.get((REVENUE, window, currency), 0))
                emit(Sample("product_revenue", (w, ("currency", currency)), revenue))
                emit(Sample("product_arpu", (w, ("currency", currency)),
                            _ratio(revenue, round(active_all[window]))))
                emit(Sample("product_refunds", (w, ("currency", currency)),
                            _major(sums.get((REFUNDS, window, currency), 0))))
            out += self._activation(window, sums)
            out += self._funnels(window, count)
            out += self._subscriptions(window, sums, current)
            out += self._surveys(window, sums)
            for feature in self.features:
                emit(Sample("product_feature_users", (("feature", feature), w),
                            round(count(FEATURES, window, [feature]))))
        if "24h" in windows and "30d" in windows:
            users = {s.labels: s.value for s in out if s.metric == "product_active_users"}
            for p in (*self.platforms, ALL):
                day = users[(("window", "24h"), ("platform", p))]
                month = users[(("window", "30d"), ("platform", p))]
                emit(Sample("product_stickiness_ratio", (("platform", p),), _ratio(day, month)))
        out += self._time_to_activate(sums)
        out += self._performance(sums)
        out += self._lifecycle(sums, current, gaps, daily, now,
                               {s.labels: s.value for s in out
                                if s.metric == "product_subscription_churn_ratio"})
        for currency in self.currencies:
            for plan in self.plans:
                micros = current.get((SUBSCRIPTIONS, subscriptions.mrr_label(currency, plan)), 0)
                emit(Sample("product_mrr", (("currency", currency), ("plan", plan)),
                            _major(micros)))
        return out

    def _activation(self, window: str, sums: dict[tuple[str, str, str], int]) -> list[Sample]:
        signed = sums.get((ACTIVATION, window, activation.SIGNUPS), 0)
        activated = sums.get((ACTIVATION, window, activation.ACTIVATED), 0)
        return [Sample("product_activation_ratio", (("window", window),),
                       _ratio(activated, signed))]

    def _time_to_activate(self, sums: dict[tuple[str, str, str], int]) -> list[Sample]:
        """Histogram of signup -> first activation, over the signups of the longest window."""
        window = self.longest
        out, cumulative = [], 0
        bounds = (*activation.TTA_BOUNDS, float("inf"))
        for i, bound in enumerate(bounds):
            cumulative += sums.get((ACTIVATION, window, f"tta:{i}"), 0)
            out.append(Sample(f"{TIME_TO_ACTIVATE}_bucket", (("le", _le(bound)),), cumulative))
        out.append(Sample(f"{TIME_TO_ACTIVATE}_sum", (),
                          sums.get((ACTIVATION, window, activation.TTA_SUM), 0) / 1000))
        out.append(Sample(f"{TIME_TO_ACTIVATE}_count", (), cumulative))
        return out

    def _funnels(
        self, window: str, count: Callable[[str, str, list[str]], float]
    ) -> list[Sample]:
        out = []
        for name, (kind, steps) in self.funnels.items():
            first = 0
            for i, step in enumerate(steps):
                users = round(count(kind, window, [str(i)]))
                if i == 0:
                    first = users
                labels = (("funnel", name), ("step", step), ("window", window))
                out.append(Sample("product_funnel_users", labels, users))
                out.append(Sample("product_funnel_conversion_ratio", labels,
                                  _ratio(users, first)))
        return out

    def _subscriptions(
        self, window: str, sums: dict[tuple[str, str, str], int],
        current: dict[tuple[str, str], int],
    ) -> list[Sample]:
        out = []
        for kind in subscriptions.MOVEMENT_KINDS:
            for currency in self.currencies:
                micros = sums.get((MRR_MOVES, window, f"{kind}:{currency}"), 0)
                out.append(Sample("product_mrr_movement",
                                  (("kind", kind), ("window", window), ("currency", currency)),
                                  _major(micros)))
        cancels = sums.get((MRR_MOVES, window, subscriptions.CANCELS), 0)
        starts = sums.get((MRR_MOVES, window, subscriptions.STARTS), 0)
        active_now = current.get((SUBSCRIPTIONS, subscriptions.ACTIVE), 0)
        at_start = active_now - starts + cancels
        out.append(Sample("product_subscription_churn_ratio", (("window", window),),
                          _ratio(cancels, at_start)))
        return out

    def _surveys(self, window: str, sums: dict[tuple[str, str, str], int]) -> list[Sample]:
        counts = {label: v for (kind, win, label), v in sums.items()
                  if kind == SURVEYS and win == window}
        out = []
        for survey in self.surveys:
            out.append(Sample("product_survey_responses", (("window", window), ("survey", survey)),
                              surveys.responses(surveys.scores(counts, survey))))
        out.append(Sample("product_nps", (("window", window),),
                          surveys.nps(surveys.scores(counts, surveys.NPS))))
        out.append(Sample("product_csat", (("window", window),),
                          surveys.mean(surveys.scores(counts, surveys.CSAT))))
        return out

    def _lifecycle(
        self, sums: dict[tuple[str, str, str], int], current: dict[tuple[str, str], int],
        gaps: dict[int, dict[int, dict[str, int]]],
        daily: dict[tuple[str, int], dict[str, int]], now: float,
        churn: dict[Labels, float],
    ) -> list[Sample]:
        """SPEC 3b: new and returning users, retention, user churn, customers, spend,
        CAC, LTV and net revenue retention. Every user count is a sum of exact cells."""
        out: list[Sample] = []
        emit = out.append
        windows = self.plan.windows
        mrr_now = {c: sum(current.get((SUBSCRIPTIONS, subscriptions.mrr_label(c, p)), 0)
                          for p in self.plans) for c in self.currencies}
        for window in windows:
            w = ("window", window)
            new = {p: sums.get((NEW_USERS, window, p), 0) for p in self.platforms}
            new_all = sum(new.values())
            for p in self.platforms:
                emit(Sample("product_new_users", (w, ("platform", p)), new[p]))
            emit(Sample("product_new_users", (w, ("platform", ALL)), new_all))
            active = sums.get((LAST_SEEN, window, ONE_LABEL), 0)
            emit(Sample("product_returning_users", (w,), active - new_all))
            customers = sums.get((NEW_CUSTOMERS, window, ONE_LABEL), 0)
            emit(Sample("product_new_customers", (w,), customers))
            for currency in self.currencies:
                spent = 0
                for channel in self.channels:
                    micros = sums.get((SPEND, window, spend_label(currency, channel)), 0)
                    spent += micros
                    emit(Sample("product_marketing_spend",
                                (w, ("currency", currency), ("channel", channel)),
                                _major(micros)))
                if customers:  # no sample without a new customer (SPEC 3b)
                    emit(Sample("product_cac", (w, ("currency", currency)),
                                _major(spent) / customers))
        for window in self.churn_windows:
            length = windows[window]
            res = self.plan.resolution_of[window]
            runs = gaps.get(res, {})
            here = -(-(now - length) // res)       # first bucket of the window
            before = -(-(now - 2 * length) // res)  # first bucket of the one before
            both = users_in_run(runs, int(before))
            current_users = users_in_run(runs, int(here))
            previous = users_in_run(runs, int(before), int(here))
            emit(Sample("product_user_churn_ratio", (("window", window),),
                        _ratio(both - current_users, previous)))
        today = int(now // DAY)
        for n in self.retention_days:
            start = (today - n - 1) * DAY
            cohort = sum(daily.get((NEW_USERS, start), {}).values())
            retained = daily.get((RETAINED, start), {}).get(str(n), 0)
            emit(Sample("product_retention_cohort_users", (("day", str(n)),), cohort))
            emit(Sample("product_retention_ratio", (("day", str(n)),),
                        _ratio(retained, cohort)))
        subscription_churn = churn.get((("window", self.ltv_window),), 0.0)
        for currency in self.currencies:
            subscribed = current.get((SUBSCRIPTIONS, subscriptions.active_label(currency)), 0)
            if subscribed and subscription_churn > 0:  # no sample otherwise (SPEC 3b)
                emit(Sample("product_ltv", (("currency", currency),),
                            _major(mrr_now[currency]) / subscribed / subscription_churn))
        for window in self.nrr_windows:
            for currency in self.currencies:
                moves = {kind: sums.get((MRR_MOVES, window, f"{kind}:{currency}"), 0)
                         for kind in subscriptions.MOVEMENT_KINDS}
                change = moves["expansion"] - moves["contraction"] - moves["churn"]
                at_start = mrr_now[currency] - moves["new"] - change
                if at_start > 0:  # no sample without MRR at the window's start
                    emit(Sample("product_net_revenue_retention_ratio",
                                (("window", window), ("currency", currency)),
                                1 + change / at_start))
        return out

    def _performance(self, sums: dict[tuple[str, str, str], int]) -> list[Sample]:
        """SPEC 3b: sessions and their length, response times and error ratios. A
        quantile has no sample while its window has no value."""
        buckets: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
        for (kind, window, label), n in sums.items():
            if kind == SESSION_LENGTH:
                buckets[(kind, window, "")][label] = n
            elif kind == LATENCY:
                event, bucket = label.rsplit(":", 1)
                buckets[(kind, window, event)][bucket] = n
        out: list[Sample] = []
        emit = out.append
        for window in self.plan.windows:
            w = ("window", window)
            emit(Sample("product_sessions", (w,), sums.get((SESSIONS, window, ONE_SESSION), 0)))
            lengths = quantiles(buckets.get((SESSION_LENGTH, window, ""), {}), SESSION_QUANTILES)
            for q, v in (lengths or {}).items():
                emit(Sample("product_session_duration_seconds", (w, ("quantile", str(q))), v))
            for event in self.performance_events:
                e = ("event", event)
                times = quantiles(buckets.get((LATENCY, window, event), {}), RESPONSE_QUANTILES)
                for q, v in (times or {}).items():
                    emit(Sample("product_response_time_seconds", (w, e, ("quantile", str(q))), v))
                emit(Sample("product_request_error_ratio", (w, e),
                            _ratio(sums.get((REQUESTS, window, f"{event}:errors"), 0),
                                   sums.get((REQUESTS, window, event), 0))))
        return out
