"""Kafka access for the operator command: no consumer group, exact end offsets, ranges.

The CLI never joins a consumer group (it assigns partitions and seeks), so tailing or
listing never moves a service's committed offsets or triggers a rebalance.

Tansu's ListOffsets "latest" answers the base offset of the last record batch + 1, not the
end of the partition (DESIGN.md §1). The high watermark a Fetch response carries is right on
both Tansu and Kafka, so :func:`end_offsets` fetches the tail of each partition once and
reads the high watermark from it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import stamina
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from vitrine.runtime.settings import Settings


class UnknownTopicError(Exception):
    """A topic the broker does not have."""


@dataclass(frozen=True)
class Kafka:
    """Where the broker is, and the security arguments (SASL/TLS) from ``VITRINE_*``."""

    bootstrap: str
    client_args: dict[str, Any] = field(default_factory=dict)
    idempotent: bool = False

    @classmethod
    def from_env(cls, bootstrap: str) -> Kafka:
        settings = Settings(service="cli", kafka_bootstrap=bootstrap)
        return cls(bootstrap, settings.kafka_client_args(), settings.idempotent_producer)

    def consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id="vitrine-cli",
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=15000,
            **self.client_args,
        )

    def producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id="vitrine-cli",
            acks="all",
            enable_idempotence=self.idempotent,
            linger_ms=5,
            max_batch_size=1024 * 1024,
            max_request_size=4 * 1024 * 1024,
            request_timeout_ms=15000,
            **self.client_args,
        )


async def start(client: AIOKafkaConsumer | AIOKafkaProducer) -> None:
    """Start a client; if it cannot, close it (no "Unclosed AIOKafka…" warning) and re-raise."""
    try:
        await client.start()
    except BaseException:
        await client.stop()
        raise


async def topic_partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str]
) -> list[TopicPartition]:
    """Every partition of ``topics``, in topic then partition order."""
    topics = list(topics)
    await consumer._client.force_metadata_update()
    known = await consumer.topics()
    parts: list[TopicPartition] = []
    for name in topics:
        if name not in known:
            raise UnknownTopicError(name)
        ids = consumer.partitions_for_topic(name) or set()
        parts += [TopicPartition(name, p) for p in sorted(ids)]
    return parts


async def end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], timeout: float = 20.0
) -> dict[TopicPartition, int]:
    """The offset the next record of each partition will get (exact on Tansu too).

    Leaves ``partitions`` assigned to ``consumer`` (seek before reading).
    """
    if not partitions:
        return {}
    listed: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    consumer.assign(partitions)  # always a fresh assignment: no high watermark known yet
    if Settings(service="cli").broker.list_offsets_exact:
        return listed
    # Tansu (vitrine.runtime.standins): ListOffsets "latest" may stop short of the end; the
    # high watermark a fetch carries is right.
    for tp in partitions:
        consumer.seek(tp, max(listed.get(tp, 0) - 1, 0))
    deadline = time.monotonic() + timeout
    while any(consumer.highwater(tp) is None for tp in partitions):
        if time.monotonic() > deadline:
            missing = [
                f"{tp.topic}[{tp.partition}]" for tp in partitions if consumer.highwater(tp) is None
            ]
            raise TimeoutError(f"no high watermark for {', '.join(missing[:5])}")
        waiting = [tp for tp in partitions if consumer.highwater(tp) is None]
        await consumer.getmany(*waiting, timeout_ms=200, max_records=1)
    return {tp: max(int(consumer.highwater(tp)), listed.get(tp, 0)) for tp in partitions}


async def beginning_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    if not partitions:
        return {}
    found: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
    return found


async def read(
    consumer: AIOKafkaConsumer,
    starts: dict[TopicPartition, int],
    stops: dict[TopicPartition, int] | None = None,
) -> AsyncIterator[Any]:
    """Records from ``starts`` on; up to (not including) ``stops`` if given, else forever.

    Records come partition by partition as fetched (each partition in order).
    """
    if set(consumer.assignment()) != set(starts):
        consumer.assign(list(starts))
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    active = set(starts)
    if stops is not None:
        active = {tp for tp in starts if starts[tp] < stops.get(tp, 0)}
        done = [tp for tp in starts if tp not in active]
        if done:
            consumer.pause(*done)
    while stops is None or active:
        batch = await consumer.getmany(timeout_ms=200, max_records=2000)
        for tp, records in batch.items():
            for record in records:
                if stops is not None and record.offset >= stops.get(tp, 0):
                    break
                yield record
        if stops is not None:
            for tp in list(active):
                # the position also passes gaps (compaction, transaction markers)
                if await consumer.position(tp) >= stops.get(tp, 0):
                    active.discard(tp)
                    consumer.pause(tp)


async def close(consumer: AIOKafkaConsumer) -> None:
    """Stop ``consumer``, working around an aiokafka 0.14 race.

    When stop() comes while the fetcher is re-reading a new assignment (just after
    ``assign()``), the fetcher's task swallows its cancellation
    (``contextlib.suppress(CancelledError)`` around awaiting its old fetches) and never
    ends, so stop() hangs. Cancelling the task again once it is past that point ends it.
    """
    stopping = asyncio.ensure_future(consumer.stop())
    while True:
        done, _ = await asyncio.wait([stopping], timeout=0.5)
        if done:
            stopping.result()
            return
        task = getattr(getattr(consumer, "_fetcher", None), "_fetch_task", None)
        if task is not None and not task.done():
            task.cancel()


async def wait_for_broker(kafka: Kafka, timeout: float) -> None:
    """Return once the broker answers metadata requests, or raise after ``timeout``."""
    async for attempt in stamina.retry_context(
        on=Exception, attempts=None, timeout=timeout, wait_initial=0.3, wait_max=3.0
    ):
        with attempt:
            consumer = kafka.consumer()
            try:
                await start(consumer)
                await consumer.topics()
            finally:
                await close(consumer)
