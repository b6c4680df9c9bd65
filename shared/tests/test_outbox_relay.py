"""The outbox relay against the real stack: rows committed in a guarded transaction are sent
from memory (no read-back), aborted ones never; rows it was not handed (a previous process,
a failed send, an overflowing memory queue, a write outside the guard) come from the
database, in ``_id`` order, and nothing is published twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from pymongo import AsyncMongoClient, monitoring

from vitrine.contract.envelope import CloudEvent
from vitrine.runtime import mongo
from vitrine.runtime.messaging import outbox
from vitrine.runtime.messaging.outbox import OutboxRelay
from vitrine.tools.testing.probe import TopicProbe
from vitrine.tools.testing.stack import StackInfo

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]
TOPIC = "catalog.products"


class OutboxFinds(monitoring.CommandListener):
    """Counts ``find`` commands on an outbox collection (the relay's reads)."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find" and event.command.get("find") == outbox.OUTBOX:
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class Rig:
    client: AsyncMongoClient[mongo.Document]
    finds: OutboxFinds
    guard: mongo.TransactionGuard
    producer: AIOKafkaProducer
    relays: list[OutboxRelay] = field(default_factory=list)

    @property
    def db(self) -> Any:
        return self.guard.db

    def relay(self, producer: Any = None, **options: Any) -> OutboxRelay:
        """The relay of this database, handed what the guard's transactions commit."""
        options.setdefault("idle_poll_seconds", 60.0)  # no safety-net read unless a test wants
        relay = OutboxRelay(
            self.db, producer or self.producer, service="test", guard=self.guard, **options
        )
        self.relays.append(relay)
        return relay


@pytest.fixture
async def rig(stack: StackInfo, tmp_path: Path) -> AsyncIterator[Rig]:
    finds = OutboxFinds()
    client: AsyncMongoClient[mongo.Document] = AsyncMongoClient(
        stack.mongo_url, event_listeners=[finds], tz_aware=True
    )
    name = f"relay_{uuid.uuid4().hex[:8]}"
    db = mongo.database(client, name)
    for collection in ("inbox", outbox.OUTBOX):  # as the service's start-up does
        await db.create_collection(collection)
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    yield Rig(client, finds, mongo.TransactionGuard(client, name, str(tmp_path)), producer)
    await producer.stop()
    await client.close()


def events(subject: str, n: int) -> list[tuple[str, CloudEvent]]:
    return [
        (
            TOPIC,
            CloudEvent(
                specversion="1.0",
                id=str(uuid.uuid4()),
                source="/tests/relay",
                type="product.refused",
                subject=subject,
                time=datetime.now(UTC),
                data={"n": i},
            ),
        )
        for i in range(n)
    ]


async def commit(rig: Rig, staged: list[tuple[str, CloudEvent]]) -> None:
    async with rig.guard.transaction() as session:
        await outbox.stage(rig.db, session, staged)


async def drain(relay: OutboxRelay) -> int:
    total = 0
    while published := await relay.drain_once():
        total += published
    return total


def ids(staged: list[tuple[str, CloudEvent]]) -> list[str]:
    return [event.id for _, event in staged]


async def published_ids(probe: TopicProbe, subject: str, count: int) -> list[str]:
    """Every event published for ``subject``, once the topic is quiet."""
    await probe.wait_for(TOPIC, subject=subject, count=count)
    await probe.settle(1.0)
    return [r.event["id"] for r in probe.events(TOPIC, subject=subject)]


async def test_committed_rows_are_published_from_memory_without_a_read(rig, probe) -> None:
    relay = rig.relay()
    assert await relay.drain_once() == 0  # start-up: one read finds the outbox empty
    key = f"p-{uuid.uuid4().hex[:8]}"
    staged = events(key, 3)
    rig.finds.count = 0
    await commit(rig, staged)
    assert relay.queued() == 1  # one row of three events, handed over at commit
    assert await relay.drain_once() == 3
    assert await relay.drain_once() == 0
    assert rig.finds.count == 0  # published without reading the outbox back
    assert await published_ids(probe, key, 3) == ids(staged)
    assert await outbox.pending(rig.db) == []  # and deleted once sent


async def test_a_bulk_transaction_hands_nothing_over_and_is_read_back_in_order(
    rig, probe, monkeypatch
) -> None:
    """Past ``HANDED_ROWS_MAX`` rows a transaction keeps none of them in memory (a policy
    enforced on 50,000 items would hold them all until commit); the relay reads them back."""
    monkeypatch.setattr(outbox, "HANDED_ROWS_MAX", 4)
    relay = rig.relay(batch_size=3)
    await drain(relay)
    key = f"p-{uuid.uuid4().hex[:8]}"
    staged = events(key, 7)
    async with rig.guard.transaction() as session:
        for item in staged:  # one row per stage call, as a chunked sweep stages them
            await outbox.stage(rig.db, session, [item])
        assert session not in outbox._staged  # past the bound: nothing kept for the relay
    assert relay.queued() == 0
    rig.finds.count = 0
    assert await drain(relay) == 7
    assert rig.finds.count >= 3  # read back from the table, three rows per read
    assert await published_ids(probe, key, 7) == ids(staged)
    small = events(key, 2)  # the next transaction hands its rows over again
    await commit(rig, small)
    assert relay.queued() == 1


async def test_an_aborted_transaction_hands_nothing_over(rig, probe) -> None:
    relay = rig.relay()
    await drain(relay)
    key = f"p-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError):
        async with rig.guard.transaction() as session:
            await outbox.stage(rig.db, session, events(key, 2))
            assert relay.queued() == 0  # nothing before the commit
            raise RuntimeError("the handler failed")
    async with rig.guard.transaction() as session:  # aborted by the body itself
        await outbox.stage(rig.db, session, events(key, 2))
        await session.abort_transaction()
    assert relay.queued() == 0
    assert await outbox.pending(rig.db) == []  # rolled back
    good = events(key, 1)
    await commit(rig, good)
    assert relay.queued() == 1  # only the committed row
    await drain(relay)
    assert await published_ids(probe, key, 1) == ids(good)


async def test_rows_a_previous_process_left_go_first_in_order_once(rig, probe) -> None:
    key = f"p-{uuid.uuid4().hex[:8]}"
    old = events(key, 5)
    # A previous process staged these and died before sending: in the database only, the
    # first two as a release before compression kept them (text), the rest compressed.
    rows = [outbox.outbox_rows([e])[0] for e in old]
    await rig.db[outbox.OUTBOX].insert_many(rows[:2] + [outbox.stored(r) for r in rows[2:]])
    relay = rig.relay(batch_size=2)
    new = events(key, 3)
    for item in new:  # committed before the relay's first drain: queued in memory
        await commit(rig, [item])
    assert relay.queued() == 3
    assert await drain(relay) == 8
    assert rig.finds.count >= 3  # the old rows came from the database, two at a time
    # Old rows first, all in _id order, and the queued rows were not read back as well.
    assert await published_ids(probe, key, 8) == ids(old) + ids(new)
    assert await outbox.pending(rig.db) == []


async def test_a_running_relay_publishes_everything_once_in_order(rig, probe) -> None:
    # Frequent safety-net reads interleave with the memory queue: still exactly once.
    relay = rig.relay(idle_poll_seconds=0.05, batch_size=3)
    task = asyncio.create_task(relay.run())
    key = f"p-{uuid.uuid4().hex[:8]}"
    expected: list[str] = []
    for i in range(40):
        staged = events(key, 1 + i % 3)
        await commit(rig, staged)
        expected += ids(staged)
        relay.wake()
        await asyncio.sleep(0.01 * (i % 4))
    await probe.wait_for(TOPIC, subject=key, count=len(expected))
    await relay.flush()
    await asyncio.wait_for(task, 5)
    assert await published_ids(probe, key, len(expected)) == expected
    assert await outbox.pending(rig.db) == []


async def test_an_overflowing_memory_queue_falls_back_to_the_database(rig, probe) -> None:
    relay = rig.relay(memory_rows=3)
    await drain(relay)
    key = f"p-{uuid.uuid4().hex[:8]}"
    staged = [events(key, 1) for _ in range(5)]
    for item in staged:
        await commit(rig, item)
    assert relay.queued() == 1  # the 4th row overflowed the queue; the 5th came after
    rig.finds.count = 0
    assert await drain(relay) == 5
    assert rig.finds.count >= 1  # the dropped rows were read back
    assert await published_ids(probe, key, 5) == [i for item in staged for i in ids(item)]


class FlakyProducer:
    """Fails the first send, like a broker that just went away."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.failures = 1

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker gone")
        return await self.producer.send(*args, **kwargs)


async def test_after_a_failed_send_the_rows_come_from_the_database(rig, probe) -> None:
    relay = rig.relay(producer=FlakyProducer(rig.producer))
    await drain(relay)
    key = f"p-{uuid.uuid4().hex[:8]}"
    first, second = events(key, 2), events(key, 2)
    await commit(rig, first)
    await commit(rig, second)
    with pytest.raises(KafkaConnectionError):
        await relay.drain_once()
    assert relay.queued() == 0  # memory dropped: the rows are still in the database
    rig.finds.count = 0
    assert await drain(relay) == 4
    assert rig.finds.count >= 1
    assert await published_ids(probe, key, 4) == ids(first) + ids(second)


async def test_rows_staged_outside_the_guard_are_found_by_the_idle_poll(rig, probe) -> None:
    relay = rig.relay(idle_poll_seconds=0.2)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.1)  # caught up (empty outbox)
    key = f"p-{uuid.uuid4().hex[:8]}"
    staged = events(key, 2)
    async with mongo.transaction(rig.client) as session:  # no guard: never handed over
        await rig.db["inbox"].find_one({}, session=session)
        await outbox.stage(rig.db, session, staged)
    assert relay.queued() == 0
    assert await published_ids(probe, key, 2) == ids(staged)  # no wake: the poll found them
    await relay.flush()
    await asyncio.wait_for(task, 5)
