"""``leadline_state_bytes`` against the allocators' own count of the memory in use.

``test_state_bytes.py`` compares each kind with tracemalloc, which counts the bytes
asked for. The soak (``reliability/soak.py``) subtracts the estimates from the RSS, which
holds what the allocators hand out: glibc's chunks and CPython's 16-byte blocks. Here the
demo traffic is folded as the worker folds it (decode, dedupe, fold, a checkpoint a
second) in a fresh interpreter, and the growth of the estimate is compared with the
growth of the memory in use that ``reliability/memprobe.py`` reads from the allocators
(glibc's heap in use and mapped blocks, CPython's blocks in use).

The fold takes its interpreter ~35 s of one core, so ``tests/aggregators/conftest.py``
starts it (:class:`Folding`) when the session starts, on the core the run leaves idle,
and the test reads its result.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[2]

FOLD = """
import gc, json, sys, time
from leadline.simulator.traffic import TrafficGenerator
from leadline.config.definitions import load_definitions
from leadline.config.settings import Settings
from leadline.events.decoder import Decoder
from leadline.events.model import Event
from reliability import memprobe
from leadline.streams.publish import partition_for
from leadline.streams.store import PartitionStore

RATE, SECONDS = 5000, {seconds}
definitions = load_definitions()
partitions = Settings().partitions
# The traffic first, compacted (the generator's messages keep orjson's 4 KiB buffers and
# its population grows), so that what grows below is the state alone.
generator, decoder = TrafficGenerator(7, definitions), Decoder(definitions)
start = time.time()
seconds = []
for s in range(SECONDS):
    by_partition = {{}}
    for _, value in generator.batch(start + s, RATE):
        event = decoder.decode(value, start + s)
        if isinstance(event, Event):  # not a Rejection, nor an ignored identify call
            p = partition_for(event.identity.encode(), partitions)
            by_partition.setdefault(p, []).append(bytes(memoryview(event.encode())))
    seconds.append(by_partition)
del generator
store = PartitionStore(definitions)
store.rebuild(set(range(partitions)))
offsets = dict.fromkeys(range(partitions), 0)


def fold(second):
    now = start + second
    for p, values in seconds[second].items():
        events = [Event.decode(v) for v in values]
        first = offsets[p]
        offsets[p] += len(events)
        seen = store.dedupers[p].check_batch(
            [e.event_id for e in events], range(first, offsets[p]), now)
        for offset, (event, duplicate) in enumerate(zip(events, seen), first):
            if not duplicate:
                store.states[p].fold(offset, event, now)
        store.take_changed(p)
    store.checkpoint(now)  # (the records it returns are the changelog's: dropped)


def measure():
    gc.collect()
    sample = memprobe.sample(time.monotonic())
    estimate = sum(d.nbytes() for d in store.dedupers.values()) + sum(
        sum(s.nbytes().values()) for s in store.states.values())
    return sample["in_use_mib"], estimate / 2**20


for second in range(SECONDS // 4):  # warm-up: live dicts, filters, cells of every kind
    fold(second)
before = measure()
for second in range(SECONDS // 4, SECONDS):
    fold(second)
after = measure()
print(json.dumps({{"before": before, "after": after}}))
"""


@dataclass
class Folding:
    """FOLD over 80 s of traffic in a fresh interpreter, its output in files."""

    proc: subprocess.Popen[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]

    @classmethod
    def start(cls) -> Folding:
        stdout, stderr = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-c", FOLD.format(root=str(ROOT), seconds=80)],
                                stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=ROOT)
        return cls(proc, stdout, stderr)

    def result(self) -> tuple[int, str, str]:
        """The exit status, stdout and stderr, once the fold is done."""
        returncode = self.proc.wait(timeout=280)  # under pytest's own 300 s
        self.stdout.seek(0)
        self.stderr.seek(0)
        return (returncode, self.stdout.read().decode(errors="replace"),
                self.stderr.read().decode(errors="replace"))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stdout.close()
        self.stderr.close()


@pytest.mark.slow  # a subprocess folding 80 s of traffic: ~35 s, started with the session
def test_the_estimate_grows_as_the_memory_in_use(folding: Folding) -> None:
    returncode, stdout, stderr = folding.result()
    assert returncode == 0, stderr
    result = json.loads(stdout)
    (in_use_before, estimate_before), (in_use_after, estimate_after) = (
        result["before"], result["after"])
    grown = estimate_after - estimate_before
    assert grown > 15  # MiB: 300,000 events: ids, users, sketches
    assert in_use_after - in_use_before == pytest.approx(grown, rel=0.05)
