"""Showcase stack-test support: a ``world`` that publishes what upstream services would.

Policies are global by nature, so every test gives its rules a unique third-party platform
(or lifts its ``require_shop`` policies before it ends), and its creators hold a shop of
every kind unless the test is about lacking one: a rule left in force elsewhere in the
session cannot then change this suite's outcomes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from vitrine.runtime import mongo
from vitrine.tools.testing.http import until
from vitrine.tools.testing.probe import Publisher, TopicProbe, cloud_event
from vitrine_showcase.domain import item_key

JSON = dict[str, Any]
ITEMS = "showcase.items"
REPORTS = "compliance.reports"


def uid() -> str:
    return uuid.uuid4().hex[:8]


def codes(record: Any) -> set[str]:
    return {r["code"] for r in record.data.get("reasons", [])}


def policy_hold(creator: str, product: str, policy: str) -> JSON:
    """The data of ``showcase.item_suspended`` / ``item_restored`` for ``policy``'s hold."""
    return {"creator_id": creator, "product_id": product, "reason": "policy", "policy_id": policy}


def third_party(platform: str) -> JSON:
    return {"kind": "third_party_platform", "platform": platform}


def disallow(platform: str) -> JSON:
    return {"kind": "disallow_source", "surfaces": ["showcase"], "sources": [third_party(platform)]}


class World:
    """Publishes upstream events (remembering them, for redelivery) and waits for effects."""

    def __init__(self, publisher: Publisher, probe: TopicProbe) -> None:
        self.publisher = publisher
        self.probe = probe
        self.sent: list[tuple[str, JSON]] = []
        self._asked: dict[tuple[str, str], int] = {}

    uid = staticmethod(uid)
    until = staticmethod(until)
    codes = staticmethod(codes)
    policy_hold = staticmethod(policy_hold)
    third_party = staticmethod(third_party)
    disallow = staticmethod(disallow)

    async def send(self, topic: str, type: str, subject: str, data: JSON, source: str) -> JSON:
        event = cloud_event(type, subject, data, source=source)
        await self.publisher.send(topic, event)
        self.sent.append((topic, event))
        return event

    # --- other services' facts ------------------------------------------------------------

    async def listed(
        self, pid: str, merchant: str, source: JSON | None = None, version: int = 1
    ) -> JSON:
        return await self.send(
            "catalog.products",
            "product.listed",
            pid,
            {
                "product_id": pid,
                "merchant_id": merchant,
                "version": version,
                "source": source or {"kind": "channels_shop"},
                "title": "Tea cup",
                "price_fen": 1990,
            },
            "/vitrine/catalog",
        )

    async def delisted(self, pid: str, merchant: str) -> JSON:
        return await self.send(
            "catalog.products",
            "product.delisted",
            pid,
            {"product_id": pid, "merchant_id": merchant, "reason": "withdrawn"},
            "/vitrine/catalog",
        )

    async def shop(
        self, account: str, kind: str, *, spb: bool = False, shop_id: str | None = None
    ) -> JSON:
        return await self.send(
            "accounts.shops",
            "shop.registered",
            account,
            {
                "account_id": account,
                "shop_id": shop_id or f"s-{kind}-{account}",
                "shop_kind": kind,
                "service_provider_built": spb,
            },
            "/accounts",
        )

    async def shop_closed(self, account: str, shop_id: str) -> JSON:
        return await self.send(
            "accounts.shops",
            "shop.closed",
            account,
            {"account_id": account, "shop_id": shop_id},
            "/accounts",
        )

    async def creator(self, cid: str) -> None:
        """A creator holding a shop of every kind (satisfies any ``require_shop``)."""
        for kind in ("channels_shop", "wechat_mini_shop", "mini_program"):
            await self.shop(cid, kind)

    async def offer(
        self,
        oid: str,
        pid: str,
        merchant: str,
        plan: str = "general",
        creator_ids: list[str] | None = None,
    ) -> JSON:
        return await self.send(
            "distribution.offers",
            "offer.activated",
            oid,
            {
                "offer_id": oid,
                "product_id": pid,
                "merchant_id": merchant,
                "commission_bps": 1000,
                "plan": plan,
                "creator_ids": creator_ids or [],
                "effective_at": datetime.now(UTC).isoformat(),
            },
            "/vitrine/distribution",
        )

    async def offer_withdrawn(self, oid: str, pid: str, merchant: str) -> JSON:
        return await self.send(
            "distribution.offers",
            "offer.withdrawn",
            oid,
            {"offer_id": oid, "product_id": pid, "merchant_id": merchant},
            "/vitrine/distribution",
        )

    async def in_force(
        self,
        policy_id: str,
        phase: str,
        rules: list[JSON],
        exemptions: JSON | None = None,
    ) -> JSON:
        now = datetime.now(UTC).isoformat()
        return await self.send(
            "compliance.rulings",
            "policy.in_force",
            policy_id,
            {
                "policy_id": policy_id,
                "phase": phase,
                "rules": rules,
                "exemptions": exemptions or {},
                "effective_at": now,
                "enforce_existing_at": now,
            },
            "/vitrine/compliance",
        )

    async def lifted(self, policy_id: str) -> JSON:
        return await self.send(
            "compliance.rulings",
            "policy.lifted",
            policy_id,
            {"policy_id": policy_id, "reason": "retracted"},
            "/vitrine/compliance",
        )

    # --- creators' requests ---------------------------------------------------------------

    async def add(self, cid: str, pid: str, offer_id: str | None = None) -> JSON:
        self._asked[(cid, pid)] = self._asked.get((cid, pid), 0) + 1
        data: JSON = {"creator_id": cid, "product_id": pid}
        if offer_id is not None:
            data["offer_id"] = offer_id
        return await self.send(
            "creators.showcase", "showcase.add_requested", cid, data, "/creators-app"
        )

    async def placed(
        self, http: Any, cid: str, pid: str, merchant: str, source: JSON | None = None
    ) -> None:
        """Creator ``cid`` (every shop kind) has merchant's product ``pid`` in its showcase,
        once the service has seen the product, the creator's shops and the addition."""
        await self.creator(cid)
        await self.listed(pid, merchant, source)
        await self.until(http, f"/products/{pid}")
        await self.until(http, f"/accounts/{cid}", lambda a: len(a["shops"]) == 3)
        await self.add(cid, pid)
        await self.probe.wait_for(ITEMS, type="showcase.item_added", subject=cid)

    async def remove(self, cid: str, pid: str) -> JSON:
        return await self.send(
            "creators.showcase",
            "showcase.remove_requested",
            cid,
            {"creator_id": cid, "product_id": pid},
            "/creators-app",
        )

    async def move(self, cid: str, pid: str, position: int) -> JSON:
        return await self.send(
            "creators.showcase",
            "showcase.move_requested",
            cid,
            {"creator_id": cid, "product_id": pid, "position": position},
            "/creators-app",
        )

    # --- waiting ----------------------------------------------------------------------------

    async def outcome(self, cid: str, pid: str, timeout: float = 30.0) -> Any:
        """The item_added or item_refused answering the latest add of ``pid`` by ``cid``
        (answers come in order: one creator's requests share a partition)."""
        n = self._asked.get((cid, pid), 1)
        found = await self.probe.wait_for(
            ITEMS,
            subject=cid,
            product_id=pid,
            count=n,
            timeout=timeout,
            where=lambda r: r.type in ("showcase.item_added", "showcase.item_refused"),
        )
        return found[n - 1]


class Bulk:
    """Items written straight into the showcase's database, as if added over months."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack

    @staticmethod
    def documents(u: str, platform: str, n: int, per_creator: int = 100) -> list[JSON]:
        docs = []
        for i in range(n):
            creator, product = f"bc{i // per_creator}-{u}", f"bp{i}-{u}"
            docs.append(
                {
                    "_id": item_key(creator, product),
                    "creator_id": creator,
                    "product_id": product,
                    "merchant_id": f"bm{i % 50}-{u}",
                    "source": third_party(platform),
                    "position": i % per_creator,
                    "holds": [],
                    "offer_id": None,
                }
            )
        return docs

    async def _items(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        client = mongo.connect(self.stack.mongo_url, app_name="showcase-tests")
        try:
            return await work(mongo.database(client, "showcase")["items"])
        finally:
            await client.close()

    async def insert(self, docs: list[JSON]) -> float:
        started = time.perf_counter()
        await self._items(lambda items: items.insert_many(docs, ordered=False))
        return time.perf_counter() - started

    async def count_held(self, hold: str) -> int:
        return int(await self._items(lambda items: items.count_documents({"holds": hold})))

    async def holds(self, keys: list[str]) -> dict[str, list[str]]:
        async def read(items: Any) -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for i in range(0, len(keys), 5000):
                cursor = items.find({"_id": {"$in": keys[i : i + 5000]}}, {"holds": 1})
                out.update({d["_id"]: d["holds"] async for d in cursor.batch_size(10_000)})
            return out

        return dict(await self._items(read))


@pytest.fixture
def bulk(stack: Any) -> Bulk:
    return Bulk(stack)


@pytest.fixture
def world(publisher: Publisher, probe: TopicProbe) -> World:
    return World(publisher, probe)
