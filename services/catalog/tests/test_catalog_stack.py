"""Catalog against the real stack, with review's decisions published by the test itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from vitrine.tools.testing.probe import cloud_event
from vitrine.tools.testing.services import running
from vitrine_catalog.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(stack) -> AsyncIterator[httpx.AsyncClient]:
    """One catalog instance for the module (a restart costs a consumer-group rebalance)."""
    async with running(DEFINITION, stack) as (_, client):
        yield client


def _product(pid: str, merchant: str = "m-1", **over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "product_id": pid,
        "merchant_id": merchant,
        "title": "Tea cup",
        "category": "kitchen",
        "images": ["https://img.example/1.jpg"],
        "price_fen": 1990,
        "stock": 10,
        "source": {"kind": "channels_shop"},
    }
    data.update(over)
    return data


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
