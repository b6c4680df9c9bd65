"""Background commits across a rebalance on the real broker: offsets still pending when a
second member joins are committed before the partitions move (``SettleOnRevoke``), so the new
owner starts right after what the first one applied."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from vitrine.runtime.messaging import commits
from vitrine.runtime.messaging.commits import SettleOnRevoke
from vitrine.tools.cli._kafka import close
from vitrine.tools.testing.stack import StackInfo

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

PARTITIONS = 4
RECORDS = 40


async def _topic(bootstrap: str) -> str:
    name = f"test.commits-rebalance.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        await admin.close()
    return name


def _member(bootstrap: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=500,
    )


async def _read(consumer: AIOKafkaConsumer, until: int, seconds: float = 60) -> list[Any]:
    got: list[Any] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while len(got) < until and asyncio.get_running_loop().time() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        got += [r for records in batch.values() for r in records]
    return got


async def test_offsets_pending_at_a_rebalance_are_committed_before_partitions_move(
    stack: StackInfo,
) -> None:
    topic = await _topic(stack.kafka_bootstrap)
    group = f"commits-rebalance-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    first = _member(stack.kafka_bootstrap, group)
    second = _member(stack.kafka_bootstrap, group)
    try:
        for i in range(RECORDS):
            await producer.send(topic, f"{i}".encode(), partition=i % PARTITIONS)
        await producer.flush()

        first.subscribe([topic], listener=SettleOnRevoke(lambda: first))
        await first.start()
        applied = await _read(first, RECORDS)
        assert len(applied) == RECORDS
        # The batch's background request fails (the coordinator busy, say): its offsets stay
        # pending, to ride on the next request — and no next batch comes.
        real_commit = first.commit
        refused = 0

        async def refuse_once(offsets: Any = None) -> None:
            nonlocal refused
            if not refused:
                refused += 1
                raise KafkaError("refused once")
            await real_commit(offsets)

        first.commit = refuse_once  # type: ignore[method-assign]
        background = commits.commits_of(first, "test")
        await background.commit(applied)
        await background._wait()
        assert refused == 1 and len(background.pending) == PARTITIONS

        # A second member joins: the first settles before its partitions move.
        second.subscribe([topic])
        await second.start()
        # What the second reads in 10 s: anything would be a redelivery (the topic gets no more).
        rebalanced = asyncio.create_task(_read(second, 1, seconds=10))
        for _ in range(50):  # the first member takes part in the rebalance meanwhile
            if second.assignment():
                break
            await first.getmany(timeout_ms=200)
        assert second.assignment(), "the second member got no partition"
        redelivered = await rebalanced
        assert background.pending == {}
        assert redelivered == []  # the new owner starts after what the first one applied
    finally:
        await producer.stop()
        for consumer in (first, second):
            await close(consumer)
