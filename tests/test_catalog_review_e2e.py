"""Catalog and review together against the real stack (Kafka + MongoDB), both in-process.

Only inputs are published by the tests (``merchants.products``, ``review.manual``), except
where a test impersonates review to prove that a stale decision changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from vitrine.tools.testing.probe import JSON, Publisher, TopicProbe, cloud_event
from vitrine.tools.testing.services import running
from vitrine.tools.testing.stack import StackInfo
from vitrine_catalog.service import DEFINITION as CATALOG
from vitrine_review.service import DEFINITION as REVIEW

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

PRODUCTS = "merchants.products"
CATALOG_OUT = "catalog.products"
DECISIONS = "review.decisions"
MANUAL = "review.manual"


class Services:
    def __init__(self, catalog: httpx.AsyncClient, review: httpx.AsyncClient) -> None:
        self.catalog = catalog
        self.review = review

    async def product(self, pid: str) -> JSON:
        resp = await self.catalog.get(f"/products/{pid}")
        assert resp.status_code == 200, resp.text
        body: JSON = resp.json()
        return body

    async def decisions(self, pid: str) -> list[JSON]:
        resp = await self.review.get(f"/products/{pid}/decisions")
        assert resp.status_code == 200, resp.text
        items: list[JSON] = resp.json()["decisions"]
        return items

    async def queue(self) -> list[JSON]:
        resp = await self.review.get("/queue", params={"limit": 1000})
        assert resp.status_code == 200, resp.text
        items: list[JSON] = resp.json()["items"]
        return items


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def services(stack: StackInfo) -> AsyncIterator[Services]:
    async with (
        running(CATALOG, stack) as (_, catalog_http),
        running(REVIEW, stack) as (_, review_http),
    ):
        yield Services(catalog_http, review_http)


def new_id(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def product(pid: str, merchant: str, **over: Any) -> JSON:
    data: JSON = {
        "product_id": pid,
        "merchant_id": merchant,
        "title": f"Celadon tea cup {pid}",
        "category": "kitchen",
        "images": ["https://img.example/1.jpg"],
        "price_fen": 1990,
        "stock": 10,
        "source": {"kind": "channels_shop"},
        "attributes": {"glaze": "celadon"},
    }
    data.update(over)
    return data


def submitted(pid: str, merchant: str, **over: Any) -> JSON:
    return cloud_event("product.submitted", pid, product(pid, merchant, **over))


def manual(pid: str, version: int, verdict: str = "approve", **over: Any) -> JSON:
    data: JSON = {"product_id": pid, "version": version, "reviewer_id": "rev-1", "verdict": verdict}
    data.update(over)
    return cloud_event("review.manual_decided", pid, data)


def codes(record: Any) -> list[str]:
    return [r["code"] for r in record.data["reasons"]]


async def submit_and_list(
    publisher: Publisher, probe: TopicProbe, pid: str, merchant: str, **over: Any
) -> None:
    await publisher.send(PRODUCTS, submitted(pid, merchant, **over))
    await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid, version=1)


async def test_submit_is_reviewed_and_listed(services: Services, probe, publisher) -> None:
    pid, merchant = new_id(), new_id("m")
    await publisher.send(PRODUCTS, submitted(pid, merchant))
    [approved] = await probe.wait_for(DECISIONS, type="review.approved", subject=pid)
    assert approved.data == {"product_id": pid, "version": 1, "reasons": []}
    [listed] = await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid)
    assert listed.data["version"] == 1 and listed.data["merchant_id"] == merchant
    assert listed.data["price_fen"] == 1990 and listed.data["source"] == {"kind": "channels_shop"}
    # causation chain: submitted → review_requested → approved → listed, one correlation id
    [requested] = probe.events(CATALOG_OUT, type="product.review_requested", subject=pid)
    assert approved.event["causationid"] == requested.event["id"]
    assert listed.event["causationid"] == approved.event["id"]
    assert listed.event["correlationid"] == requested.event["correlationid"]

    state = await services.product(pid)
    assert state["listed"] is True and state["live"]["number"] == 1 and state["draft"] is None
    [entry] = await services.decisions(pid)
    assert (entry["decision_id"], entry["outcome"], entry["decided_by"]) == (
        f"{pid}:1:1",
        "approved",
        "rules",
    )


async def test_rejected_with_every_applicable_code(services: Services, probe, publisher) -> None:
    pid, merchant = new_id(), new_id("m")
    title = "最佳" + "茶" * 68
    assert len(title) == 70
    await publisher.send(PRODUCTS, submitted(pid, merchant, title=title, price_fen=-1))
    [decision] = await probe.wait_for(DECISIONS, type="review.rejected", subject=pid)
    assert sorted(codes(decision)) == ["banned_term", "invalid_price", "title_too_long"]
    [rejected] = await probe.wait_for(CATALOG_OUT, type="product.rejected", subject=pid)
    assert rejected.data["version"] == 1
    assert sorted(codes(rejected)) == ["banned_term", "invalid_price", "title_too_long"]

    state = await services.product(pid)
    assert state["listed"] is False and state["draft"] is None and state["live"] is None
    [entry] = await services.decisions(pid)
    assert entry["outcome"] == "rejected"
    assert {r["code"] for r in entry["reasons"]} == {
        "banned_term",
        "invalid_price",
        "title_too_long",
    }


async def test_missing_fields_and_bad_images_rejected(services: Services, probe, publisher) -> None:
    pid, merchant = new_id(), new_id("m")
    event = submitted(pid, merchant, images=["http://img.example/1.jpg"])
    for field in ("title", "category", "source", "price_fen"):
        del event["data"][field]
    await publisher.send(PRODUCTS, event)
    [decision] = await probe.wait_for(DECISIONS, type="review.rejected", subject=pid)
    fields = sorted(r["field"] for r in decision.data["reasons"] if r["code"] == "missing_field")
    assert fields == ["category", "price_fen", "source", "title"]
    assert "invalid_image_url" in codes(decision)
    await probe.wait_for(CATALOG_OUT, type="product.rejected", subject=pid)


async def test_edit_of_listed_product_is_reviewed_while_live_stays(
    services: Services, probe, publisher
) -> None:
    pid, merchant = new_id(), new_id("m")
    await submit_and_list(publisher, probe, pid, merchant, price_fen=1000)

    # v2: new title and a 60 % price rise → escalated, so the draft visibly waits
    await publisher.send(
        PRODUCTS, submitted(pid, merchant, title="Celadon cup, gift box", price_fen=1600)
    )
    [requested] = await probe.wait_for(
        CATALOG_OUT, type="product.review_requested", subject=pid, version=2
    )
    assert requested.data["live_version"] == 1 and requested.data["live_price_fen"] == 1000
    [escalated] = await probe.wait_for(DECISIONS, type="review.escalated", subject=pid)
    assert escalated.data["version"] == 2 and codes(escalated) == ["price_jump"]
    state = await services.product(pid)
    assert state["listed"] is True
    assert state["live"]["number"] == 1 and state["live"]["content"]["price_fen"] == 1000
    assert state["draft"]["number"] == 2 and state["draft"]["content"]["price_fen"] == 1600

    await publisher.send(MANUAL, manual(pid, 2))
    [listed] = await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid, version=2)
    assert listed.data["title"] == "Celadon cup, gift box" and listed.data["price_fen"] == 1600
    state = await services.product(pid)
    assert state["listed"] is True and state["live"]["number"] == 2 and state["draft"] is None

    # v3 is rejected: v2 stays on sale
    await publisher.send(
        PRODUCTS, submitted(pid, merchant, title="顶级 celadon cup", price_fen=1600)
    )
    [rejected] = await probe.wait_for(CATALOG_OUT, type="product.rejected", subject=pid, version=3)
    assert codes(rejected) == ["banned_term"]
    state = await services.product(pid)
    assert state["listed"] is True and state["live"]["number"] == 2 and state["draft"] is None
    assert not probe.events(CATALOG_OUT, type="product.delisted", subject=pid)


async def test_small_edit_is_approved_automatically(services: Services, probe, publisher) -> None:
    pid, merchant = new_id(), new_id("m")
    await submit_and_list(publisher, probe, pid, merchant, price_fen=1000)
    await publisher.send(PRODUCTS, submitted(pid, merchant, price_fen=1500))  # exactly +50 %
    [listed] = await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid, version=2)
    assert listed.data["price_fen"] == 1500
    assert not probe.events(DECISIONS, type="review.escalated", subject=pid)


async def test_stale_decision_changes_nothing(services: Services, probe, publisher) -> None:
    pid, merchant = new_id(), new_id("m")
    await submit_and_list(publisher, probe, pid, merchant, price_fen=1000)
    await publisher.send(PRODUCTS, submitted(pid, merchant, price_fen=1100))
    await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid, version=2)
    await publisher.send(PRODUCTS, submitted(pid, merchant, price_fen=9000))  # v3 escalated
    await probe.wait_for(DECISIONS, type="review.escalated", subject=pid, version=3)
    before = await services.product(pid)

    for kind, version in (("review.approved", 1), ("review.rejected", 2), ("review.approved", 2)):
        await publisher.send(
            DECISIONS,
            cloud_event(
                kind,
                pid,
                {"product_id": pid, "version": version, "reasons": []},
                source="/vitrine/review",
            ),
        )
    await probe.settle()
    assert len(probe.events(CATALOG_OUT, type="product.listed", subject=pid)) == 2
    assert not probe.events(CATALOG_OUT, type="product.rejected", subject=pid)
    assert await services.product(pid) == before
    assert before["live"]["number"] == 2 and before["draft"]["number"] == 3


async def test_escalation_then_manual_approve_lists(services: Services, probe, publisher) -> None:
    pid, merchant = new_id(), new_id("m")
    await submit_and_list(publisher, probe, pid, merchant, price_fen=1000)
    await publisher.send(PRODUCTS, submitted(pid, merchant, price_fen=400))  # -60 %
    [escalated] = await probe.wait_for(DECISIONS, type="review.escalated", subject=pid)
    assert escalated.data["version"] == 2 and codes(escalated) == ["price_jump"]
    queued = [i for i in await services.queue() if i["product_id"] == pid]
    assert [(i["version"], [r["code"] for r in i["reasons"]]) for i in queued] == [
        (2, ["price_jump"])
    ]
    assert queued[0]["merchant_id"] == merchant

    await publisher.send(MANUAL, manual(pid, 2, reasons=[{"code": "checked", "message": "sale"}]))
    [approved] = await probe.wait_for(DECISIONS, type="review.approved", subject=pid, version=2)
    assert codes(approved) == ["checked"]
    [listed] = await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid, version=2)
    assert listed.data["price_fen"] == 400
    assert not [i for i in await services.queue() if i["product_id"] == pid]
    trail = await services.decisions(pid)
    assert [(d["version"], d["outcome"], d["decided_by"]) for d in trail] == [
        (1, "approved", "rules"),
        (2, "escalated", "rules"),
        (2, "approved", "reviewer:rev-1"),
    ]


async def test_manual_reject_keeps_live_version(services: Services, probe, publisher) -> None:
    pid, merchant = new_id(), new_id("m")
    await submit_and_list(publisher, probe, pid, merchant, price_fen=1000)
    await publisher.send(PRODUCTS, submitted(pid, merchant, price_fen=100_000))
    await probe.wait_for(DECISIONS, type="review.escalated", subject=pid, version=2)
    await publisher.send(MANUAL, manual(pid, 2, "reject"))
    [rejected] = await probe.wait_for(CATALOG_OUT, type="product.rejected", subject=pid, version=2)
    assert codes(rejected) == ["manual_reject"]
    state = await services.product(pid)
    assert state["listed"] is True and state["live"]["number"] == 1 and state["draft"] is None


async def test_queue_is_oldest_first(services: Services, probe, publisher) -> None:
    merchant = new_id("m")
    first, second = new_id(), new_id()
    for pid in (first, second):
        await submit_and_list(publisher, probe, pid, merchant, price_fen=1000)
        await publisher.send(PRODUCTS, submitted(pid, merchant, price_fen=5000))
        await probe.wait_for(DECISIONS, type="review.escalated", subject=pid)
    items = await services.queue()
    order = [i["product_id"] for i in items if i["product_id"] in (first, second)]
    assert order == [first, second]
    stamps = [i["escalated_at"] for i in items]
    assert stamps == sorted(stamps)


async def test_manual_decision_for_non_escalated_version_ignored(
    services: Services, probe, publisher
) -> None:
    auto, pending, merchant = new_id(), new_id(), new_id("m")
    await submit_and_list(publisher, probe, auto, merchant)
    await publisher.send(MANUAL, manual(auto, 1, "reject"))  # approved by the rules already

    await submit_and_list(publisher, probe, pending, merchant, price_fen=1000)
    await publisher.send(PRODUCTS, submitted(pending, merchant, price_fen=3000))
    await probe.wait_for(DECISIONS, type="review.escalated", subject=pending, version=2)
    await publisher.send(MANUAL, manual(pending, 1, "reject"))  # not the escalated version
    await publisher.send(MANUAL, manual(pending, 3))  # a version that does not exist

    await probe.settle()
    for pid in (auto, pending):
        assert not probe.events(DECISIONS, type="review.rejected", subject=pid)
        assert not probe.events(CATALOG_OUT, type="product.rejected", subject=pid)
        assert (await services.product(pid))["listed"] is True
    assert len(probe.events(DECISIONS, type="review.approved", subject=pending)) == 1
    assert [i["version"] for i in await services.queue() if i["product_id"] == pending] == [2]
    assert len(await services.decisions(auto)) == 1


async def test_audit_cancelled_leaves_the_queue(services: Services, probe, publisher) -> None:
    pid, merchant = new_id(), new_id("m")
    await submit_and_list(publisher, probe, pid, merchant, price_fen=1000)
    await publisher.send(PRODUCTS, submitted(pid, merchant, price_fen=3000))
    await probe.wait_for(DECISIONS, type="review.escalated", subject=pid, version=2)
    cancel = cloud_event(
        "product.audit_cancelled", pid, {"product_id": pid, "merchant_id": merchant}
    )
    await publisher.send(PRODUCTS, cancel)
    await probe.wait_for(CATALOG_OUT, type="product.audit_cancelled", subject=pid, version=2)

    async def gone() -> bool:
        return not [i for i in await services.queue() if i["product_id"] == pid]

    for _ in range(100):
        if await gone():
            break
        await probe.settle(0.1)
    assert await gone()
    await publisher.send(MANUAL, manual(pid, 2))
    await probe.settle()
    assert len(probe.events(CATALOG_OUT, type="product.listed", subject=pid)) == 1
    state = await services.product(pid)
    assert state["live"]["number"] == 1 and state["draft"] is None
    assert [d["outcome"] for d in await services.decisions(pid)] == [
        "approved",
        "escalated",
        "cancelled",
    ]


async def test_possible_duplicate_is_escalated(services: Services, probe, publisher) -> None:
    merchant, first, second, other = new_id("m"), new_id(), new_id(), new_id()
    await submit_and_list(publisher, probe, first, merchant, title="Blue Ceramic Mug")
    await publisher.send(PRODUCTS, submitted(second, merchant, title="blue ceramic  mug!"))
    [escalated] = await probe.wait_for(DECISIONS, type="review.escalated", subject=second)
    assert codes(escalated) == ["possible_duplicate"]
    assert first in escalated.data["reasons"][0]["message"]
    # another merchant may use the same title
    await submit_and_list(publisher, probe, other, new_id("m"), title="Blue Ceramic Mug")


async def test_withdraw_delists(services: Services, probe, publisher) -> None:
    pid, merchant = new_id(), new_id("m")
    await submit_and_list(publisher, probe, pid, merchant)
    withdrawn = cloud_event("product.withdrawn", pid, {"product_id": pid, "merchant_id": merchant})
    await publisher.send(PRODUCTS, withdrawn)
    [delisted] = await probe.wait_for(CATALOG_OUT, type="product.delisted", subject=pid)
    assert delisted.data["reason"] == "withdrawn" and delisted.data["version"] == 1
    state = await services.product(pid)
    assert state["listed"] is False and state["delisted_reason"] == "withdrawn"


async def test_other_merchant_cannot_withdraw(services: Services, probe, publisher) -> None:
    pid, owner, intruder = new_id(), new_id("m"), new_id("m")
    await submit_and_list(publisher, probe, pid, owner)
    attempt = cloud_event("product.withdrawn", pid, {"product_id": pid, "merchant_id": intruder})
    await publisher.send(PRODUCTS, attempt)
    [refused] = await probe.wait_for(CATALOG_OUT, type="product.refused", subject=pid)
    assert refused.data["merchant_id"] == intruder
    assert refused.data["command"] == "product.withdrawn"
    assert codes(refused) == ["not_product_owner"]
    await probe.settle()
    assert not probe.events(CATALOG_OUT, type="product.delisted", subject=pid)
    state = await services.product(pid)
    assert state["listed"] is True and state["merchant_id"] == owner


async def test_redelivered_inputs_change_nothing(services: Services, probe, publisher) -> None:
    pid, merchant = new_id(), new_id("m")
    inputs: list[tuple[str, JSON]] = []

    async def twice(topic: str, event: JSON) -> None:
        inputs.append((topic, event))
        await publisher.send_many(topic, [event, event])

    await twice(PRODUCTS, submitted(pid, merchant, price_fen=1000))
    await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid, version=1)
    await twice(PRODUCTS, submitted(pid, merchant, price_fen=2500))
    await probe.wait_for(DECISIONS, type="review.escalated", subject=pid, version=2)
    await twice(MANUAL, manual(pid, 2))
    await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid, version=2)
    await twice(
        PRODUCTS,
        cloud_event("product.withdrawn", pid, {"product_id": pid, "merchant_id": merchant}),
    )
    await probe.wait_for(CATALOG_OUT, type="product.delisted", subject=pid)
    await probe.settle()

    def counts() -> dict[str, int]:
        seen: dict[str, int] = {}
        for topic in (CATALOG_OUT, DECISIONS):
            for r in probe.events(topic, subject=pid):
                key = f"{r.type}:v{r.data.get('version')}"
                seen[key] = seen.get(key, 0) + 1
        return seen

    expected = {
        "product.review_requested:v1": 1,
        "review.approved:v1": 1,
        "product.listed:v1": 1,
        "product.review_requested:v2": 1,
        "review.escalated:v2": 1,
        "review.approved:v2": 1,
        "product.listed:v2": 1,
        "product.delisted:v2": 1,
    }
    assert counts() == expected
    state, trail = await services.product(pid), await services.decisions(pid)

    # the whole scenario delivered once more, in order, long after it was applied
    for topic, event in inputs:
        await publisher.send(topic, event)
    await probe.settle()
    assert counts() == expected
    assert await services.product(pid) == state
    assert await services.decisions(pid) == trail
    assert state["listed"] is False and state["live"]["number"] == 2


async def test_malformed_input_goes_to_dlq_and_does_not_block(
    services: Services, probe, publisher
) -> None:
    pid, merchant = new_id(), new_id("m")
    key = pid.encode()
    ce = [("content-type", b"application/cloudevents+json")]
    good = submitted(pid, merchant)
    bad: list[tuple[str, bytes]] = [
        ("not_json", b"{not json"),
        (
            "unknown_type",
            json.dumps(cloud_event("product.exploded", pid, {"product_id": pid})).encode(),
        ),
        ("key_mismatch", json.dumps(submitted(new_id(), merchant)).encode()),
        ("invalid_data", json.dumps(submitted(pid, merchant, price_fen="1990")).encode()),
        (
            "forbidden_key",
            json.dumps(submitted(pid, merchant, attributes={"$where": "1"})).encode(),
        ),
    ]
    for _, value in bad:
        await publisher.send_raw(PRODUCTS, value, key, ce)
    await publisher.send(PRODUCTS, good)  # same key, same partition, behind the bad ones

    [listed] = await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid)
    assert listed.data["version"] == 1
    dead = await probe.wait_for(f"{PRODUCTS}.dlq", subject=pid, count=len(bad))
    assert [d.headers["dlq-reason"] for d in dead] == [reason for reason, _ in bad]
    for record, (_, value) in zip(dead, bad, strict=True):
        assert record.value == value and record.key == pid
        assert record.headers["content-type"] == "application/cloudevents+json"
        assert record.headers["dlq-service"] == "catalog"
        assert record.headers["dlq-topic"] == PRODUCTS
        assert record.headers["dlq-error"]
        assert int(record.headers["dlq-offset"]) >= 0 and "dlq-partition" in record.headers
    # only the valid submission made it through
    assert len(probe.events(CATALOG_OUT, type="product.review_requested", subject=pid)) == 1


def stock_updated(pid: str, merchant: str, sku_id: str, stock: int) -> JSON:
    data = {"product_id": pid, "merchant_id": merchant, "sku_id": sku_id, "stock": stock}
    return cloud_event("product.stock_updated", pid, data)


async def test_skus_are_reviewed_listed_and_stocked_without_review(
    services: Services, probe, publisher
) -> None:
    pid, merchant = new_id(), new_id("m")
    skus = [
        {"sku_id": "cup-white", "price_fen": 2990, "stock": 1, "attributes": {"colour": "白"}},
        {"sku_id": "cup-celadon", "price_fen": 3990, "stock": 0},
    ]
    await submit_and_list(publisher, probe, pid, merchant, skus=skus)
    [listed] = probe.events(CATALOG_OUT, type="product.listed", subject=pid)
    assert listed.data["price_fen"] == 2990 and listed.data["total_stock"] == 1
    assert [s["sku_id"] for s in listed.data["skus"]] == ["cup-white", "cup-celadon"]

    # The last white cup sells: stock without review, sold out, then back in stock.
    await publisher.send(PRODUCTS, stock_updated(pid, merchant, "cup-white", 0))
    await probe.wait_for(CATALOG_OUT, type="product.sold_out", subject=pid)
    assert (await services.product(pid))["status_code"] == 12
    await publisher.send(PRODUCTS, stock_updated(pid, merchant, "cup-celadon", 4))
    [back] = await probe.wait_for(CATALOG_OUT, type="product.back_in_stock", subject=pid)
    assert back.data["total_stock"] == 4
    assert len(probe.events(CATALOG_OUT, type="product.review_requested", subject=pid)) == 1

    # A new version: the celadon price jumps (escalated per SKU), a new SKU is no jump.
    skus_v2 = [
        {"sku_id": "cup-white", "price_fen": 3100, "stock": 0},
        {"sku_id": "cup-celadon", "price_fen": 7990, "stock": 4},
        {"sku_id": "cup-black", "price_fen": 99_000, "stock": 1},
    ]
    await publisher.send(PRODUCTS, submitted(pid, merchant, skus=skus_v2))
    [esc] = await probe.wait_for(DECISIONS, type="review.escalated", subject=pid)
    assert [(r["code"], r["field"]) for r in esc.data["reasons"]] == [
        ("price_jump", "skus[1].price_fen")
    ]
    state = await services.product(pid)
    assert (state["status"], state["audit_state"], state["draft_version"]) == (
        "listed",
        "pending",
        2,
    )
    await publisher.send(MANUAL, manual(pid, 2))
    [_, v2] = await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid, count=2)
    assert v2.data["version"] == 2 and v2.data["price_fen"] == 3100
    assert v2.data["total_stock"] == 5


async def test_platform_delisting_follows_through_review(
    services: Services, probe, publisher
) -> None:
    pid, merchant = new_id(), new_id("m")
    await submit_and_list(publisher, probe, pid, merchant)
    action = {"product_id": pid, "reason": "brand_expired"}
    await publisher.send("platform.actions", cloud_event("product.platform_delisted", pid, action))
    [gone] = await probe.wait_for(CATALOG_OUT, type="product.delisted", subject=pid)
    assert gone.data["reason"] == "brand_expired"
    # The merchant renews the brand and resubmits: approved, live, but listed only on
    # reinstatement.
    await publisher.send(PRODUCTS, submitted(pid, merchant, title=f"Renewed cup {pid}"))
    await probe.wait_for(DECISIONS, type="review.approved", subject=pid, version=2)
    await probe.settle(1.0)
    assert len(probe.events(CATALOG_OUT, type="product.listed", subject=pid)) == 1
    state = await services.product(pid)
    assert (state["status"], state["status_code"], state["live"]["number"]) == (
        "brand_expired",
        15,
        2,
    )
    await publisher.send(
        "platform.actions", cloud_event("product.platform_reinstated", pid, {"product_id": pid})
    )
    [_, again] = await probe.wait_for(CATALOG_OUT, type="product.listed", subject=pid, count=2)
    assert again.data["version"] == 2
    assert (await services.product(pid))["status_code"] == 5
