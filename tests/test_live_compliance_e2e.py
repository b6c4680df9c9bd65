"""Compliance and live together: a policy with a rule on surface ``live`` completes only after
live's enforcement report, with live's count; its impact counts the live carts it touches."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from vitrine.runtime import mongo
from vitrine.tools.testing.probe import cloud_event
from vitrine.tools.testing.services import running
from vitrine_compliance.service import DEFINITION as COMPLIANCE
from vitrine_live.service import DEFINITION as LIVE

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

RULINGS = "compliance.rulings"
PAST = datetime(2022, 11, 30, tzinfo=UTC).isoformat()


async def _projected(stack: Any, db: str, collection: str, key: str) -> None:
    client = mongo.connect(stack.mongo_url, app_name="e2e")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if await mongo.database(client, db)[collection].find_one({"_id": key}):
                return
            await asyncio.sleep(0.1)
    finally:
        await client.close()
    raise AssertionError(f"{db}.{collection}/{key} never appeared")


async def test_a_rule_on_live_waits_for_lives_report(stack, probe, publisher) -> None:
    u = uuid.uuid4().hex[:8]
    c, m, pid, sid, pol = f"c-{u}", f"m-{u}", f"p-{u}", f"s-{u}", f"pol-{u}"
    source = {"kind": "third_party_platform", "platform": f"tp-{u}"}

    async def send(topic: str, type: str, subject: str, data: dict[str, Any]) -> None:
        await publisher.send(topic, cloud_event(type, subject, data))

    async with running(LIVE, stack), running(COMPLIANCE, stack):
        await send(
            "catalog.products",
            "product.listed",
            pid,
            {
                "product_id": pid,
                "merchant_id": m,
                "version": 1,
                "source": source,
                "title": "Tea cup",
                "price_fen": 990,
            },
        )
        await send(
            "showcase.items",
            "showcase.item_added",
            c,
            {"creator_id": c, "product_id": pid, "position": 0},
        )
        await _projected(stack, "live", "showcase", f"{c}/{pid}")
        await _projected(stack, "live", "products", pid)
        await send(
            "creators.live",
            "live.start_requested",
            c,
            {"creator_id": c, "session_id": sid, "title": "直播"},
        )
        await send(
            "creators.live",
            "live.add_requested",
            c,
            {"creator_id": c, "session_id": sid, "product_id": pid},
        )
        await probe.wait_for("live.rooms", type="live.item_added", subject=c, product_id=pid)
        await _projected(stack, "compliance", "cart_items", f"{sid}|{pid}")
        await _projected(stack, "compliance", "products", pid)

        rule = {"kind": "disallow_source", "surfaces": ["live"], "sources": [source]}
        await send(
            "platform.policies",
            "policy.announced",
            pol,
            {
                "policy_id": pol,
                "title": "No goods from this platform in live rooms",
                "announced_at": PAST,
                "effective_at": PAST,
                "enforce_existing_at": PAST,
                "rules": [rule],
            },
        )
        (impact,) = await probe.wait_for(RULINGS, type="policy.impact_assessed", subject=pol)
        assert (impact.data["cart_items"], impact.data["items"], impact.data["creators"]) == (
            1,
            0,
            1,
        )
        (report,) = await probe.wait_for(
            "compliance.reports", type="enforcement.reported", subject=pol
        )
        assert report.data["service"] == "live" and report.data["affected"] == 1
        (held,) = await probe.wait_for(
            "live.rooms", type="live.item_suspended", subject=c, product_id=pid
        )
        assert held.data["policy_id"] == pol
        (done,) = await probe.wait_for(RULINGS, type="policy.enforcement_completed", subject=pol)
        assert done.data == {"policy_id": pol, "phase": "enforce_existing", "counts": {"live": 1}}

        await send("platform.policies", "policy.retracted", pol, {"policy_id": pol})
        await probe.wait_for("live.rooms", type="live.item_restored", subject=c, product_id=pid)
        done = await probe.wait_for(
            RULINGS, type="policy.enforcement_completed", subject=pol, count=2
        )
        assert done[-1].data["phase"] == "lifted" and done[-1].data["counts"] == {"live": 1}
