"""Live stack-test support: a ``room`` that publishes what upstream services would and waits
until live's projections hold it (its database, read with a client of its own).

Policies are global, so every test gives its rules a unique third-party platform.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from vitrine.runtime import mongo
from vitrine.tools.testing.probe import Publisher, TopicProbe, cloud_event

JSON = dict[str, Any]
ROOMS = "live.rooms"


def uid() -> str:
    return uuid.uuid4().hex[:8]


def third_party(platform: str) -> JSON:
    return {"kind": "third_party_platform", "platform": platform}


class Room:
    """Publishes facts and creators' requests; waits for live to have projected them."""

    def __init__(self, publisher: Publisher, probe: TopicProbe, stack: Any) -> None:
        self.publisher = publisher
        self.probe = probe
        self.stack = stack

    uid = staticmethod(uid)
    third_party = staticmethod(third_party)

    async def send(self, topic: str, type: str, subject: str, data: JSON, source: str) -> JSON:
        event = cloud_event(type, subject, data, source=source)
        await self.publisher.send(topic, event)
        return event

    async def projected(
        self, collection: str, key: str, check: Callable[[JSON], bool] = lambda _: True
    ) -> JSON:
        """Wait until live's ``collection`` holds ``key`` and it passes ``check``."""
        client = mongo.connect(self.stack.mongo_url, app_name="live-tests")
        try:
            db = mongo.database(client, "live")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                doc = await db[collection].find_one({"_id": key})
                if doc is not None and check(doc):
                    return doc
                await asyncio.sleep(0.1)
        finally:
            await client.close()
        raise AssertionError(f"live never projected {collection}/{key}")

    # --- other services' facts ------------------------------------------------------------

    async def listed(self, pid: str, merchant: str, source: JSON | None = None) -> None:
        data = {
            "product_id": pid,
            "merchant_id": merchant,
            "version": 1,
            "source": source or {"kind": "channels_shop"},
            "title": "Tea cup",
            "price_fen": 1990,
        }
        await self.send("catalog.products", "product.listed", pid, data, "/vitrine/catalog")
        await self.projected("products", pid, lambda d: bool(d["listed"]))

    async def delisted(self, pid: str, merchant: str) -> None:
        data = {"product_id": pid, "merchant_id": merchant, "reason": "withdrawn"}
        await self.send("catalog.products", "product.delisted", pid, data, "/vitrine/catalog")

    async def in_showcase(self, cid: str, pid: str) -> None:
        data = {"creator_id": cid, "product_id": pid, "position": 0}
        await self.send("showcase.items", "showcase.item_added", cid, data, "/vitrine/showcase")
        await self.projected("showcase", f"{cid}/{pid}", lambda d: bool(d["active"]))

    async def shop(self, account: str, kind: str) -> None:
        data = {"account_id": account, "shop_id": f"s-{kind}-{account}", "shop_kind": kind}
        await self.send("accounts.shops", "shop.registered", account, data, "/accounts")
        await self.projected(
            "accounts", account, lambda d: any(s["shop_kind"] == kind for s in d["shops"])
        )

    async def offer(
        self, oid: str, pid: str, merchant: str, plan: str = "general", creators: list[str] = []
    ) -> None:
        data = {
            "offer_id": oid,
            "product_id": pid,
            "merchant_id": merchant,
            "commission_bps": 1000,
            "plan": plan,
            "creator_ids": creators,
            "effective_at": datetime.now(UTC).isoformat(),
        }
        await self.send(
            "distribution.offers", "offer.activated", oid, data, "/vitrine/distribution"
        )
        await self.projected("offers", oid, lambda d: d["plan"] == plan)

    async def offer_withdrawn(self, oid: str, pid: str, merchant: str) -> None:
        data = {"offer_id": oid, "product_id": pid, "merchant_id": merchant}
        await self.send(
            "distribution.offers", "offer.withdrawn", oid, data, "/vitrine/distribution"
        )

    async def in_force(self, policy_id: str, phase: str, rules: list[JSON]) -> None:
        now = datetime.now(UTC).isoformat()
        data = {
            "policy_id": policy_id,
            "phase": phase,
            "rules": rules,
            "effective_at": now,
            "enforce_existing_at": now,
        }
        await self.send(
            "compliance.rulings", "policy.in_force", policy_id, data, "/vitrine/compliance"
        )
        await self.projected("policies", policy_id, lambda d: phase in d["phases"])

    async def lifted(self, policy_id: str) -> None:
        data = {"policy_id": policy_id, "reason": "retracted"}
        await self.send(
            "compliance.rulings", "policy.lifted", policy_id, data, "/vitrine/compliance"
        )

    # --- creators' requests ---------------------------------------------------------------

    async def request(self, type: str, key: str, data: JSON) -> JSON:
        return await self.send("creators.live", type, key, data, "/creators-app")

    async def ask(
        self, type: str, key: str, data: JSON, answers: tuple[str, ...], pid: str | None = None
    ) -> Any:
        """Send a request; the answer of one of ``answers`` types it got."""
        sid = data["session_id"]
        before = len(self._answers(key, sid, answers, pid))
        await self.request(type, key, data)
        return await self.answer(key, sid, answers, pid, before)

    async def start(self, cid: str, sid: str, key: str | None = None) -> Any:
        data = {"creator_id": cid, "session_id": sid, "title": "直播"}
        answers = ("live.session_started", "live.session_refused")
        return await self.ask("live.start_requested", key or cid, data, answers)

    async def add(
        self, cid: str, sid: str, pid: str, offer_id: str | None = None, key: str | None = None
    ) -> Any:
        data: JSON = {"creator_id": cid, "session_id": sid, "product_id": pid}
        if offer_id:
            data["offer_id"] = offer_id
        answers = ("live.item_added", "live.item_refused")
        return await self.ask("live.add_requested", key or cid, data, answers, pid)

    async def answer(
        self, key: str, sid: str, types: tuple[str, ...], pid: str | None, before: int
    ) -> Any:
        """The first answer of these types for the session (and product) after ``before``."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = self._answers(key, sid, types, pid)
            if len(found) > before:
                return found[before]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {types} for {key}/{sid}/{pid}")

    def _answers(self, key: str, sid: str, types: tuple[str, ...], pid: str | None) -> list[Any]:
        return [
            r
            for r in self.probe.events(ROOMS, subject=key)
            if r.type in types
            and r.data.get("session_id") == sid
            and (pid is None or r.data.get("product_id") == pid)
        ]


@pytest.fixture
def room(publisher: Publisher, probe: TopicProbe, stack: Any) -> Room:
    return Room(publisher, probe, stack)
