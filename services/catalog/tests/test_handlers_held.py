"""Review verdicts consumed before the submission they answer (a replay, or a lagging
consumer, reading ``review.decisions`` first): held, then decided right after the submission
with the ids an in-order run mints, or given up by the submissions topic's event time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from vitrine.contract.envelope import Event
from vitrine.contract.events import EventData, ProductSubmitted, ReviewApproved, ReviewRejected
from vitrine.contract.events.base import Reason
from vitrine.runtime.messaging.unit_of_work import FIXED_TIME, InMemoryUnitOfWork, incoming
from vitrine_catalog.handlers import make_handlers
from vitrine_catalog.repository import InMemoryProducts

pytestmark = pytest.mark.handlers

T0 = FIXED_TIME


def at(data: EventData, when: datetime = T0) -> Event[Any]:
    event = incoming(data, data.product_id)  # type: ignore[attr-defined]
    return Event(event.envelope.model_copy(update={"time": when}), data)


def submitted(pid: str = "p-1", when: datetime = T0, **over: Any) -> Event[Any]:
    data: dict[str, Any] = {
        "product_id": pid,
        "merchant_id": "m-1",
        "title": "Tea cup",
        "images": ["https://img.example/1.jpg"],
        "price_fen": 1990,
        "stock": 10,
        "source": {"kind": "channels_shop"},
        **over,
    }
    return at(ProductSubmitted.model_validate(data), when)


def approved(pid: str = "p-1", version: int = 1, when: datetime = T0) -> Event[Any]:
    return at(ReviewApproved(product_id=pid, version=version), when + timedelta(seconds=1))


Output = tuple[str, str, str | None, Any]


async def run(repo: InMemoryProducts, topic: str, *events: Event[Any]) -> list[Output]:
    uow = InMemoryUnitOfWork(service="catalog")
    await make_handlers(lambda _: repo)[topic](list(events), uow)
    return [(e.id, e.type, e.causationid, e.data) for _, e in uow.emitted]


async def test_a_verdict_before_its_submission_is_held_then_applied_with_in_order_ids() -> None:
    sub, ok = submitted(), approved()
    in_order = InMemoryProducts()
    expected = await run(in_order, "merchants.products", sub)
    expected += await run(in_order, "review.decisions", ok)

    replay = InMemoryProducts()
    assert await run(replay, "review.decisions", ok) == []
    assert list(replay.held.held) == [ok.envelope.dedupe_key] and "p-1" not in replay.products
    outputs = await run(replay, "merchants.products", sub)

    assert [o[1] for o in outputs] == ["product.review_requested", "product.listed"]
    assert outputs == expected
    assert replay.products["p-1"] == in_order.products["p-1"] and replay.held.held == {}
    assert replay.applied["p-1"] == in_order.applied["p-1"]  # the verdict is recorded applied
    again = InMemoryUnitOfWork(service="catalog")
    await make_handlers(lambda _: replay)["review.decisions"]([ok], again)
    assert again.duplicates == [ok] and again.emitted == []


async def test_held_verdicts_follow_their_versions_through_one_batch() -> None:
    first, second = submitted(), submitted(title="Tea cup v2", when=T0 + timedelta(minutes=1))
    rejected = at(
        ReviewRejected(product_id="p-1", version=1, reasons=[Reason(code="banned_term")]),
        T0 + timedelta(seconds=30),
    )
    ok = approved(version=2, when=T0 + timedelta(minutes=1))
    in_order = InMemoryProducts()
    expected = await run(in_order, "merchants.products", first)
    expected += await run(in_order, "review.decisions", rejected)
    expected += await run(in_order, "merchants.products", second)
    expected += await run(in_order, "review.decisions", ok)

    replay = InMemoryProducts()
    await run(replay, "review.decisions", ok, rejected)
    outputs = await run(replay, "merchants.products", first, second)
    assert outputs == expected
    assert [o[1] for o in outputs] == [
        "product.review_requested",
        "product.rejected",
        "product.review_requested",
        "product.listed",
    ]


async def test_a_verdict_on_a_superseded_version_is_ignored_at_once_not_held() -> None:
    repo = InMemoryProducts()
    await run(repo, "merchants.products", submitted(), submitted(title="v2"))
    assert await run(repo, "review.decisions", approved(version=1)) == []
    assert repo.held.held == {} and not repo.products["p-1"].listed


async def test_a_held_verdict_is_given_up_when_the_submissions_event_time_passes_its_wait() -> None:
    repo = InMemoryProducts()
    await run(repo, "review.decisions", approved())
    # another product's submission 23 h later: still waiting
    await run(repo, "merchants.products", submitted("p-2", when=T0 + timedelta(hours=23)))
    assert len(repo.held.held) == 1
    await run(repo, "merchants.products", submitted("p-3", when=T0 + timedelta(hours=25)))
    assert repo.held.held == {}
    # its submission, consumed after the wait: the verdict is gone, the draft waits for review
    outputs = await run(repo, "merchants.products", submitted(when=T0 + timedelta(hours=25)))
    assert [o[1] for o in outputs] == ["product.review_requested"]
    assert not repo.products["p-1"].listed


async def test_a_verdict_already_past_its_wait_is_not_held() -> None:
    repo = InMemoryProducts()
    await run(repo, "merchants.products", submitted("p-2", when=T0 + timedelta(hours=30)))
    assert await run(repo, "review.decisions", approved()) == []
    assert repo.held.held == {}


async def test_the_wait_is_configurable() -> None:
    repo = InMemoryProducts()
    handlers = make_handlers(lambda _: repo, verdict_wait=timedelta(hours=1))
    await handlers["review.decisions"]([approved()], InMemoryUnitOfWork())
    later = submitted("p-2", when=T0 + timedelta(hours=2))
    await handlers["merchants.products"]([later], InMemoryUnitOfWork())
    assert repo.held.held == {}
