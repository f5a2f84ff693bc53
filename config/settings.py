"""Every runtime setting of leadline, in one place.

Values come from ``LEADLINE_*`` environment variables, then from an optional
``.env``-style file named by ``LEADLINE_ENV_FILE``. A bad value fails at start-up
with an error that names the variable, never later inside a worker.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import (
    ByteSize,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadline.config.definitions import parse_duration

EMBEDDED = "embedded"
DEFAULT_EMBEDDED_BROKER_PORT = 19092
DEFAULT_EMBEDDED_REDIS_PORT = 16379


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    """Runtime settings. Field ``foo`` is read from ``LEADLINE_FOO``."""

    model_config = SettingsConfigDict(env_prefix="LEADLINE_", extra="ignore", frozen=True)

    broker: str = Field(
        default=EMBEDDED,
        description="`kafka://host:port[,host:port]`, or `embedded` for the bundled broker "
        "on 127.0.0.1:LEADLINE_EMBEDDED_BROKER_PORT.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis holding the shared serving view (`redis://` or `rediss://`).",
    )
    topic: str = Field(default="product-events", description="Topic the product events arrive on.")
    dlq_topic: str = Field(
        default="product-events-dlq", description="Topic rejected events are written to."
    )
    app_id: str = Field(
        default="leadline",
        description="Consumer group and prefix of internal topics and Redis keys: workers "
        "with the same id share the work. Changing it starts from empty state.",
    )
    partitions: int = Field(
        default=4, ge=1, le=256,
        description="Partitions of the internal topics (by-user events, state changelog); "
        "the most workers that can share the work.",
    )
    web_host: str = Field(default="127.0.0.1", description="Address `/metrics` binds to.")
    web_port: int = Field(default=6066, ge=1, le=65535, description="Port of `/metrics`.")
    definitions: Path | None = Field(
        default=None,
        description="YAML file of metric definitions (events, funnels, windows, labels); "
        "default: the bundled `config/leadline.yaml`.",
    )
    data_dir: Path = Field(
        default=Path("var/worker"),
        description="This worker's own directory: Faust's data, the local state store "
        "(`state/`, per-user records and a snapshot of each owned partition, kept across "
        "restarts) and past hours' event ids (`ids/`, emptied at every start).",
    )
    dedupe_horizon: str = Field(
        default="24h",
        description="A repeated `event_id` within this long counts once (SPEC: 24h). "
        "Shorter only to let a soak reach steady state in minutes: ids are kept this long "
        "plus one generation (an hour; a twelfth of a horizon under 12h, at least a minute).",
    )
    memory_budget: ByteSize = Field(
        default=ByteSize(512 * 1024**2), ge=64 * 1024**2,
        description="RAM budget of the worker's state, a size such as `512MiB` or `2GiB`. "
        "A quarter is the local store's cache (its RAM does not grow with the users it "
        "holds); see docs/performance.md for what the rest holds.",
    )
    embedded_broker_port: int = Field(default=DEFAULT_EMBEDDED_BROKER_PORT, ge=1, le=65535)
    embedded_redis_port: int = Field(default=DEFAULT_EMBEDDED_REDIS_PORT, ge=1, le=65535)
    session_timeout: float = Field(
        default=10.0, gt=0,
        description="Kafka group session timeout, seconds: how long a dead worker's "
        "partitions wait before moving.",
    )
    standby_replicas: int = Field(
        default=0, ge=0, le=1,
        description="1: every worker also keeps a warm copy of other workers' partitions, "
        "read from the changelog as it is written, so a failover reads only its tail.",
    )
    batch_max: int = Field(default=10_000, ge=1, description="Most events folded per batch.")
    batch_seconds: float = Field(
        default=0.1, gt=0, le=5,
        description="Longest a fetch waits for more records, seconds (the Kafka consumer's "
        "fetch.max.wait): lower is fresher, higher sends fewer empty fetches when idle.",
    )
    commit_interval: float = Field(
        default=1.0, gt=0, description="Seconds between consumer offset commits, each after "
        "a checkpoint of the table (streams/checkpoint.py)."
    )
    scrape_cache_seconds: float = Field(
        default=0.5, ge=0,
        description="A `/metrics` answer is reused for this long, so bursts of scrapes cost "
        "one Redis read.",
    )
    publish_interval: float = Field(
        default=2.0, gt=0,
        description="Seconds between checks that the Redis view holds this worker's "
        "partitions (it is rebuilt from the tables if not).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    web_cert: Path | None = Field(
        default=None, description="PEM certificate (chain): serve `/metrics` over HTTPS."
    )
    web_key: Path | None = Field(default=None, description="PEM private key of `web_cert`.")
    metrics_username: str | None = Field(
        default=None, description="Basic-auth user required on `/metrics` (`/healthz` stays open)."
    )
    metrics_password: SecretStr | None = None

    @model_validator(mode="after")
    def _security_pairs(self) -> Settings:
        """Half-configured security is an error at start-up, never a silent downgrade."""
        if self.kafka_security_protocol.startswith("SASL_"):
            for field in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"):
                if getattr(self, field) is None:
                    raise ValueError(
                        f"LEADLINE_{field.upper()}: required when LEADLINE_KAFKA_SECURITY_"
                        f"PROTOCOL={self.kafka_security_protocol}")
        for a, b in (("web_cert", "web_key"), ("metrics_username", "metrics_password")):
            if (getattr(self, a) is None) != (getattr(self, b) is None):
                raise ValueError(f"LEADLINE_{a.upper()} and LEADLINE_{b.upper()}: "
                                 "set both or neither")
        for field in ("kafka_ssl_cafile", "web_cert", "web_key"):
            path = getattr(self, field)
            if path is not None and not path.is_file():
                raise ValueError(f"LEADLINE_{field.upper()}: no such file: {path}")
        return self

    @field_validator("dedupe_horizon")
    @classmethod
    def _horizon(cls, value: str) -> str:
        seconds = parse_duration(value)
        if seconds > 7 * 86400:
            raise ValueError(f"{value!r} is longer than 7d")
        return value

    @property
    def dedupe_horizon_seconds(self) -> int:
        return parse_duration(self.dedupe_horizon)

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        if value == EMBEDDED:
            return value
        for part in value.split(","):
            url = urlparse(part if "://" in part else f"kafka://{part}")
            if url.scheme not in ("kafka", "aiokafka") or not url.hostname or not url.port:
                raise ValueError(f"expected kafka://host:port or 'embedded', got {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        url = urlparse(value)
        url.port  # noqa: B018 - raises ValueError for a malformed or out-of-range port
        if url.scheme not in ("redis", "rediss", "unix") or (
            url.scheme != "unix" and not url.hostname
        ):
            raise ValueError(f"expected redis://host:port/db, got {value!r}")
        return value

    @property
    def broker_url(self) -> str:
        """The broker as a ``kafka://`` URL, with ``embedded`` resolved."""
        if self.broker == EMBEDDED:
            return f"kafka://127.0.0.1:{self.embedded_broker_port}"
        return ",".join(
            p if "://" in p else f"kafka://{p}" for p in self.broker.split(",")
        ).replace("aiokafka://", "kafka://")

    @property
    def bootstrap_servers(self) -> list[str]:
        """``host:port`` pairs for plain Kafka clients."""
        return [urlparse(p).netloc for p in self.broker_url.split(",")]

    @property
    def by_user_topic(self) -> str:
        """Internal topic of validated events keyed by user identity."""
        return f"{self.app_id}-events-by-user"

    @property
    def redis_prefix(self) -> str:
        return f"{self.app_id}:v1"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings; a bad value raises :class:`SettingsError` naming the variable."""
    env_file = os.environ.get("LEADLINE_ENV_FILE")
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            if field:
                lines.append(f"LEADLINE_{field.upper()}: {err['msg']}")
            else:  # a check across fields: its message names the variables
                lines.append(str(err["msg"]).removeprefix("Value error, "))
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
