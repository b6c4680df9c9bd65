"""Catalog's handlers for SKU stock and platform actions over the in-memory repository."""

from __future__ import annotations

from typing import Any

import pytest

from vitrine.contract.events import (
    EventData,
    ProductPlatformDelisted,
    ProductPlatformReinstated,
    ProductStockUpdated,
    ProductSubmitted,
    ReviewApproved,
)
from vitrine.runtime.messaging.unit_of_work import InMemoryUnitOfWork, incoming
from vitrine_catalog.handlers import make_handlers
from vitrine_catalog.repository import InMemoryProducts, to_document, to_product

pytestmark = pytest.mark.handlers

SKUS = [
    {"sku_id": "red", "price_fen": 990, "stock": 1},
    {"sku_id": "blue", "price_fen": 1290, "stock": 1},
]


def submitted(pid: str = "p-1", **over: Any) -> ProductSubmitted:
    data: dict[str, Any] = {
        "product_id": pid,
        "merchant_id": "m-1",
        "title": "Tea cup",
        "category": "kitchen",
        "images": ["https://img.example/1.jpg"],
        "source": {"kind": "channels_shop"},
        "skus": SKUS,
        **over,
    }
    return ProductSubmitted.model_validate(data)


def stock(sku: str, value: int, pid: str = "p-1") -> ProductStockUpdated:
    return ProductStockUpdated(product_id=pid, merchant_id="m-1", sku_id=sku, stock=value)


async def run(repo: InMemoryProducts, topic: str, *data: EventData) -> InMemoryUnitOfWork:
    uow = InMemoryUnitOfWork(service="catalog")
    events = [incoming(d, d.product_id) for d in data]  # type: ignore[attr-defined]
    await make_handlers(lambda _: repo)[topic](events, uow)
    return uow


async def listed_repo(*pids: str) -> InMemoryProducts:
    repo = InMemoryProducts()
    await run(repo, "merchants.products", *(submitted(pid) for pid in pids))
    await run(
        repo, "review.decisions", *(ReviewApproved(product_id=pid, version=1) for pid in pids)
    )
    return repo


def types(uow: InMemoryUnitOfWork) -> list[str]:
    return [e.event_type for e in uow.events()]


async def test_stock_updates_fold_in_order_within_one_batch() -> None:
    repo = await listed_repo("p-1", "p-2")
    uow = await run(
        repo,
        "merchants.products",
        stock("red", 0),
        stock("blue", 0),
        stock("red", 0, pid="p-2"),
        stock("red", 4),
        stock("green", 1),
    )
    assert types(uow) == [
        "product.stock_changed",
        "product.stock_changed",
        "product.sold_out",
        "product.stock_changed",
        "product.stock_changed",
        "product.back_in_stock",
        "product.refused",
    ]
    p1 = repo.products["p-1"]
    assert p1.live is not None and p1.live.total_stock == 4 and p1.live.number == 1
    assert p1.last_version == 1  # no new version, no review
    assert repo.products["p-2"].status == "listed"


async def test_a_redelivered_stock_update_emits_nothing() -> None:
    repo = await listed_repo("p-1")
    event = incoming(stock("red", 0), "p-1")
    handle = make_handlers(lambda _: repo)["merchants.products"]
    await handle([event], InMemoryUnitOfWork())
    again = InMemoryUnitOfWork()
    await handle([event], again)
    assert again.duplicates == [event] and again.emitted == []


async def test_platform_actions_are_consumed_on_their_own_topic() -> None:
    repo = await listed_repo("p-1")
    delisted = ProductPlatformDelisted(product_id="p-1", reason="violation", note="report 88")
    uow = await run(repo, "platform.actions", delisted)
    [event] = uow.events("catalog.products", "product.delisted")
    assert event.reason == "violation"  # type: ignore[attr-defined]
    uow = await run(repo, "platform.actions", ProductPlatformReinstated(product_id="p-1"))
    assert types(uow) == ["product.listed"]
    uow = await run(
        repo,
        "platform.actions",
        ProductPlatformDelisted(product_id="p-1", reason="banned"),
        ProductPlatformReinstated(product_id="p-1"),
    )
    assert types(uow) == ["product.delisted", "product.refused"]
    assert repo.products["p-1"].status == "banned"


def test_the_document_round_trips_and_reads_older_documents() -> None:
    from vitrine_catalog import domain

    p = domain.submit(None, submitted()).state
    p = domain.approve(p, ReviewApproved(product_id="p-1", version=1)).state
    assert p is not None
    held = domain.platform_delist(
        p, ProductPlatformDelisted(product_id="p-1", reason="deposit_insufficient")
    ).state
    assert held is not None
    doc = to_document(held)
    assert (doc["status"], doc["status_code"], doc["listed"]) == ("deposit_insufficient", 14, False)
    assert to_product(doc) == held
    # A document written before SKUs and platform delisting existed.
    old = {
        "_id": "p-9",
        "merchant_id": "m-1",
        "last_version": 1,
        "live": {"number": 1, "content": {"price_fen": 500, "stock": 2, "title": "Old"}},
        "listed": False,
        "draft": None,
        "delisted_reason": "withdrawn",
    }
    legacy = to_product(old)
    assert legacy.withdrawn and legacy.status == "withdrawn"
    assert legacy.live is not None and legacy.live.skus[0]["sku_id"] == "default"
    assert legacy.live.total_stock == 2
