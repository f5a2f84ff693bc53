"""Sessions: counted in the bucket of their first event, with their length (SPEC 3b).

A session is a user's ``session_id`` (the same id of two users is two sessions). Its
first and last time are the least and greatest time of its events, so arrival order
never matters and a late event can only extend it. Cell kinds, in the bucket of the
session's first event: ``sessions`` (1 per session, label ``n``) and ``session_length``
(1 per session in the DDSketch bucket of last - first, ``aggregators/quantiles.py``).
When an event moves the first or the last time, the old contribution is subtracted and
the new one added.

A session's record is ``[stamp, first_ms, last_ms]``, kept apart from the user's (a
user may have hundreds of sessions in a month, and the user's record is rewritten on
each of their events) under :func:`session_key`. Its own stamp decides, on replay, what
its events already did: records are written after the cells of their batch.
"""

from __future__ import annotations

from typing import Any

import orjson

from leadline.aggregators.quantiles import bucket_label
from leadline.aggregators.users import Deltas

SESSIONS = "sessions"
LENGTH = "session_length"
ONE = "n"

Record = list[Any]  # [stamp, first_ms, last_ms]


def session_key(identity: str, session_id: str) -> str:
    """One text per (identity, session id), unambiguous whatever either holds."""
    return orjson.dumps([identity, session_id]).decode()


def encode(record: Record) -> bytes:
    # Copied out of orjson's 4 KiB output buffer, which a kept record would hold whole
    # (as aggregators/users.py explains; tests/aggregators/test_state_footprint.py).
    return bytes(memoryview(orjson.dumps(record)))


def decode(data: bytes) -> Record:
    record: Record = orjson.loads(data)
    return record


def apply(record: Record | None, t: int, out: Deltas) -> Record | None:
    """The session's times after an event at ``t`` ms (None if unchanged); deltas to out.

    The returned record keeps the old stamp: the caller stamps it."""
    if record is None:
        out.add(SESSIONS, t, ONE, 1)
        out.add(LENGTH, t, bucket_label(0.0), 1)
        return [-1, t, t]
    stamp, first, last = record
    new_first, new_last = min(first, t), max(last, t)
    if (new_first, new_last) == (first, last):
        return None
    out.add(SESSIONS, first, ONE, -1)
    out.add(LENGTH, first, bucket_label((last - first) / 1000), -1)
    out.add(SESSIONS, new_first, ONE, 1)
    out.add(LENGTH, new_first, bucket_label((new_last - new_first) / 1000), 1)
    return [stamp, new_first, new_last]
