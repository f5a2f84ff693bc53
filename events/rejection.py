"""Why an event was rejected, and the dead-letter envelope that keeps its bytes."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import StrEnum

import orjson


class Reason(StrEnum):
    """The ``reason`` label of ``leadline_events_invalid_total`` and of DLQ envelopes."""

    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    SCHEMA = "schema"
    TOO_LARGE = "too_large"
    IN_FUTURE = "in_future"
    TOO_OLD = "too_old"


@dataclass(slots=True, frozen=True)
class Rejection:
    reason: Reason
    error: str


def dlq_envelope(
    raw: bytes | None,
    key: bytes | None,
    rejection: Rejection,
    *,
    topic: str,
    partition: int,
    offset: int,
    rejected_at: float,
) -> bytes:
    """The DLQ record: the original bytes (base64, exact), why, and where they came from."""
    return orjson.dumps(
        {
            "reason": rejection.reason.value,
            "error": rejection.error,
            "source": {"topic": topic, "partition": partition, "offset": offset},
            "rejected_at": rejected_at,
            "key_b64": base64.b64encode(key).decode() if key is not None else None,
            "value_b64": base64.b64encode(raw).decode() if raw is not None else None,
        }
    )
