"""Records of a type the service does not act on are passed over before decoding
(``BatchPipeline.process`` with ``acts_on``, ``vitrine.contract.envelope.peek_type``): counted
as consumed, never decoded, handled or dead-lettered by this service."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from vitrine.runtime import metrics
from vitrine.runtime.messaging.pipeline import BatchPipeline
from vitrine.tools.testing.probe import cloud_event

pytestmark = pytest.mark.asyncio
TOPIC = "merchants.products"


def _record(event: dict[str, Any] | bytes, key: str) -> ConsumerRecord[Any, Any]:
    value = event if isinstance(event, bytes) else json.dumps(event).encode()
    return ConsumerRecord(TOPIC, 0, 0, 0, 0, key.encode(), value, None, 0, 0, [])


def _consumed(type_name: str) -> float:
    return float(metrics.CONSUMED.labels("skipper", TOPIC, type_name)._value.get())


async def test_types_not_acted_on_are_counted_and_never_decoded_or_dead_lettered() -> None:
    calls: list[Any] = []

    async def handler(events: list[Any], uow: Any) -> None:
        calls.append(events)

    pipeline = BatchPipeline(
        service="skipper",
        client=None,  # type: ignore[arg-type]
        db=None,  # type: ignore[arg-type]
        producer=None,  # type: ignore[arg-type]  # a dead letter would need it: none may be sent
        handlers={TOPIC: handler},
        acts_on={TOPIC: frozenset({"product.submitted"})},
        guard=object(),  # type: ignore[arg-type]
    )
    before = _consumed("product.withdrawn")
    valid = cloud_event("product.withdrawn", "p-1", {"product_id": "p-1", "merchant_id": "m-1"})
    invalid = cloud_event("product.withdrawn", "p-2", {"product_id": 42})  # bad data, wrong key
    await pipeline.process([_record(valid, "p-1"), _record(invalid, "not-p-2")])
    assert calls == []
    assert _consumed("product.withdrawn") == before + 2
