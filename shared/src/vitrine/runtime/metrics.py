"""Prometheus metrics every service exposes on ``/metrics`` (same names in every service)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram

log = structlog.get_logger(__name__)

CONSUMED = Counter(
    "vitrine_messages_consumed_total", "Records consumed", ["service", "topic", "type"]
)
DUPLICATES = Counter(
    "vitrine_messages_duplicate_total",
    "Redelivered events skipped by the inbox",
    ["service", "topic"],
)
PUBLISHED = Counter(
    "vitrine_messages_published_total",
    "Events published from the outbox",
    ["service", "topic", "type"],
)
FAILED = Counter(
    "vitrine_handler_failures_total", "Handler attempts that raised", ["service", "kind"]
)
DEAD_LETTERED = Counter(
    "vitrine_dead_letters_total", "Records sent to a DLQ", ["service", "topic", "reason"]
)
HANDLER_SECONDS = Histogram(
    "vitrine_batch_seconds",
    "Time to apply one consumed batch (decode to commit)",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "vitrine_batch_records",
    "Records per consumed batch",
    ["service"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000),
)
OUTBOX_BACKLOG = Gauge(
    "vitrine_outbox_backlog", "Outbox rows not yet published (last seen)", ["service"]
)
CONSUMER_LAG = Gauge(
    "vitrine_consumer_lag",
    "Records behind the end of each input partition",
    ["service", "topic", "partition"],
)
READY = Gauge("vitrine_ready", "1 when broker and database answer", ["service"])

#: How often each service measures its consumer lag.
LAG_INTERVAL_SECONDS = 5.0


async def measure_consumer_lag(
    service: str, consumer: Any, previous: set[tuple[str, int]] | None = None
) -> set[tuple[str, int]]:
    """Set :data:`CONSUMER_LAG` for each partition assigned to ``consumer`` (aiokafka).

    Lag = the partition's high watermark (as of the last fetch; Tansu's ListOffsets "latest"
    is unreliable, the fetch's high watermark is not) minus the consumer's fetch position.
    Gauges of partitions no longer assigned (after a rebalance) are removed. Returns the
    partitions reported, to pass back as ``previous`` next time.
    """
    from aiokafka.errors import IllegalStateError

    assigned: set[tuple[str, int]] = set()
    if consumer is not None:
        for tp in list(consumer.assignment()):
            assigned.add((tp.topic, tp.partition))
            high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = await asyncio.wait_for(consumer.position(tp), 1.0)
            except (TimeoutError, IllegalStateError):
                continue
            CONSUMER_LAG.labels(service, tp.topic, str(tp.partition)).set(max(high - position, 0))
    for topic, partition in (previous or set()) - assigned:
        with contextlib.suppress(KeyError):
            CONSUMER_LAG.remove(service, topic, str(partition))
    return assigned


async def report_consumer_lag(
    service: str, consumer: Callable[[], Any], interval: float | None = None
) -> None:
    """Background task: measure the lag of ``consumer()`` every few seconds, forever."""
    reported: set[tuple[str, int]] = set()
    while True:
        try:
            reported = await measure_consumer_lag(service, consumer(), reported)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a metric must never take the service down
            log.debug("consumer_lag.failed", error=repr(exc)[:200])
        await asyncio.sleep(LAG_INTERVAL_SECONDS if interval is None else interval)
