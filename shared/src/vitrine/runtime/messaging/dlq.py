"""Dead letters: the original record, unchanged, to ``<topic>.dlq`` with ``dlq-*`` headers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vitrine.contract.topics import DLQ_SUFFIX
from vitrine.runtime.messaging.producer import OutgoingRecord

DLQ_HEADERS = (
    "dlq-reason",
    "dlq-error",
    "dlq-service",
    "dlq-topic",
    "dlq-partition",
    "dlq-offset",
    "dlq-time",
)


def dead_letter(record: Any, *, reason: str, error: str, service: str) -> OutgoingRecord:
    """The DLQ record for a consumed ``record`` (an aiokafka ``ConsumerRecord``).

    Earlier ``dlq-*`` headers are dropped so a replayed message that fails again says why
    it failed this time.
    """
    original = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq-")]
    extra = {
        "dlq-reason": reason,
        "dlq-error": error[:2000],
        "dlq-service": service,
        "dlq-topic": record.topic,
        "dlq-partition": str(record.partition),
        "dlq-offset": str(record.offset),
        "dlq-time": datetime.now(UTC).isoformat(),
    }
    headers = original + [(k, v.encode()) for k, v in extra.items()]
    topic = record.topic if record.topic.endswith(DLQ_SUFFIX) else record.topic + DLQ_SUFFIX
    # A tombstone (value None) stays a tombstone: b"" would be a different record.
    return OutgoingRecord(topic, record.key, record.value, headers)


def dlq_info(headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]) -> dict[str, str]:
    """The ``dlq-*`` headers of a dead letter as text."""
    return {k: v.decode("utf-8", "replace") for k, v in headers if k.startswith("dlq-")}
