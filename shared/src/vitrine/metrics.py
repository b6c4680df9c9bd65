"""Prometheus metrics every service exposes on ``/metrics`` (same names in every service)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
