"""Background offset commits (``vitrine.runtime.messaging.commits``) on the real broker: a
service that stops gracefully has committed every batch it applied, so its restart
redelivers nothing."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from vitrine.tools.cli._kafka import close, end_offsets, topic_partitions
from vitrine.tools.testing.handlers import as_cloud_event, product_submitted
from vitrine.tools.testing.probe import Publisher, TopicProbe
from vitrine.tools.testing.services import running
from vitrine.tools.testing.stack import StackInfo
from vitrine_catalog.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]


async def _ends_and_committed(
    bootstrap: str, group: str, topics: list[str]
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
    """Each partition's end offset, and the offset ``group`` committed for it."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = await topic_partitions(consumer, topics)
        ends = await end_offsets(consumer, parts)
        return ends, {tp: (await consumer.committed(tp)) or 0 for tp in parts}
    finally:
        await close(consumer)


async def test_a_graceful_stop_leaves_every_applied_batch_committed(
    stack: StackInfo, probe: TopicProbe, publisher: Publisher
) -> None:
    tag = uuid.uuid4().hex[:8]
    group, db = f"catalog-commits-{tag}", f"catalog_commits_{tag}"
    pids = [f"p-commits-{tag}-{i}" for i in range(20)]
    inputs = list(DEFINITION.handlers)
    async with running(DEFINITION, stack, consumer_group=group, mongo_db=db):
        await publisher.send_many(
            "merchants.products",
            [as_cloud_event(product_submitted(pid, "m-commits")) for pid in pids],
        )
        for pid in pids:
            await probe.wait_for(
                "catalog.products", type="product.review_requested", subject=pid, timeout=60
            )
    # Stopped gracefully; nothing else publishes to catalog's inputs meanwhile (tests run one
    # at a time), so the ends are where the stopped consumer was.
    ends, committed = await _ends_and_committed(stack.kafka_bootstrap, group, inputs)
    assert sum(ends.values()) >= len(pids)
    assert committed == ends  # nothing applied is left for the next start to redeliver
