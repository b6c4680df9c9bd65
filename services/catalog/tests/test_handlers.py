"""Catalog's handlers over an in-memory repository: real dispatch, dedupe and emission,
no Kafka, no MongoDB (the middle test tier, between test_domain and the stack tests)."""

from __future__ import annotations

from typing import Any

import pytest

from vitrine.contract.events import (
    EventData,
    ProductListed,
    ProductRefused,
    ProductReviewRequested,
    ProductSubmitted,
    ProductWithdrawn,
    Reason,
    ReviewApproved,
    ReviewEscalated,
)
from vitrine.runtime.messaging.unit_of_work import InMemoryUnitOfWork, incoming
from vitrine.tools.testing.handlers import product_submitted
from vitrine_catalog.handlers import make_handlers
from vitrine_catalog.repository import InMemoryProducts

pytestmark = pytest.mark.handlers


def submitted(pid: str = "p-1", merchant: str = "m-1", **over: Any) -> ProductSubmitted:
    return product_submitted(pid, merchant, **{"category": None, **over})


async def run(repo: InMemoryProducts, topic: str, *data: EventData) -> InMemoryUnitOfWork:
    uow = InMemoryUnitOfWork(service="catalog")
    events = [incoming(d, d.product_id) for d in data]  # type: ignore[attr-defined]
    await make_handlers(lambda _: repo)[topic](events, uow)
    return uow


async def test_submit_then_approve_lists_the_draft_in_one_batch_each() -> None:
    repo = InMemoryProducts()
    uow = await run(repo, "merchants.products", submitted())
    [requested] = uow.events("catalog.products")
    assert isinstance(requested, ProductReviewRequested) and requested.version == 1
    assert repo.products["p-1"].draft is not None and len(repo.applied["p-1"]) == 1

    uow = await run(repo, "review.decisions", ReviewApproved(product_id="p-1", version=1))
    [listed] = uow.events()
    assert isinstance(listed, ProductListed) and listed.price_fen == 1990
    assert repo.products["p-1"].listed and repo.products["p-1"].draft is None


async def test_a_batch_folds_in_order_and_only_touches_what_it_names() -> None:
    repo = InMemoryProducts()
    uow = await run(
        repo,
        "merchants.products",
        submitted("p-1"),
        submitted("p-2"),
        submitted("p-1", title="Tea cup v2"),
        ProductWithdrawn(product_id="p-2", merchant_id="m-1"),
    )
    assert [(type(e).__name__, getattr(e, "version", None)) for e in uow.events()] == [
        ("ProductReviewRequested", 1),
        ("ProductReviewRequested", 1),
        ("ProductReviewRequested", 2),
        ("CatalogAuditCancelled", 1),
    ]
    assert repo.products["p-1"].draft is not None and repo.products["p-1"].draft.number == 2
    assert repo.products["p-2"].draft is None and not repo.products["p-2"].listed


async def test_a_redelivered_event_is_a_counted_duplicate_and_emits_nothing() -> None:
    repo = InMemoryProducts()
    event = incoming(submitted(), "p-1")
    handle = make_handlers(lambda _: repo)["merchants.products"]
    await handle([event], InMemoryUnitOfWork())
    again = InMemoryUnitOfWork()
    await handle([event], again)
    assert again.duplicates == [event] and again.emitted == []
    assert repo.products["p-1"].last_version == 1


async def test_another_merchants_command_is_refused_published_and_not_recorded() -> None:
    repo = InMemoryProducts()
    await run(repo, "merchants.products", submitted())
    before = (repo.products["p-1"], list(repo.applied["p-1"]))
    uow = await run(repo, "merchants.products", submitted(merchant="m-evil", price_fen=1))
    [refused] = uow.events("catalog.products", "product.refused")
    assert isinstance(refused, ProductRefused)
    assert refused.command == "product.submitted" and refused.merchant_id == "m-evil"
    assert [r.code for r in refused.reasons] == ["not_product_owner"]
    assert (repo.products["p-1"], repo.applied["p-1"]) == before


async def test_stale_and_escalated_decisions_change_nothing() -> None:
    repo = InMemoryProducts()
    await run(repo, "merchants.products", submitted())
    uow = await run(
        repo,
        "review.decisions",
        ReviewApproved(product_id="p-1", version=7),
        ReviewEscalated(product_id="p-1", version=1, reasons=[Reason(code="price_jump")]),
    )
    assert uow.emitted == [] and not repo.products["p-1"].listed
    assert len(repo.applied["p-1"]) == 1  # neither was recorded as applied
