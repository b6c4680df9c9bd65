"""Offsets committed in the background, the way Kafka's own clients pipeline them
(``commitAsync`` after each batch, a blocking commit when partitions are revoked or the
consumer stops).

FastStream acks a batch by awaiting ``consumer.commit()``: one round trip to the group
coordinator, which writes ``__consumer_offsets`` with acks=all before it answers. Measured
under P3's load (docs/PERFORMANCE.md) it took 13 ms of each ~80 ms batch cycle, in every
service, with the consumer doing nothing else meanwhile. Here the ack records the batch's
offsets and sends them while the next batch is fetched and applied:

- only offsets of applied batches are sent (each record's offset + 1, explicitly; never the
  consumer's position, which has moved on to the next batch by the time a request goes out);
- one request in flight at a time, in order: a batch's ack waits for the previous request,
  so commits never overtake each other (usually it is long done);
- a request that fails (the broker down, a rebalance) is logged and its offsets stay pending:
  the next one carries them. What is never committed is redelivered after a restart or a
  rebalance, and the handlers are idempotent — the guarantee stays at-least-once;
- before partitions are revoked and before the consumer stops, the request in flight is
  awaited and what is still pending is committed, so the next owner starts where this one
  stopped (``BackgroundCommits.settle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from faststream.kafka.message import KafkaAckableMessage, KafkaMessage

from vitrine.runtime import metrics
from vitrine.runtime.logging import get_logger

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

log = get_logger(__name__)


class BackgroundCommits:
    """One consumer's applied offsets, committed one request at a time (module docstring)."""

    def __init__(self, consumer: AIOKafkaConsumer, service: str = "") -> None:
        self.consumer = consumer
        self.service = service
        #: Per partition, the next offset to read once everything before it is applied.
        self.pending: dict[TopicPartition, int] = {}
        self._inflight: asyncio.Task[None] | None = None
        #: Requests go out one at a time even when a rebalance settles during a batch's ack.
        self._sending = asyncio.Lock()

    async def commit(self, records: Iterable[Any]) -> None:
        """Record an applied batch's offsets and send them; returns once the request before
        it is answered (not this one)."""
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            self.pending[tp] = max(self.pending.get(tp, 0), r.offset + 1)
        await self._wait()
        self._inflight = asyncio.create_task(self._send(), name="offset-commit")

    async def settle(self, revoked: Iterable[TopicPartition] = ()) -> None:
        """Wait for the request in flight and commit what is pending now; then forget the
        ``revoked`` partitions (another member reads them next)."""
        await self._wait()
        if self.pending:
            await self._send()
        for tp in revoked:
            self.pending.pop(tp, None)

    async def _wait(self) -> None:
        if self._inflight is not None:
            task, self._inflight = self._inflight, None
            await asyncio.wait([task])  # its failures are handled inside; ours propagate

    async def _send(self) -> None:
        async with self._sending:
            await self._send_pending()

    async def _send_pending(self) -> None:
        assigned = self.consumer.assignment()
        for tp in [tp for tp in self.pending if tp not in assigned]:
            del self.pending[tp]  # revoked meanwhile: its new owner commits it
        offsets = dict(self.pending)
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as exc:  # the next request carries them (module docstring)
            metrics.FAILED.labels(self.service, "offset_commit").inc()
            log.warning("consumer.commit_failed", error=repr(exc)[:300], partitions=len(offsets))
            return
        for tp, offset in offsets.items():
            if self.pending.get(tp) == offset:
                del self.pending[tp]


_commits: weakref.WeakKeyDictionary[Any, BackgroundCommits] = weakref.WeakKeyDictionary()


def commits_of(consumer: AIOKafkaConsumer, service: str = "") -> BackgroundCommits:
    """The consumer's background commits (created on first use)."""
    found = _commits.get(consumer)
    if found is None:
        found = _commits[consumer] = BackgroundCommits(consumer, service)
    return found


async def settle(consumer: AIOKafkaConsumer | None, revoked: Iterable[TopicPartition] = ()) -> None:
    """:meth:`BackgroundCommits.settle` for this consumer, if it ever committed."""
    if consumer is not None and (found := _commits.get(consumer)) is not None:
        await found.settle(revoked)


class BackgroundAckMessage(KafkaAckableMessage):
    """A consumed batch whose ack commits its offsets in the background."""

    #: The consuming service (for metrics); set per subclass by :func:`commit_in_background`.
    service: ClassVar[str] = ""

    async def ack(self) -> None:
        if not self.committed:
            records = self.raw_message if isinstance(self.raw_message, tuple) else ()
            await commits_of(self.consumer, self.service).commit(records)
        await KafkaMessage.ack(self)  # not KafkaAckableMessage's: it awaits a commit


@cache
def _message_class(service: str) -> type[BackgroundAckMessage]:
    return type(f"BackgroundAckMessage_{service}", (BackgroundAckMessage,), {"service": service})


def commit_in_background(subscriber: Any, service: str) -> None:
    """Make a FastStream batch subscriber's acks commit in the background (module docstring).

    FastStream builds the message objects itself, from its parser's ``msg_class``: that class
    is swapped for one whose ``ack`` does not wait. The subscriber must also settle before
    its consumer stops (``WaitingBatchSubscriber.stop``) and be given :class:`SettleOnRevoke`.
    """
    parser = subscriber.parser
    if parser.msg_class is not KafkaAckableMessage:  # ack_first, or already swapped
        raise TypeError(f"expected acks after processing, got {parser.msg_class!r}")
    parser.msg_class = _message_class(service)


class SettleOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was applied before partitions go to another member."""

    def __init__(self, consumer: Callable[[], AIOKafkaConsumer | None]) -> None:
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: Any) -> None:
        with contextlib.suppress(Exception):  # never fail the rebalance: redelivery covers it
            await settle(self.consumer(), revoked)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None
