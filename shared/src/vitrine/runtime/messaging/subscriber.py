"""The services' batch subscriber: FastStream's, minus its nap after an empty poll, plus one
short look for records that piled up while the previous batch was being applied.

FastStream's batch loop calls ``consumer.getmany(timeout_ms=batch_timeout_ms)`` and, when
that returns nothing, sleeps ``batch_timeout_ms`` before polling again (200 ms + 200 ms by
default). The sleep buys nothing on aiokafka — ``getmany`` already waits, and returns the
moment a fetch brings records — but an idle service wakes five times a second for it, and a
record that arrives during the nap waits up to 200 ms for it to end. Here the poll simply
waits again: ``getmany`` blocks until records arrive or ``batch_timeout_ms`` passes, so the
timeout can be long (``Settings.poll_wait_ms``) without delaying any record.

**Gathering.** aiokafka prefetches: while a batch is being applied, its fetch returns with
the first records that arrive, and then sends no new fetch to that broker until those are
consumed. Under load the next poll therefore returns at once with a few records fetched early
in the previous batch, while everything that arrived after them waits on the broker for yet
another batch — two batch cycles of queueing per hop instead of one. So when a poll returns
*without waiting* (the records were prefetched), the subscriber polls once more for up to
``gather_ms``: consuming the prefetched records has just sent the fetch that brings the rest,
which the broker answers at once when anything is there. A poll that had to wait returns its
records straight away (they are fresh: nothing is gathered at low traffic).
"""

from __future__ import annotations

import time
from functools import cache
from itertools import chain
from typing import TYPE_CHECKING, Any, ClassVar

from faststream.kafka.subscriber.usecase import BatchSubscriber, LogicSubscriber

from vitrine.runtime.messaging import commits
from vitrine.runtime.messaging.fetch_wait import wait_long_when_whole

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, ConsumerRecord

#: A poll that returned faster than this did not wait: its records were already fetched.
PREFETCHED_SECONDS = 0.0005


class WaitingBatchSubscriber(BatchSubscriber):
    """A FastStream batch subscriber whose idle poll waits in ``getmany`` and never sleeps,
    and which gathers what piled up behind prefetched records (module docstring)."""

    __slots__ = ()
    #: How long to look for the records behind prefetched ones (0: don't); set per subclass.
    gather_ms: ClassVar[int] = 0
    #: How long a fetch naming every assigned partition may wait (``fetch_wait``; 0: no change).
    idle_fetch_wait_ms: ClassVar[int] = 0

    async def stop(self) -> None:
        # FastStream's (LogicSubscriber.stop) with one step added: once the loop has stopped
        # and the batch in flight is done, its background offset commit lands before the
        # consumer stops (``vitrine.runtime.messaging.commits``).
        await super(LogicSubscriber, self).stop()
        if self.consumer is not None:
            await commits.settle(self.consumer)
            await self.consumer.stop()
            self.consumer = None

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        if self.idle_fetch_wait_ms:
            wait_long_when_whole(consumer, self.idle_fetch_wait_ms)
        started = time.perf_counter()
        batch = await consumer.getmany(
            timeout_ms=self.batch_timeout_ms, max_records=self.max_records
        )
        records = list(chain.from_iterable(batch.values()))
        room = self.max_records - len(records) if self.max_records else None
        if (
            records
            and self.gather_ms
            and (room is None or room > 0)
            and time.perf_counter() - started < PREFETCHED_SECONDS
        ):
            more = await consumer.getmany(timeout_ms=self.gather_ms, max_records=room)
            records += chain.from_iterable(more.values())  # later offsets: order is kept
        return tuple(records)


@cache
def _subscriber_class(gather_ms: int, idle_fetch_wait_ms: int) -> type[WaitingBatchSubscriber]:
    return type(
        f"WaitingBatchSubscriber_{gather_ms}_{idle_fetch_wait_ms}",
        (WaitingBatchSubscriber,),
        {"__slots__": (), "gather_ms": gather_ms, "idle_fetch_wait_ms": idle_fetch_wait_ms},
    )


def wait_in_poll(
    subscriber: Any, *, gather_ms: int = 0, idle_fetch_wait_ms: int = 0
) -> WaitingBatchSubscriber:
    """Make a subscriber that ``broker.subscriber(..., batch=True)`` returned wait in its poll
    (and gather for up to ``gather_ms`` behind prefetched records; and let its consumer's
    fetches that name every partition wait ``idle_fetch_wait_ms``).

    FastStream has no option for it and builds its subscribers itself, so the instance's
    class is swapped for a subclass of the class above (same slots, one method overridden).
    """
    if not isinstance(subscriber, BatchSubscriber):
        raise TypeError(f"expected FastStream's BatchSubscriber, got {type(subscriber)!r}")
    subscriber.__class__ = _subscriber_class(gather_ms, idle_fetch_wait_ms)
    return subscriber  # type: ignore[return-value]
