"""The services' batch subscriber: FastStream's, minus its nap after an empty poll.

FastStream's batch loop calls ``consumer.getmany(timeout_ms=batch_timeout_ms)`` and, when
that returns nothing, sleeps ``batch_timeout_ms`` before polling again (200 ms + 200 ms by
default). The sleep buys nothing on aiokafka — ``getmany`` already waits, and returns the
moment a fetch brings records — but an idle service wakes five times a second for it, and a
record that arrives during the nap waits up to 200 ms for it to end. Here the poll simply
waits again: ``getmany`` blocks until records arrive or ``batch_timeout_ms`` passes, so the
timeout can be long (``Settings.poll_wait_ms``) without delaying any record.
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Any

from faststream.kafka.subscriber.usecase import BatchSubscriber

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, ConsumerRecord


class WaitingBatchSubscriber(BatchSubscriber):
    """A FastStream batch subscriber whose idle poll waits in ``getmany`` and never sleeps."""

    __slots__ = ()

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        batch = await consumer.getmany(
            timeout_ms=self.batch_timeout_ms, max_records=self.max_records
        )
        return tuple(chain.from_iterable(batch.values()))


def wait_in_poll(subscriber: Any) -> WaitingBatchSubscriber:
    """Make a subscriber that ``broker.subscriber(..., batch=True)`` returned wait in its poll.

    FastStream has no option for it and builds its subscribers itself, so the instance's
    class is swapped for the subclass above (same slots, one method overridden).
    """
    if not isinstance(subscriber, BatchSubscriber):
        raise TypeError(f"expected FastStream's BatchSubscriber, got {type(subscriber)!r}")
    subscriber.__class__ = WaitingBatchSubscriber
    return subscriber  # type: ignore[return-value]
