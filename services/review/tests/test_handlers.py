"""Review's handlers over in-memory cases: real dispatch, the queue, the duplicate index and
the audit trail, no Kafka, no MongoDB (the middle test tier)."""

from __future__ import annotations

import pytest

from vitrine.contract.events import (
    CatalogAuditCancelled,
    EventData,
    ProductListed,
    ReviewApproved,
    ReviewEscalated,
    ReviewManualDecided,
    ReviewRejected,
)
from vitrine.runtime.messaging.unit_of_work import FIXED_TIME, InMemoryUnitOfWork, incoming
from vitrine.tools.testing.handlers import review_requested
from vitrine_review.config import ReviewConfig
from vitrine_review.handlers import make_handlers
from vitrine_review.repository import InMemoryCases

pytestmark = pytest.mark.handlers


request = review_requested


async def run(store: InMemoryCases, topic: str, *data: EventData) -> InMemoryUnitOfWork:
    uow = InMemoryUnitOfWork(service="review")
    events = [incoming(d, d.product_id) for d in data]  # type: ignore[attr-defined]
    await make_handlers(ReviewConfig(), lambda _: store)[topic](events, uow)
    return uow


async def test_clean_draft_is_approved_audited_and_indexed_by_title() -> None:
    store = InMemoryCases()
    uow = await run(store, "catalog.products", request())
    assert uow.events("review.decisions") == [ReviewApproved(product_id="p-1", version=1)]
    [entry] = store.audit.values()
    assert (entry.outcome, entry.decided_by, entry.at) == ("approved", "rules", FIXED_TIME)
    assert list(store.titles.values()) == [["p-1"]] and store.queue == []


async def test_catalog_events_review_does_not_act_on_are_skipped() -> None:
    store = InMemoryCases()
    listed = ProductListed(
        product_id="p-1",
        merchant_id="m-1",
        version=1,
        source={"kind": "channels_shop"},  # type: ignore[arg-type]
        title="Tea cup",
        price_fen=1,
    )
    uow = await run(store, "catalog.products", listed)
    assert uow.emitted == [] and store.cases == {}


async def test_same_title_in_one_batch_escalates_the_second_product() -> None:
    store = InMemoryCases()
    uow = await run(store, "catalog.products", request("p-1"), request("p-2"))
    first, second = uow.events()
    assert isinstance(first, ReviewApproved) and isinstance(second, ReviewEscalated)
    assert [r.code for r in second.reasons] == ["possible_duplicate"]
    assert store.queue == ["p-2"]


async def test_escalation_then_manual_reject_leaves_the_queue() -> None:
    store = InMemoryCases()
    await run(store, "catalog.products", request(version=1))
    jump = request(version=2, price_fen=5000, live_version=1, live_price_fen=1000)
    uow = await run(store, "catalog.products", jump)
    assert [type(e) for e in uow.events()] == [ReviewEscalated] and store.queue == ["p-1"]
    verdict = ReviewManualDecided(product_id="p-1", version=2, reviewer_id="r-1", verdict="reject")
    uow = await run(store, "review.manual", verdict)
    [rejected] = uow.events()
    assert isinstance(rejected, ReviewRejected) and rejected.reasons[0].code == "manual_reject"
    assert store.queue == [] and len(store.audit) == 3


async def test_ignored_inputs_are_not_recorded_and_redeliveries_are_duplicates() -> None:
    store = InMemoryCases()
    event = incoming(request(), "p-1")
    handle = make_handlers(ReviewConfig(), lambda _: store)["catalog.products"]
    await handle([event], InMemoryUnitOfWork())
    again = InMemoryUnitOfWork()
    await handle([event], again)
    assert again.duplicates == [event] and again.emitted == []
    # stale version, a verdict on nothing escalated, a cancel with nothing pending: no-ops
    uow = await run(
        store,
        "catalog.products",
        request(version=1),
        CatalogAuditCancelled(product_id="p-1", merchant_id="m-1", version=1),
    )
    uow2 = await run(
        store,
        "review.manual",
        ReviewManualDecided(product_id="p-1", version=1, reviewer_id="r", verdict="approve"),
    )
    assert uow.emitted == uow2.emitted == [] and len(store.applied["p-1"]) == 1
