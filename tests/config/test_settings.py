"""Settings from LEADLINE_* variables; bad values name the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leadline.config.settings import (
    DEFAULT_EMBEDDED_BROKER_PORT,
    Settings,
    SettingsError,
    load_settings,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("LEADLINE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env file from the working directory


def test_defaults() -> None:
    s = load_settings()
    assert isinstance(s, Settings)
    assert s.broker == "embedded"
    assert s.broker_url == f"kafka://127.0.0.1:{DEFAULT_EMBEDDED_BROKER_PORT}"
    assert s.topic == "product-events"
    assert s.dlq_topic == "product-events-dlq"
    assert s.web_port == 6066
    assert s.redis_url == "redis://127.0.0.1:6379/0"


def test_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADLINE_BROKER", "kafka://k1:9092,kafka://k2:9093")
    monkeypatch.setenv("LEADLINE_REDIS_URL", "rediss://cache.internal:6380/2")
    monkeypatch.setenv("LEADLINE_TOPIC", "events-in")
    monkeypatch.setenv("LEADLINE_WEB_PORT", "7070")
    monkeypatch.setenv("LEADLINE_APP_ID", "shop")
    monkeypatch.setenv("LEADLINE_PARTITIONS", "12")
    monkeypatch.setenv("LEADLINE_KAFKA_SASL_PASSWORD", "hunter2")
    s = load_settings()
    assert s.broker_url == "kafka://k1:9092,kafka://k2:9093"
    assert s.bootstrap_servers == ["k1:9092", "k2:9093"]
    assert s.redis_url == "rediss://cache.internal:6380/2"
    assert s.topic == "events-in"
    assert s.web_port == 7070
    assert s.partitions == 12
    assert s.by_user_topic == "shop-events-by-user"
    assert s.redis_prefix == "shop:v1"
    assert s.kafka_sasl_password is not None
    assert s.kafka_sasl_password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("broker", "url"),
    [("k1:9092", "kafka://k1:9092"), ("aiokafka://k1:9092", "kafka://k1:9092"),
     ("k1:9092,k2:9093", "kafka://k1:9092,kafka://k2:9093")],
)
def test_broker_forms(monkeypatch: pytest.MonkeyPatch, broker: str, url: str) -> None:
    monkeypatch.setenv("LEADLINE_BROKER", broker)
    assert load_settings().broker_url == url


def test_embedded_resolves_to_the_embedded_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADLINE_BROKER", "embedded")
    monkeypatch.setenv("LEADLINE_EMBEDDED_BROKER_PORT", "29092")
    s = load_settings()
    assert s.broker_url == "kafka://127.0.0.1:29092"
    assert s.bootstrap_servers == ["127.0.0.1:29092"]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LEADLINE_BROKER", "http://k1:9092"),
        ("LEADLINE_BROKER", "kafka://k1"),
        ("LEADLINE_BROKER", "kafka://:9092"),
        ("LEADLINE_BROKER", "kafka://k1:abc"),
        ("LEADLINE_BROKER", "kafka://k1:99999"),
        ("LEADLINE_BROKER", "kafka://k1:9092,"),
        ("LEADLINE_BROKER", ""),
        ("LEADLINE_REDIS_URL", "http://r:6379/0"),
        ("LEADLINE_REDIS_URL", "localhost:6379"),
        ("LEADLINE_REDIS_URL", "redis://"),
        ("LEADLINE_REDIS_URL", ""),
        ("LEADLINE_WEB_PORT", "abc"),
        ("LEADLINE_WEB_PORT", "0"),
        ("LEADLINE_WEB_PORT", "65536"),
        ("LEADLINE_WEB_PORT", "80.5"),
        ("LEADLINE_PARTITIONS", "0"),
        ("LEADLINE_LOG_LEVEL", "loud"),
        ("LEADLINE_EMBEDDED_BROKER_PORT", "-1"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert f"{variable}:" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_every_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADLINE_BROKER", "nope")
    monkeypatch.setenv("LEADLINE_WEB_PORT", "x")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "LEADLINE_BROKER:" in str(err.value)
    assert "LEADLINE_WEB_PORT:" in str(err.value)


def test_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = tmp_path / "leadline.env"
    env.write_text("LEADLINE_TOPIC=from-file\nLEADLINE_WEB_PORT=7001\n", encoding="utf-8")
    monkeypatch.setenv("LEADLINE_ENV_FILE", str(env))
    monkeypatch.setenv("LEADLINE_WEB_PORT", "7002")  # the environment wins over the file
    s = load_settings()
    assert s.topic == "from-file"
    assert s.web_port == 7002


def test_bad_value_in_env_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = tmp_path / "leadline.env"
    env.write_text("LEADLINE_REDIS_URL=mysql://db\n", encoding="utf-8")
    monkeypatch.setenv("LEADLINE_ENV_FILE", str(env))
    with pytest.raises(SettingsError, match="LEADLINE_REDIS_URL:"):
        load_settings()


def test_overrides() -> None:
    assert load_settings(web_port=9000).web_port == 9000
    with pytest.raises(SettingsError, match="LEADLINE_WEB_PORT:"):
        load_settings(web_port=0)


@pytest.mark.parametrize("value", ["redis://r:abc/0", "redis://r:99999/0"])
def test_bad_redis_port_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LEADLINE_REDIS_URL", value)
    with pytest.raises(SettingsError, match="LEADLINE_REDIS_URL:"):
        load_settings()
