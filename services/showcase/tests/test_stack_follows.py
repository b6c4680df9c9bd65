"""Showcase follows distribution's offers and the accounts' shops, against the real stack."""

from __future__ import annotations

import pytest

from vitrine.tools.testing.services import running
from vitrine_showcase.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

ITEMS = "showcase.items"
REPORTS = "compliance.reports"


async def test_offer_unavailable_while_withdrawn_or_not_on_the_plan(stack, probe, world) -> None:
    u = world.uid()
    c, m, pid, oid = f"c-{u}", f"m-{u}", f"p-{u}", f"o-{u}"
    async with running(DEFINITION, stack) as (_, http):
        await world.creator(c)
        await world.listed(pid, m)
        await world.offer(oid, pid, m, "targeted", [c])
        await world.until(http, f"/offers/{oid}")
        await world.until(http, f"/products/{pid}")
        await world.until(http, f"/accounts/{c}", lambda a: len(a["shops"]) == 3)
        await world.add(c, pid, oid)
        await probe.wait_for(ITEMS, type="showcase.item_added", subject=c, offer_id=oid)

        # re-published without the creator: held offer_unavailable
        await world.offer(oid, pid, m, "targeted", [f"other-{u}"])
        got = await probe.wait_for(ITEMS, type="showcase.item_suspended", subject=c)
        assert got[0].data == {"creator_id": c, "product_id": pid, "reason": "offer_unavailable"}
        view = (await http.get(f"/creators/{c}/showcase?include_suspended=true")).json()
        assert view["items"][0]["suspensions"] == [{"reason": "offer_unavailable"}]

        # a general plan names everyone: back
        await world.offer(oid, pid, m, "general")
        back = await probe.wait_for(ITEMS, type="showcase.item_restored", subject=c)
        assert back[0].data["reason"] == "offer_unavailable"

        # withdrawn and delisted: two causes, restored only when both are gone
        await world.offer_withdrawn(oid, pid, m)
        await probe.wait_for(ITEMS, type="showcase.item_suspended", subject=c, count=2)
        await world.delisted(pid, m)
        await probe.wait_for(ITEMS, type="showcase.item_suspended", subject=c, count=3)
        await world.listed(pid, m, version=2)
        await world.until(http, f"/products/{pid}", lambda p: p["version"] == 2)
        await probe.settle()
        assert len(probe.events(ITEMS, type="showcase.item_restored", subject=c)) == 1
        await world.offer(oid, pid, m, "general")  # re-published: revived
        await probe.wait_for(ITEMS, type="showcase.item_restored", subject=c, count=2)
        view = (await http.get(f"/creators/{c}/showcase")).json()
        assert [i["product_id"] for i in view["items"]] == [pid]


async def test_shop_closed_rechecks_require_shop(stack, probe, world) -> None:
    """``shop.closed`` holds the creator's items for a ``require_shop`` rule enforcing now,
    with its policy id; ``shop.registered`` brings them back."""
    u = world.uid()
    c, m, pid, pol = f"c-{u}", f"m-{u}", f"p-{u}", f"pol-shop-{u}"
    channels = f"s-channels_shop-{c}"
    async with running(DEFINITION, stack) as (_, http):
        await world.placed(http, c, pid, m)
        await world.in_force(
            pol,
            "enforce_existing",
            [{"kind": "require_shop", "surfaces": ["showcase"], "shop_kind": "channels_shop"}],
        )
        try:
            await probe.wait_for(REPORTS, subject=pol, phase="enforce_existing", timeout=60)
            await world.shop_closed(c, channels)
            got = await probe.wait_for(ITEMS, type="showcase.item_suspended", subject=c)
            assert got[0].data == world.policy_hold(c, pid, pol)
            await world.shop(c, "channels_shop")
            back = await probe.wait_for(ITEMS, type="showcase.item_restored", subject=c)
            assert back[0].data["policy_id"] == pol
        finally:
            await world.lifted(pol)
            await probe.wait_for(REPORTS, subject=pol, phase="lifted", timeout=60)
