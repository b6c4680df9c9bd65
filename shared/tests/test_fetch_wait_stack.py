"""A fetch that names every assigned partition waits long, and the broker still answers it the
moment a record arrives; a fetch that leaves a partition out keeps the short bound
(``vitrine.runtime.messaging.fetch_wait``), on the real broker and aiokafka's real fetcher."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from vitrine.runtime.messaging.fetch_wait import wait_long_when_whole
from vitrine.tools.testing.stack import StackInfo

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

IDLE_WAIT_MS = 20_000  # far beyond anything the test waits for: an answer means "on data"
SHORT_WAIT_MS = 500


async def _topic(bootstrap: str, partitions: int) -> str:
    name = f"test.fetch-wait.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
        for _ in range(100):
            (described,) = await admin.describe_topics([name])
            if not described["error_code"] and all(
                p["leader"] >= 0 for p in described["partitions"]
            ):
                return name
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    raise TimeoutError(f"{name} has no leaders")


async def test_whole_fetches_wait_long_and_still_answer_on_data(stack: StackInfo) -> None:
    if stack.broker != "apache":
        pytest.skip("Tansu parks a fetch for its whole wait: the profile keeps 20 ms there")
    topic = await _topic(stack.kafka_bootstrap, 3)
    parts = [TopicPartition(topic, p) for p in range(3)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=SHORT_WAIT_MS,
        consumer_timeout_ms=1000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    sent: list[tuple[int, int]] = []  # (partitions named, max wait) of every fetch built
    try:
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        wait_long_when_whole(consumer, IDLE_WAIT_MS)
        fetcher: Any = consumer._fetcher
        build = fetcher._get_actions_per_node

        def spy(assignment: Any) -> Any:
            result = build(assignment)
            for _, request in result[0]:
                named = sum(len(p) for _, p in request.topics)
                sent.append((named, request._max_wait_ms))
            return result

        fetcher._get_actions_per_node = spy
        for tp in parts:
            await consumer.position(tp)
        await asyncio.sleep(0.5)  # idle: the one fetch in flight names all three

        started = time.monotonic()
        await producer.send_and_wait(topic, b"first", partition=0)
        got = await consumer.getmany(timeout_ms=10_000)
        answered_after = time.monotonic() - started
        assert [r.value for rs in got.values() for r in rs] == [b"first"]
        assert answered_after < 10  # answered on data, not when the 20 s wait ran out
        assert sent and all(s == (3, IDLE_WAIT_MS) for s in sent)

        # A record left unconsumed: after aiokafka's prefetch back-off, the next fetch leaves
        # its partition out, and so keeps the short wait.
        sent.clear()
        await producer.send_and_wait(topic, b"second", partition=0)
        for _ in range(50):
            await asyncio.sleep(0.1)
            if any(named == 2 for named, _ in sent):
                break
        assert (2, SHORT_WAIT_MS) in sent
        assert all(wait == (IDLE_WAIT_MS if named == 3 else SHORT_WAIT_MS) for named, wait in sent)
        got = await consumer.getmany(timeout_ms=10_000)
        assert [r.value for rs in got.values() for r in rs] == [b"second"]
    finally:
        await producer.stop()
        await consumer.stop()
