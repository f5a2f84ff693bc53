"""Per-user state stays small: the figure docs/metrics.md gives, as a regression test.

Run as a script for the documented measurement over 100,000 users:
``python -m tests.aggregators.test_user_memory 100000``.
"""

from __future__ import annotations

import random
import sys
import time
import tracemalloc

from leadline.aggregators import users as users_module
from leadline.aggregators.partition import PartitionState
from leadline.config.definitions import load_definitions
from leadline.events.model import Event

D = load_definitions()
NOW = time.time()


def typical_user(i: int, rng: random.Random) -> list[Event]:
    """Signup, activation, three checkout steps; one in five also subscribes."""
    u = f"user-{i:08d}"
    t = NOW - rng.uniform(0, 29 * 86400)
    out = [Event(f"{u}-s", u, t, "signup", "web"),
           Event(f"{u}-a", u, t + rng.uniform(10, 3600), "activation", "web")]
    for j, name in enumerate(("product_viewed", "cart_added", "checkout_started")):
        out.append(Event(f"{u}-f{j}", u, t + 100 + j * 60, name, "web"))
    if i % 5 == 0:
        out.append(Event(f"{u}-sub", u, t + 200, "subscription_started", "web",
                         props={"plan": "pro", "mrr": 39.0, "currency": "USD"}))
    return out


def measure(users: int) -> tuple[float, float, float, float]:
    """(bytes per user in PartitionState.users, + the Faust table's key and slot,
    mean encoded record size, live memory the encoded records really hold per user)."""
    rng = random.Random(1)
    state = PartitionState(D)
    offset = 0
    tracemalloc.start()
    try:
        for start in range(0, users, 1000):
            for i in range(start, min(start + 1000, users)):
                for ev in typical_user(i, rng):
                    state.fold(offset, ev, NOW)
                    offset += 1
            state.take_dirty()
            state.take_dirty_users()
        # What the records occupy, allocator's view: a serializer that hands back an
        # over-sized buffer (orjson's 4 KiB) shows here, not in len() or sys.getsizeof.
        held = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(True, users_module.__file__)])
        records = sum(stat.size for stat in held.statistics("filename"))
        base = tracemalloc.get_traced_memory()[0]
        # an equal copy: the identity strings, record bytes, dict
        copy = {("x" + k)[1:]: bytes(bytearray(v)) for k, v in state.users.items()}
        own = tracemalloc.get_traced_memory()[0] - base
        table = {f"0|u|{k}".encode(): v for k, v in copy.items()}  # Faust's copy of the keys
        with_table = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(state.users) == users and len(table) == users
    record = sum(len(v) for v in state.users.values()) / users
    return own / users, with_table / users, record, records / users


def test_a_tracked_user_costs_a_few_hundred_bytes() -> None:
    own, with_table, record, held = measure(5_000)
    # ~185 B: the lifecycle part (first and last seen, active days) is ~75 B of it
    assert record < 220
    assert held < record + 64  # the records as allocated: no serializer slack kept
    assert own < 360
    assert with_table < 450


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    own, with_table, record, held = measure(n)
    print(f"{n} users: {own:.0f} B/user in PartitionState.users, {with_table:.0f} B/user with "
          f"the table's keys; encoded record {record:.0f} B, {held:.0f} B as allocated")
