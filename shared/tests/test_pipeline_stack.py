"""The batch pipeline against the real stack: DLQ, inbox dedupe, isolation of a bad event,
waiting out a database outage, and the outbox relay surviving a restart."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from vitrine.contract.envelope import Event
from vitrine.contract.events import ProductWithdrawn
from vitrine.runtime import mongo
from vitrine.runtime.messaging import outbox
from vitrine.runtime.messaging.outbox import OutboxRelay
from vitrine.runtime.messaging.pipeline import BatchPipeline
from vitrine.runtime.messaging.producer import send_all
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.tools.testing.probe import cloud_event

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]
TOPIC = "merchants.products"
_offsets = iter(range(10**9))


def _record(value: bytes | None, key: str | None, topic: str = TOPIC) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        topic,
        0,
        next(_offsets),
        0,
        0,
        key.encode() if key else None,
        value,
        None,
        0,
        0,
        [("content-type", b"application/cloudevents+json")],
    )


def _withdrawn(pid: str, merchant: str = "m-1") -> ConsumerRecord[Any, Any]:
    event = cloud_event("product.withdrawn", pid, {"product_id": pid, "merchant_id": merchant})
    return _record(json.dumps(event).encode(), pid)


class Recorder:
    """A handler that records what it applied (in Mongo, in the transaction) and emits an echo."""

    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.fail_on = fail_on or set()
        self.calls = 0

    async def __call__(self, events: list[Event[Any]], uow: UnitOfWork) -> None:
        self.calls += 1
        for event in events:
            if event.subject in self.fail_on:
                raise ValueError(f"cannot handle {event.subject}")
        await uow.db["applied"].insert_many(
            [{"_id": e.id, "subject": e.subject} for e in events], session=uow.session
        )
        for event in events:
            uow.emit(
                "catalog.products",
                ProductWithdrawn(product_id=event.subject, merchant_id="m-1"),
                subject=event.subject,
                cause=event,
                type="product.refused",
            )


@pytest.fixture
async def env(stack):  # type: ignore[no-untyped-def]
    client = mongo.connect(stack.mongo_url, app_name="test")
    db = mongo.database(client, f"pipe_{uuid.uuid4().hex[:8]}")
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    await producer.start()
    yield client, db, producer
    await producer.stop()
    await client.close()


def _pipeline(env: Any, handler: Recorder) -> BatchPipeline:
    client, db, producer = env
    return BatchPipeline(
        service="test", client=client, db=db, producer=producer, handlers={TOPIC: handler}
    )


async def test_invalid_records_go_to_the_dlq_and_valid_ones_apply(env, probe) -> None:
    handler = Recorder()
    pid, bad_key = f"p-{uuid.uuid4().hex[:8]}", f"k-{uuid.uuid4().hex[:8]}"
    await _pipeline(env, handler).process(
        [
            _record(b"not json", bad_key),
            _withdrawn(pid),
        ]
    )
    dead = await probe.wait_for(TOPIC + ".dlq", subject=bad_key)
    assert dead[0].headers["dlq-reason"] == "not_json"
    assert dead[0].value == b"not json"  # original bytes unchanged
    assert dead[0].headers["content-type"] == "application/cloudevents+json"
    assert await env[1]["applied"].count_documents({"subject": pid}) == 1
    assert len(await outbox.pending(env[1])) == 1


async def test_redelivered_events_are_skipped(env) -> None:
    handler = Recorder()
    pipeline = _pipeline(env, handler)
    pid = f"p-{uuid.uuid4().hex[:8]}"
    record = _withdrawn(pid)
    await pipeline.process([record, record])  # twice in one batch
    await pipeline.process([record])  # and again later
    assert await env[1]["applied"].count_documents({"subject": pid}) == 1
    assert len(await outbox.pending(env[1])) == 1


async def test_a_failing_event_is_isolated_and_dead_lettered(env, probe) -> None:
    bad = f"p-bad-{uuid.uuid4().hex[:8]}"
    good = [f"p-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    handler = Recorder(fail_on={bad})
    await _pipeline(env, handler).process(
        [_withdrawn(good[0]), _withdrawn(bad), _withdrawn(good[1]), _withdrawn(good[2])]
    )
    dead = await probe.wait_for(TOPIC + ".dlq", subject=bad)
    assert dead[0].headers["dlq-reason"] == "handler_error"
    assert "cannot handle" in dead[0].headers["dlq-error"]
    for pid in good:
        assert await env[1]["applied"].count_documents({"subject": pid}) == 1
    assert await env[1]["applied"].count_documents({"subject": bad}) == 0


async def test_relay_publishes_in_order_and_survives_restart(env, probe) -> None:
    _client, db, producer = env
    pid = f"p-{uuid.uuid4().hex[:8]}"
    pipeline = _pipeline(env, Recorder())
    await pipeline.process([_withdrawn(pid) for _ in range(5)])  # 5 distinct events, one key
    assert len(await outbox.pending(db)) == 5
    # A relay that dies after sending but before deleting resends: same event ids.
    await send_all(producer, await outbox.pending(db))
    relay = OutboxRelay(db, producer, service="test")
    task = asyncio.create_task(relay.run())
    seen = await probe.wait_for("catalog.products", subject=pid, count=10)
    relay._stopping = True
    relay.wake()
    await asyncio.wait_for(task, 5)
    assert await outbox.pending(db) == []
    ids = [r.event["id"] for r in seen]
    assert len(set(ids)) == 5  # duplicates carry the same ids: consumers dedupe them
    assert ids[:5] == ids[5:]  # and keep their order on the partition


async def test_a_database_outage_is_waited_out_not_skipped(env, stack) -> None:
    if stack.embedded is None:
        pytest.skip("stopping the database needs the embedded stack (it owns the process)")
    handler = Recorder()
    pipeline = _pipeline(env, handler)
    pid = f"p-{uuid.uuid4().hex[:8]}"
    stack.embedded.stop_mongo(kill=True)
    try:
        task = asyncio.create_task(pipeline.process([_withdrawn(pid)]))
        for _ in range(100):  # the first attempt fails after the 5 s server-selection timeout
            if not pipeline.health.pipeline_ok:
                break
            await asyncio.sleep(0.1)
        assert not task.done()  # waiting, not skipping
        assert pipeline.health.pipeline_ok is False
    finally:
        await asyncio.to_thread(stack.embedded.start_mongo)
    await asyncio.wait_for(task, 60)
    assert pipeline.health.pipeline_ok is True
    assert await env[1]["applied"].count_documents({"subject": pid}) == 1


async def test_events_a_service_does_not_act_on_cost_no_transaction(env) -> None:
    handler = Recorder()
    client, db, producer = env
    pipeline = BatchPipeline(
        service="test",
        client=client,
        db=db,
        producer=producer,
        handlers={TOPIC: handler},
        acts_on={TOPIC: frozenset({"product.submitted"})},
    )
    pid = f"p-{uuid.uuid4().hex[:8]}"
    await pipeline.process([_withdrawn(pid)])  # valid, but not a type it acts on
    assert handler.calls == 0
    assert await db["inbox"].count_documents({}) == 0
    assert await db["applied"].count_documents({"subject": pid}) == 0
