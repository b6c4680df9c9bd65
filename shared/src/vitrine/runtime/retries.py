"""Which failures are worth waiting out, and the retry policy (stamina: exponential backoff
with jitter; ``stamina.set_testing(True)`` in tests turns the waits off).

Transient: the broker or the database is not reachable yet, is failing over, or asks to
retry. Anything else — bad credentials, an unsupported SASL mechanism, a bug such as a
TypeError in a service's setup — will not heal by waiting, so a service fails fast on it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import stamina
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from vitrine.runtime import mongo

#: Backoff of every wait-it-out loop: 0.1 s doubling up to 5 s, plus up to 1 s of jitter.
BACKOFF: dict[str, Any] = {"wait_initial": 0.1, "wait_max": 5.0, "wait_jitter": 1.0}


def is_kafka_transient(exc: BaseException) -> bool:
    """Kafka errors that say "not now" (unreachable, timed out, retriable broker errors)."""
    if isinstance(exc, (KafkaConnectionError, KafkaTimeoutError)):
        return True
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))


def is_transient(exc: BaseException) -> bool:
    """Kafka or MongoDB is unavailable for now; the same call may succeed later."""
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    return mongo.is_transient(exc) or is_kafka_transient(exc)


def forever(on: Any) -> Any:
    """A stamina retry context that retries ``on`` for as long as it lasts (never gives up)."""
    return stamina.retry_context(on=on, attempts=None, timeout=None, **BACKOFF)


__all__ = ["BACKOFF", "forever", "is_kafka_transient", "is_transient"]


# Retries are logged by the code that waits, with what it waits for; stamina's own log line
# would repeat it. Its Prometheus counter (stamina_retries_total) stays.
stamina.instrumentation.set_on_retry_hooks([stamina.instrumentation.PrometheusOnRetryHook])
