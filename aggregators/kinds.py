"""Cell kinds and cell keys: the vocabulary the writer and the scrape-time readers share.

A cell is keyed by ``(kind, resolution, bucket start)``. :mod:`.partition` writes cells;
:mod:`.indicators` and ``serving/view.py`` read them. Both sides import the names from
here, so a reader never depends on the writer's code.
"""

from __future__ import annotations

from leadline.aggregators import activation, lifecycle, sessions, subscriptions, surveys
from leadline.aggregators.funnels import KIND_PREFIX as FUNNEL_PREFIX

#: (kind, resolution in seconds, bucket start in seconds).
CellKey = tuple[str, int, int]

# Distinct kinds hold HyperLogLogs per label, the others integer sums.
USERS = "users"            # distinct active users, by platform
CONVERTERS = "converters"  # distinct users with a conversion event, by platform
EVENTS = "events"          # valid events, by name
REVENUE = "revenue"        # purchase amounts in micro-units, by currency
SIGNUPS = "signups"        # distinct users with a signup event, by platform
REFUNDS = "refunds"        # refund amounts in micro-units, by currency
FEATURES = "features"      # distinct users of each configured feature
SURVEYS = surveys.KIND     # responses by survey and score
ACTIVATION = activation.KIND          # by first-signup bucket (aggregators/activation.py)
MRR_MOVES = subscriptions.MOVES       # by event bucket (aggregators/subscriptions.py)
SUBSCRIPTIONS = subscriptions.CURRENT  # unbucketed: the latest state of every user
SPEND = "spend"            # marketing spend in micro-units, by currency:channel
NEW_USERS = lifecycle.NEW             # the kinds of aggregators/lifecycle.py
LAST_SEEN = lifecycle.LAST
ACTIVITY_GAPS = lifecycle.GAPS
RETAINED = lifecycle.RETAINED
NEW_CUSTOMERS = lifecycle.CUSTOMERS
SESSIONS = sessions.SESSIONS          # by first-event bucket (aggregators/sessions.py)
SESSION_LENGTH = sessions.LENGTH
REQUESTS = "requests"      # performance events (label: event) and their errors (event:errors)
LATENCY = "latency"        # their duration_ms, DDSketch buckets (label: event:bucket)
CRASHERS = "crashers"      # distinct users with a crash event, by platform
DISTINCT_KINDS = frozenset({USERS, CONVERTERS, SIGNUPS, FEATURES, CRASHERS})
#: The resolution (and bucket start) of unbucketed cells: never expire, in no window.
CURRENT = 0


def spend_label(currency: str, channel: str) -> str:
    """The label of a ``spend`` cell."""
    return f"{currency}:{channel}"


def is_distinct(kind: str) -> bool:
    """True for kinds whose cell values are sketches of distinct users (funnel steps too)."""
    return kind in DISTINCT_KINDS or kind.startswith(FUNNEL_PREFIX)


def key_text(key: CellKey) -> str:
    """The key as text (Redis hash field, table key): ``kind/resolution/start``."""
    return f"{key[0]}/{key[1]}/{key[2]}"


def parse_key(text: str) -> CellKey:
    """The inverse of :func:`key_text`."""
    kind, res, start = text.split("/")
    return kind, int(res), int(start)
