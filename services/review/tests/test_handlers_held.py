"""Reviewers' verdicts consumed before the escalation they answer (a replay, or a lagging
consumer, reading ``review.manual`` first): held, then decided right after the version's
request with the ids an in-order run mints, or given up by catalog's event time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from vitrine.contract.envelope import Event
from vitrine.contract.events import EventData, ProductReviewRequested, ReviewManualDecided
from vitrine.runtime.messaging.unit_of_work import FIXED_TIME, InMemoryUnitOfWork, incoming
from vitrine_review.config import ReviewConfig
from vitrine_review.handlers import make_handlers
from vitrine_review.repository import InMemoryCases

pytestmark = pytest.mark.handlers

T0 = FIXED_TIME


def at(data: EventData, when: datetime = T0) -> Event[Any]:
    event = incoming(data, data.product_id)  # type: ignore[attr-defined]
    return Event(event.envelope.model_copy(update={"time": when}), data)


def jump(pid: str = "p-1", version: int = 2, when: datetime = T0, **over: Any) -> Event[Any]:
    """A request review escalates: the price tripled against the live version."""
    data: dict[str, Any] = {
        "product_id": pid,
        "merchant_id": "m-1",
        "version": version,
        "title": "Tea cup",
        "category": "kitchen",
        "images": ["https://img.example/1.jpg"],
        "price_fen": 3000,
        "live_version": version - 1,
        "live_price_fen": 1000,
        "source": {"kind": "channels_shop"},
        **over,
    }
    return at(ProductReviewRequested.model_validate(data), when)


def verdict(pid: str = "p-1", version: int = 2, when: datetime = T0) -> Event[Any]:
    data = ReviewManualDecided(product_id=pid, version=version, verdict="approve", reviewer_id="r")
    return at(data, when + timedelta(minutes=5))


Output = tuple[str, str, str | None, Any]


async def run(store: InMemoryCases, topic: str, *events: Event[Any], **config: Any) -> list[Output]:
    uow = InMemoryUnitOfWork(service="review")
    await make_handlers(ReviewConfig(**config), lambda _: store)[topic](list(events), uow)
    return [(e.id, e.type, e.causationid, e.data) for _, e in uow.emitted]


async def test_a_verdict_before_its_escalation_is_held_then_applied_with_in_order_ids() -> None:
    req, ok = jump(), verdict()
    in_order = InMemoryCases()
    expected = await run(in_order, "catalog.products", req)
    expected += await run(in_order, "review.manual", ok)
    assert [o[1] for o in expected] == ["review.escalated", "review.approved"]

    replay = InMemoryCases()
    assert await run(replay, "review.manual", ok) == []
    assert list(replay.held.held) == [ok.envelope.dedupe_key] and replay.cases == {}
    assert await run(replay, "catalog.products", req) == expected
    assert replay.cases == in_order.cases and replay.queue == [] and replay.held.held == {}
    assert replay.applied == in_order.applied
    assert sorted(e.outcome for e in replay.audit.values()) == ["approved", "escalated"]


async def test_a_held_verdict_on_a_version_the_rules_decided_is_ignored() -> None:
    store = InMemoryCases()
    await run(store, "review.manual", verdict(version=1))
    clean = jump(version=1, live_version=None, live_price_fen=None)  # nothing to compare
    outputs = await run(store, "catalog.products", clean)
    assert [o[1] for o in outputs] == ["review.approved"] and store.held.held == {}


async def test_a_verdict_on_a_version_seen_is_ignored_at_once_not_held() -> None:
    store = InMemoryCases()
    await run(store, "catalog.products", jump(version=2), jump(version=3))
    assert await run(store, "review.manual", verdict(version=2)) == []
    assert store.held.held == {} and store.queue == ["p-1"]


async def test_a_held_verdict_is_given_up_when_catalogs_event_time_passes_its_wait() -> None:
    store = InMemoryCases()
    await run(store, "review.manual", verdict())
    await run(store, "catalog.products", jump("p-2", when=T0 + timedelta(hours=23)))
    assert len(store.held.held) == 1
    await run(store, "catalog.products", jump("p-3", when=T0 + timedelta(hours=25)))
    assert store.held.held == {}
    outputs = await run(store, "catalog.products", jump(when=T0 + timedelta(hours=25)))
    assert [o[1] for o in outputs] == ["review.escalated"] and "p-1" in store.queue


async def test_the_wait_is_configurable_and_a_verdict_past_it_is_not_held() -> None:
    store = InMemoryCases()
    await run(store, "catalog.products", jump("p-2", when=T0 + timedelta(hours=2)))
    assert await run(store, "review.manual", verdict(), manual_wait_hours=1) == []
    assert store.held.held == {}
    await run(store, "review.manual", verdict())  # 24 h by default: held
    assert len(store.held.held) == 1
