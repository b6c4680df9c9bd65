"""Showcase follows the stock, with catalog and review running: only merchants' inputs and the
creator's request are published; ``product.sold_out``/``back_in_stock`` come from catalog."""

from __future__ import annotations

import pytest

from vitrine.tools.testing.services import running
from vitrine_catalog.service import DEFINITION as CATALOG
from vitrine_review.service import DEFINITION as REVIEW
from vitrine_showcase.service import DEFINITION as SHOWCASE

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

ITEMS = "showcase.items"
PRODUCTS = "catalog.products"


async def test_sold_out_suspends_and_back_in_stock_restores(stack, probe, world) -> None:
    u = world.uid()
    c, m, pid = f"c-{u}", f"m-{u}", f"p-{u}"

    async def stock(n: int) -> None:
        data = {"product_id": pid, "merchant_id": m, "sku_id": "blue", "stock": n}
        await world.send("merchants.products", "product.stock_updated", pid, data, "/merchants")

    async with (
        running(CATALOG, stack),
        running(REVIEW, stack),
        running(SHOWCASE, stack) as (_, http),
    ):
        await world.creator(c)
        submitted = {
            "product_id": pid,
            "merchant_id": m,
            "title": "Celadon tea cup",
            "category": "kitchen",
            "images": ["https://img.example/1.jpg"],
            "source": {"kind": "channels_shop"},
            "skus": [{"sku_id": "blue", "price_fen": 1990, "stock": 5}],
        }
        await world.send("merchants.products", "product.submitted", pid, submitted, "/merchants")
        await probe.wait_for(PRODUCTS, type="product.listed", subject=pid, timeout=60)
        await world.until(http, f"/products/{pid}")
        await world.until(http, f"/accounts/{c}", lambda a: len(a["shops"]) == 3)
        await world.add(c, pid)
        await probe.wait_for(ITEMS, type="showcase.item_added", subject=c)

        await stock(0)
        got = await probe.wait_for(ITEMS, type="showcase.item_suspended", subject=c)
        assert got[0].data == {"creator_id": c, "product_id": pid, "reason": "sold_out"}
        view = (await http.get(f"/creators/{c}/showcase?include_suspended=true")).json()
        assert view["items"][0]["suspensions"] == [{"reason": "sold_out"}]

        await stock(3)
        back = await probe.wait_for(ITEMS, type="showcase.item_restored", subject=c)
        assert back[0].data == {"creator_id": c, "product_id": pid, "reason": "sold_out"}
        view = (await http.get(f"/creators/{c}/showcase")).json()
        assert [i["product_id"] for i in view["items"]] == [pid]
