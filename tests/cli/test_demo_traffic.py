"""`leadline demo-traffic`: history first, then live traffic (a fake producer, no broker)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from leadline.cli.main import build_parser
from leadline.cli.traffic import Backfill, run_traffic, send_backfill
from leadline.config import load_definitions
from leadline.config.settings import load_settings
from leadline.events.decoder import Decoder
from leadline.events.model import Event
from leadline.events.rejection import Rejection
from leadline.simulator.traffic import TrafficGenerator


class FakeBatch:
    """Enough of aiokafka's BatchBuilder: full after ``size`` records."""

    def __init__(self, size: int = 700) -> None:
        self.records: list[tuple[bytes, bytes]] = []
        self.size = size

    def append(self, *, key: bytes, value: bytes, timestamp: float | None) -> object | None:
        if len(self.records) >= self.size:
            return None
        self.records.append((key, value))
        return object()


class FakeProducer:
    """Enough of aiokafka's producer: records what is sent (one by one or in batches, to
    3 partitions), acknowledges at once."""

    sent: list[tuple[bytes, bytes]]

    def __init__(self, **kwargs: Any) -> None:
        self.sent = []
        self.batches: list[tuple[int, FakeBatch]] = []
        FakeProducer.last = self

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *,
                         partition: int) -> asyncio.Future[None]:
        assert partition in (0, 1, 2) and batch.records
        self.batches.append((partition, batch))
        self.sent.extend(batch.records)
        return self._done()

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append((key, value))
        return self._done()

    @staticmethod
    def _done() -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


FakeProducer.last = FakeProducer()


@pytest.mark.parametrize("command", ["demo", "demo-traffic"])
def test_backfill_days_flag(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    assert parser.parse_args([command]).backfill_days == 30
    assert parser.parse_args([command, "--backfill-days", "0"]).backfill_days == 0
    assert parser.parse_args([command, "--backfill-days", "7"]).backfill_days == 7
    for bad in ("31", "-1", "x"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--backfill-days", bad])
        assert "0..30" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    assert "--backfill-days N" in capsys.readouterr().out


def test_history_is_sent_first_then_live_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", FakeProducer)
    backfill = Backfill(2)
    code = asyncio.run(run_traffic(load_settings(), rate=200.0, seed=7, duration=1.0,
                                   quiet=True, backfill=backfill))
    assert code == 0 and backfill.done
    sent = FakeProducer.last.sent
    assert 3000 < backfill.events < len(sent)
    now = time.time()
    decoder = Decoder(load_definitions())
    history = [decoder.decode(v, now) for _, v in sent[:backfill.events]]
    live = [decoder.decode(v, now) for _, v in sent[backfill.events:]]
    assert not any(isinstance(r, Rejection) for r in history)
    times = [r.ts for r in history if isinstance(r, Event)]
    assert 1.9 * 86400 < now - min(times) < 2 * 86400
    # Live traffic starts where the history ends (a few of its events are minutes late).
    live_times = sorted(r.ts for r in live if isinstance(r, Event))
    assert live_times[len(live_times) // 2] > max(times)


def test_backfill_off_sends_only_live_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiokafka

    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", FakeProducer)
    backfill = Backfill(0)
    code = asyncio.run(run_traffic(load_settings(), rate=200.0, seed=7, duration=0.5,
                                   quiet=True, backfill=backfill))
    assert code == 0 and backfill.events == 0
    now = time.time()
    decoder = Decoder(load_definitions())
    times = [r.ts for _, v in FakeProducer.last.sent
             if isinstance(r := decoder.decode(v, now), Event)]
    assert times and min(times) > now - 3600  # (late live events: up to 20 minutes)


def test_a_stop_during_the_backfill_ends_it() -> None:
    async def main() -> tuple[bool, Backfill]:
        stop = asyncio.Event()
        stop.set()
        backfill = Backfill(30)
        done = await send_backfill(FakeProducer(), "t", TrafficGenerator(7), backfill, stop,
                                   quiet=True)
        return done, backfill

    done, backfill = asyncio.run(main())
    assert not done and not backfill.done
    assert backfill.events < 20_000  # stopped after its first chunks, not 100k events
    assert "so far" in backfill.summary()


def test_history_goes_in_batches_each_key_to_its_partition() -> None:
    """A key's messages go to the partition aiokafka's default partitioner picks for it
    (as one ``send`` each would), in the order of the history."""
    from aiokafka.partitioner import DefaultPartitioner

    producer = FakeProducer()
    backfill = Backfill(1)
    assert asyncio.run(send_backfill(producer, "t", TrafficGenerator(7, load_definitions()),
                                     backfill, quiet=True))
    assert backfill.events == len(producer.sent) > 1000
    full = [len(batch.records) for _, batch in producer.batches]
    assert max(full) == FakeBatch().size and len(producer.batches) > 3  # full ones went on
    decoder = Decoder(load_definitions())
    for partition, batch in producer.batches:
        for key, _ in batch.records:
            assert DefaultPartitioner()(key, [0, 1, 2], [0, 1, 2]) == partition
    by_partition: dict[int, list[float]] = {}
    for partition, batch in producer.batches:
        by_partition.setdefault(partition, []).extend(
            r.ts for _, v in batch.records
            if isinstance(r := decoder.decode(v, time.time()), Event))
    for times in by_partition.values():
        assert all(b > a - 0.002 for a, b in itertools.pairwise(times))
