"""The ``leadline`` command: clear one-line errors, and ``send`` publishing lines unchanged."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from leadline.embedded.services import free_port
from leadline.state.local import USERS, LocalStore
from tests.support.worker import ROOT

pytestmark = pytest.mark.slow  # each case runs `leadline` as a process: ~1 s


def leadline(*args: str, env: dict[str, str], stdin: bytes | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LEADLINE_")}
    base["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "leadline.cli", *args],
        env=base | env, input=stdin, capture_output=True, timeout=timeout,
    )


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"LEADLINE_WEB_PORT": "abc"}, "LEADLINE_WEB_PORT"),
        ({"LEADLINE_BROKER": "http://nowhere"}, "LEADLINE_BROKER"),
        ({"LEADLINE_REDIS_URL": "mysql://x"}, "LEADLINE_REDIS_URL"),
        ({"LEADLINE_PARTITIONS": "0"}, "LEADLINE_PARTITIONS"),
    ],
)
def test_bad_settings_exit_2_naming_the_variable(env: dict[str, str], needle: str) -> None:
    result = leadline("worker", env=env)
    assert result.returncode == 2
    err = result.stderr.decode()
    assert needle in err
    assert "Traceback" not in err


def test_unreachable_redis_exits_3_saying_where(broker) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    result = leadline("worker", env={"LEADLINE_BROKER": f"kafka://127.0.0.1:{broker.port}",
                                     "LEADLINE_REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    assert result.returncode == 3
    err = result.stderr.decode()
    assert f"cannot reach Redis at redis://127.0.0.1:{port}/0" in err
    assert "Traceback" not in err


def test_unreachable_broker_exits_3_saying_where(redis_server) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    result = leadline("worker", env={"LEADLINE_BROKER": f"kafka://127.0.0.1:{port}",
                                     "LEADLINE_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0"})
    assert result.returncode == 3
    err = result.stderr.decode()
    assert f"cannot reach the Kafka broker at 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_send_publishes_every_line_unchanged_keyed_by_user(broker) -> None:  # type: ignore[no-untyped-def]
    topic = f"send-{uuid.uuid4().hex[:8]}"
    lines = [b'{"event_id":"1","name":"signup","user_id":"u-1","timestamp":1}',
             b'{"messageId":"2","event":"signup","anonymousId":"a-2","timestamp":1}',
             b"{not json"]
    result = leadline("send", "-", "--topic", topic, stdin=b"\n".join(lines) + b"\n\n",
                      env={"LEADLINE_BROKER": f"kafka://127.0.0.1:{broker.port}"})
    assert result.returncode == 0, result.stderr.decode()
    assert b"sent 3 events" in result.stderr

    async def read() -> list[tuple[bytes | None, bytes]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=f"127.0.0.1:{broker.port}",
                                    auto_offset_reset="earliest")
        await consumer.start()
        got: list[tuple[bytes | None, bytes]] = []
        try:
            for _ in range(20):
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    got += [(r.key, r.value) for r in records]
                if len(got) >= 3:
                    break
        finally:
            await consumer.stop()
        return got

    got = sorted(asyncio.run(read()), key=lambda kv: kv[1])
    assert got == sorted([(b"u-1", lines[0]), (b"a-2", lines[1]), (None, lines[2])],
                         key=lambda kv: kv[1])


def test_check_config_points_at_the_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "defs.yaml"
    bad.write_text("windows: [5m, 1h]\nlabels:\n  platform: [web, all]\n")
    result = leadline("check-config", str(bad), env={})
    assert result.returncode == 2
    assert f"{bad}:3: labels.platform: 'all' is reserved" in result.stderr.decode()
    ok = leadline("check-config", env={})
    assert ok.returncode == 0 and b"OK" in ok.stdout


def test_a_second_worker_on_a_held_data_dir_exits_2_and_empties_nothing(  # type: ignore[no-untyped-def]
        broker, redis_server, tmp_path) -> None:
    """Two workers given one LEADLINE_DATA_DIR: the second one stops at start, before it
    touches the first one's local store (here the lock is held by this test)."""
    data = tmp_path / "worker"
    held = LocalStore(data / "state", 8 << 20)
    users = held.records(USERS, 0)
    users.update({"u": b"kept"})
    try:
        result = leadline("worker", env={
            "LEADLINE_BROKER": f"kafka://127.0.0.1:{broker.port}",
            "LEADLINE_REDIS_URL": f"redis://127.0.0.1:{redis_server.port}/0",
            "LEADLINE_DATA_DIR": str(data), "LEADLINE_WEB_PORT": str(free_port()),
            "LEADLINE_APP_ID": f"held-{uuid.uuid4().hex[:6]}"})
        assert result.returncode == 2
        err = result.stderr.decode()
        assert f"{data / 'state'} is in use by another process" in err
        assert "Traceback" not in err
        assert dict(users.items()) == {"u": b"kept"}
    finally:
        held.close()
