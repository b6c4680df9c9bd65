"""Catalog against the real stack, with review's decisions published by the test itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from vitrine.tools.testing.handlers import product_submitted
from vitrine.tools.testing.probe import cloud_event
from vitrine.tools.testing.services import running
from vitrine_catalog.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(stack) -> AsyncIterator[httpx.AsyncClient]:
    """One catalog instance for the module (a restart costs a consumer-group rebalance)."""
    async with running(DEFINITION, stack) as (_, client):
        yield client


def _product(pid: str, merchant: str = "m-1") -> dict[str, object]:
    return product_submitted(pid, merchant).model_dump(mode="json", exclude_unset=True)


async def test_submit_approve_lists(http, probe, publisher) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    await publisher.send("merchants.products", cloud_event("product.submitted", pid, _product(pid)))
    req = await probe.wait_for("catalog.products", type="product.review_requested", subject=pid)
    assert req[0].data["version"] == 1
    await publisher.send(
        "review.decisions",
        cloud_event(
            "review.approved", pid, {"product_id": pid, "version": 1}, source="/vitrine/review"
        ),
    )
    listed = await probe.wait_for("catalog.products", type="product.listed", subject=pid)
    assert listed[0].data["version"] == 1
    resp = await http.get(f"/products/{pid}")
    assert resp.json()["listed"] is True


async def test_merchant_products_limit_is_clamped(http, probe, publisher) -> None:
    merchant = f"m-{uuid.uuid4().hex[:8]}"
    pids = [f"p-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for pid in pids:
        await publisher.send(
            "merchants.products", cloud_event("product.submitted", pid, _product(pid, merchant))
        )
    for pid in pids:
        await probe.wait_for("catalog.products", type="product.review_requested", subject=pid)
    url = f"/merchants/{merchant}/products"
    for limit, expected in (("abc", 2), ("-1", 1), ("0", 1), ("1", 1), ("5000", 2)):
        resp = await http.get(url, params={"limit": limit})
        assert resp.status_code == 200, (limit, resp.text)
        assert len(resp.json()["products"]) == expected, limit


async def _listed(pid: str, probe, publisher, **over: object) -> None:
    data = {**_product(pid), **over}
    await publisher.send("merchants.products", cloud_event("product.submitted", pid, data))
    await probe.wait_for("catalog.products", type="product.review_requested", subject=pid)
    await publisher.send(
        "review.decisions",
        cloud_event(
            "review.approved", pid, {"product_id": pid, "version": 1}, source="/vitrine/review"
        ),
    )
    await probe.wait_for("catalog.products", type="product.listed", subject=pid)


def _stock(pid: str, sku: str, stock: int, merchant: str = "m-1") -> dict[str, object]:
    data = {"product_id": pid, "merchant_id": merchant, "sku_id": sku, "stock": stock}
    return cloud_event("product.stock_updated", pid, data)


async def test_stock_updates_without_review_sell_out_and_refuse(http, probe, publisher) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    skus = [
        {"sku_id": "s-250g", "price_fen": 1990, "stock": 1},
        {"sku_id": "s-500g", "price_fen": 3590, "stock": 0},
    ]
    await _listed(pid, probe, publisher, skus=skus)
    for event in (
        _stock(pid, "s-250g", 0),
        _stock(pid, "s-1kg", 3),
        _stock(pid, "s-250g", 5, merchant="m-2"),
        _stock(pid, "s-500g", 2),
    ):
        await publisher.send("merchants.products", event)
    await probe.wait_for("catalog.products", type="product.back_in_stock", subject=pid)
    [sold_out] = probe.events("catalog.products", type="product.sold_out", subject=pid)
    assert sold_out.data["version"] == 1
    changed = probe.events("catalog.products", type="product.stock_changed", subject=pid)
    assert [c.data["total_stock"] for c in changed] == [0, 2]
    refused = await probe.wait_for("catalog.products", type="product.refused", subject=pid, count=2)
    assert sorted(r.data["reasons"][0]["code"] for r in refused) == [
        "not_product_owner",
        "unknown_sku",
    ]
    assert not probe.events("catalog.products", type="product.review_requested", subject=pid)[1:]
    doc = (await http.get(f"/products/{pid}")).json()
    assert (doc["status"], doc["status_code"], doc["total_stock"]) == ("listed", 5, 2)

    # A product that never went live takes no stock update.
    draft = f"p-{uuid.uuid4().hex[:8]}"
    await publisher.send(
        "merchants.products", cloud_event("product.submitted", draft, _product(draft))
    )
    await publisher.send("merchants.products", _stock(draft, "default", 1))
    [refusal] = await probe.wait_for("catalog.products", type="product.refused", subject=draft)
    assert refusal.data["reasons"][0]["code"] == "product_not_listed"
    doc = (await http.get(f"/products/{draft}")).json()
    assert (doc["status"], doc["audit_state"], doc["draft_version"]) == ("draft_only", "pending", 1)
    assert "status_code" not in doc


async def test_platform_delisting_reinstatement_and_ban(http, probe, publisher) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    await _listed(pid, probe, publisher)
    platform = "/trust-and-safety"
    delisted = {"product_id": pid, "reason": "violation", "note": "counterfeit report"}
    await publisher.send(
        "platform.actions",
        cloud_event("product.platform_delisted", pid, delisted, source=platform),
    )
    [event] = await probe.wait_for("catalog.products", type="product.delisted", subject=pid)
    assert event.data["reason"] == "violation"
    doc = (await http.get(f"/products/{pid}")).json()
    assert (doc["status"], doc["status_code"], doc["listed"]) == ("violation", 13, False)

    await publisher.send(
        "platform.actions",
        cloud_event("product.platform_reinstated", pid, {"product_id": pid}, source=platform),
    )
    relisted = await probe.wait_for("catalog.products", type="product.listed", subject=pid, count=2)
    assert relisted[-1].data["version"] == 1

    banned = {"product_id": pid, "reason": "banned"}
    await publisher.send(
        "platform.actions", cloud_event("product.platform_delisted", pid, banned, source=platform)
    )
    await probe.wait_for("catalog.products", type="product.delisted", subject=pid, count=2)
    await publisher.send(
        "platform.actions",
        cloud_event("product.platform_reinstated", pid, {"product_id": pid}, source=platform),
    )
    await publisher.send("merchants.products", cloud_event("product.submitted", pid, _product(pid)))
    refused = await probe.wait_for("catalog.products", type="product.refused", subject=pid, count=2)
    assert {r.data["command"] for r in refused} == {
        "product.platform_reinstated",
        "product.submitted",
    }
    assert {r.data["reasons"][0]["code"] for r in refused} == {"product_banned"}
    doc = (await http.get(f"/products/{pid}")).json()
    assert (doc["status"], doc["status_code"]) == ("banned", 20)


async def test_new_products_are_inserted_and_one_created_meanwhile_fails_the_batch(stack) -> None:
    """The repository inserts what its transaction looked up and did not find (cheaper than an
    upsert); if another writer created it in between, the write fails (and the pipeline
    retries the batch, which then finds it) rather than overwriting it."""
    from pymongo.errors import BulkWriteError

    from vitrine.runtime import mongo
    from vitrine.runtime.messaging.unit_of_work import UnitOfWork
    from vitrine_catalog.domain import Product
    from vitrine_catalog.repository import PRODUCTS, MongoProducts

    client = mongo.connect(stack.mongo_url, app_name="catalog-repo-test")
    db = mongo.database(client, f"catalog_repo_{uuid.uuid4().hex[:8]}")
    try:
        uow = UnitOfWork(db, None, "catalog")
        first = MongoProducts(uow)
        assert await first.load(["p-new"]) == ({}, {})
        await first.save([Product("p-new", "m-1", last_version=1)], {"p-new": ["1 k"]})
        again = MongoProducts(uow)
        found, applied = await again.load(["p-new"])
        assert found["p-new"].last_version == 1 and applied == {"p-new": ["1 k"]}
        await again.save([Product("p-new", "m-1", last_version=2)], {})  # exists: replaced
        assert (await db[PRODUCTS].find_one({"_id": "p-new"}) or {})["last_version"] == 2

        racing = MongoProducts(uow)
        await racing.load(["p-race"])
        await db[PRODUCTS].insert_one({"_id": "p-race", "merchant_id": "m-2", "last_version": 5})
        with pytest.raises(BulkWriteError):
            await racing.save([Product("p-race", "m-1", last_version=1)], {})
        assert (await db[PRODUCTS].find_one({"_id": "p-race"}) or {})["last_version"] == 5
    finally:
        await client.drop_database(db.name)
        await client.close()
