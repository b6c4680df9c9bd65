"""How the pipeline hands a batch to the handlers (``BatchPipeline._calls``): one call per
handler, topic by topic in the order the service lists them, each partition's order kept."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from vitrine.runtime.messaging.pipeline import BatchPipeline


async def shared(events: list[Any], uow: Any) -> None: ...


async def alone(events: list[Any], uow: Any) -> None: ...


def _pipeline() -> BatchPipeline:
    handlers: dict[str, Any] = {
        "merchants.products": shared,
        "review.decisions": alone,
        "platform.actions": shared,
    }
    return BatchPipeline(
        service="catalog",
        client=None,  # type: ignore[arg-type]
        db=None,  # type: ignore[arg-type]
        producer=None,  # type: ignore[arg-type]
        handlers=handlers,
        guard=SimpleNamespace(),  # type: ignore[arg-type]
    )


def _items(*spec: tuple[str, str]) -> list[tuple[Any, Any]]:
    return [(SimpleNamespace(topic=topic), name) for topic, name in spec]


def test_topics_sharing_a_handler_come_in_one_call_in_the_listed_topic_order() -> None:
    batch = _items(
        ("platform.actions", "delist-1"),
        ("review.decisions", "approve-1"),
        ("merchants.products", "submit-1"),
        ("platform.actions", "delist-2"),
        ("merchants.products", "submit-2"),
    )
    calls: list[Any] = _pipeline()._calls(batch)
    assert calls == [
        (shared, ["submit-1", "submit-2", "delist-1", "delist-2"]),
        (alone, ["approve-1"]),
    ]


def test_a_topic_absent_from_the_batch_costs_no_call() -> None:
    calls: list[Any] = _pipeline()._calls(_items(("review.decisions", "approve-1")))
    assert calls == [(alone, ["approve-1"])]
