"""Background offset commits (``vitrine.runtime.messaging.commits``) against a consumer that
records what it is asked to commit; the real broker is in test_commits_stack.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy

from vitrine.runtime.messaging import commits
from vitrine.runtime.messaging.commits import BackgroundAckMessage, BackgroundCommits
from vitrine.runtime.messaging.subscriber import wait_in_poll

pytestmark = pytest.mark.asyncio

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def _records(*spec: tuple[TopicPartition, int]) -> list[ConsumerRecord[Any, Any]]:
    return [
        ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, None, b"", None, 0, 0, [])
        for tp, offset in spec
    ]


class Consumer:
    """Answers each commit when the test says so (or at once), failing the ones it is told."""

    def __init__(self, assigned: set[TopicPartition] | None = None) -> None:
        self.assigned = assigned if assigned is not None else {A0, A1, B0}
        self.requests: list[dict[TopicPartition, int]] = []
        self.done: list[dict[TopicPartition, int]] = []
        self.fail_next = 0
        self.gate: asyncio.Event | None = None

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.requests.append(dict(offsets))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise CommitFailedError("rebalance in progress")
        self.done.append(dict(offsets))


async def test_a_batch_commits_each_partitions_highest_offset_plus_one() -> None:
    consumer = Consumer()
    c = BackgroundCommits(consumer)  # type: ignore[arg-type]
    await c.commit(_records((A0, 4), (A0, 7), (B0, 2), (A0, 5)))
    await c.settle()
    assert consumer.done == [{A0: 8, B0: 3}]
    assert c.pending == {}


async def test_the_ack_returns_before_the_commit_is_answered() -> None:
    consumer = Consumer()
    consumer.gate = asyncio.Event()
    c = BackgroundCommits(consumer)  # type: ignore[arg-type]
    await asyncio.wait_for(c.commit(_records((A0, 0))), 1)  # not answered yet, returned
    await asyncio.sleep(0)
    assert consumer.requests == [{A0: 1}] and consumer.done == []
    consumer.gate.set()
    await c.settle()
    assert consumer.done == [{A0: 1}]


async def test_one_request_in_flight_and_commits_never_overtake_each_other() -> None:
    consumer = Consumer()
    consumer.gate = asyncio.Event()
    c = BackgroundCommits(consumer)  # type: ignore[arg-type]
    await c.commit(_records((A0, 0)))
    second = asyncio.create_task(c.commit(_records((A0, 1))))
    await asyncio.sleep(0.01)
    assert not second.done()  # waits for the first answer
    assert consumer.requests == [{A0: 1}]
    consumer.gate.set()
    await second
    await c.settle()
    assert consumer.done == [{A0: 1}, {A0: 2}]


async def test_a_failed_commit_is_carried_by_the_next_one() -> None:
    consumer = Consumer()
    consumer.fail_next = 1
    c = BackgroundCommits(consumer)  # type: ignore[arg-type]
    await c.commit(_records((A0, 9)))
    await asyncio.sleep(0)  # the request is out
    await c.commit(_records((B0, 0)))  # a batch of another partition only
    await c.settle()
    assert consumer.requests == [{A0: 10}, {A0: 10, B0: 1}]
    assert consumer.done == [{A0: 10, B0: 1}]


async def test_settle_commits_what_is_pending_and_forgets_revoked_partitions() -> None:
    consumer = Consumer()
    consumer.fail_next = 2
    c = BackgroundCommits(consumer)  # type: ignore[arg-type]
    await c.commit(_records((A0, 3), (A1, 5)))
    await c.settle(revoked={A1})  # the in-flight one failed, and so does settle's
    assert c.pending == {A0: 4}  # A1 belongs to another member now
    await c.settle()
    assert consumer.done == [{A0: 4}]


async def test_partitions_no_longer_assigned_are_not_sent() -> None:
    consumer = Consumer(assigned={A0})
    c = BackgroundCommits(consumer)  # type: ignore[arg-type]
    await c.commit(_records((A0, 1), (B0, 1)))
    await c.settle()
    assert consumer.requests == [{A0: 2}]


async def test_settle_is_harmless_for_a_consumer_that_never_committed() -> None:
    await commits.settle(None)
    await commits.settle(Consumer())  # type: ignore[arg-type]


async def test_the_batch_message_acks_through_the_background_commits() -> None:
    consumer = Consumer()
    subscriber = KafkaBroker().subscriber("a", batch=True, ack_policy=AckPolicy.NACK_ON_ERROR)
    commits.commit_in_background(subscriber, "catalog")
    cls = subscriber.parser.msg_class
    assert issubclass(cls, BackgroundAckMessage) and cls.service == "catalog"
    records = tuple(_records((A0, 2), (A1, 0)))
    message = cls(body=b"", raw_message=records, consumer=consumer)
    await message.ack()
    await commits.settle(consumer)  # type: ignore[arg-type]
    assert consumer.done == [{A0: 3, A1: 1}]
    with pytest.raises(TypeError):  # twice: the class is no longer FastStream's
        commits.commit_in_background(subscriber, "catalog")


async def test_the_subscriber_settles_commits_before_its_consumer_stops() -> None:
    consumer = Consumer()
    consumer.gate = asyncio.Event()
    order: list[str] = []

    async def stop() -> None:
        order.append(f"consumer stopped after {len(consumer.done)} commit(s)")

    consumer.stop = stop  # type: ignore[attr-defined]
    subscriber = wait_in_poll(KafkaBroker().subscriber("a", batch=True))
    subscriber.consumer = consumer  # type: ignore[assignment]
    await commits.commits_of(consumer).commit(_records((A0, 0)))  # type: ignore[arg-type]
    asyncio.get_running_loop().call_later(0.05, consumer.gate.set)  # answered late
    await subscriber.stop()
    assert order == ["consumer stopped after 1 commit(s)"]
    assert subscriber.consumer is None
