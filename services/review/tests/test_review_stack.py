"""Review alone against the real stack: the test plays catalog (``catalog.products``) and
reviewers (``review.manual``), with the rule lists injected through ``make_definition``."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from vitrine.tools.testing.handlers import as_cloud_event, review_requested
from vitrine.tools.testing.probe import cloud_event
from vitrine.tools.testing.services import running
from vitrine_review.config import ReviewConfig
from vitrine_review.service import make_definition

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

CONFIG = ReviewConfig(banned_terms=["miracle"], prohibited_categories=["fireworks"])


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(stack) -> AsyncIterator[httpx.AsyncClient]:
    """One review instance for the module (a restart costs a consumer-group rebalance), on a
    database of its own, fresh: its first batch meets only collections setup created."""
    fresh = f"review-{uuid.uuid4().hex[:8]}"
    async with running(make_definition(CONFIG), stack, mongo_db=fresh) as (_, http):
        yield http


def requested(pid: str, version: int = 1, **over: Any) -> dict[str, Any]:
    data = review_requested(
        pid, version, **{"merchant_id": f"m-{pid}", "title": f"Cup {pid}", **over}
    )
    return as_cloud_event(data, source="/vitrine/catalog")


async def test_injected_configuration_and_manual_queue(http, probe, publisher) -> None:
    sfx = uuid.uuid4().hex[:8]
    banned, prohibited, default_term, jump = (f"{k}-{sfx}" for k in ("b", "c", "d", "j"))
    await publisher.send_many(
        "catalog.products",
        [
            requested(banned, title="Miracle cup"),
            requested(prohibited, category="Fireworks"),
            requested(default_term, title="最佳 cup"),  # not banned by this configuration
            requested(jump, version=3, price_fen=3000, live_version=2, live_price_fen=1000),
        ],
    )
    [b] = await probe.wait_for("review.decisions", type="review.rejected", subject=banned)
    assert [r["code"] for r in b.data["reasons"]] == ["banned_term"]
    [c] = await probe.wait_for("review.decisions", type="review.rejected", subject=prohibited)
    assert [r["code"] for r in c.data["reasons"]] == ["prohibited_category"]
    await probe.wait_for("review.decisions", type="review.approved", subject=default_term)
    [e] = await probe.wait_for("review.decisions", type="review.escalated", subject=jump)
    assert e.data["version"] == 3

    queue = (await http.get("/queue")).json()["items"]
    assert [i["version"] for i in queue if i["product_id"] == jump] == [3]

    manual = {"product_id": jump, "version": 3, "reviewer_id": "r-1", "verdict": "reject"}
    decided = cloud_event("review.manual_decided", jump, manual)
    await publisher.send_many("review.manual", [decided, decided])  # redelivered
    [r] = await probe.wait_for("review.decisions", type="review.rejected", subject=jump)
    assert [x["code"] for x in r.data["reasons"]] == ["manual_reject"]

    trail = (await http.get(f"/products/{jump}/decisions")).json()["decisions"]
    assert [(d["decision_id"], d["outcome"]) for d in trail] == [
        (f"{jump}:3:1", "escalated"),
        (f"{jump}:3:2", "rejected"),
    ]
    assert (await http.get(f"/products/none-{sfx}/decisions")).status_code == 404

    await probe.settle()
    assert len(probe.events("review.decisions", subject=jump)) == 2
    for pid in (banned, prohibited, default_term, jump):
        assert len(probe.events("review.decisions", subject=pid)) == (2 if pid == jump else 1)
        assert not probe.events("catalog.products.dlq", subject=pid)


async def test_invalid_manual_verdict_is_dead_lettered(http, probe, publisher) -> None:
    pid = f"p-{uuid.uuid4().hex[:8]}"
    bad = cloud_event(
        "review.manual_decided",
        pid,
        {"product_id": pid, "version": 1, "reviewer_id": "r-1", "verdict": "maybe"},
    )
    await publisher.send("review.manual", bad)
    [dead] = await probe.wait_for("review.manual.dlq", subject=pid)
    assert dead.headers["dlq-reason"] == "invalid_data"
    assert dead.headers["dlq-service"] == "review"


async def test_health_and_asyncapi(http) -> None:
    assert (await http.get("/healthz")).json()["service"] == "review"
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    spec = (await http.get("/asyncapi.json")).json()
    assert "review.decisions" in json.dumps(spec)
    assert (await http.get("/queue", params={"limit": "junk"})).status_code == 200


async def test_sku_prices_are_judged_per_sku(http, probe, publisher) -> None:
    sfx = uuid.uuid4().hex[:8]
    bad, jump, fine = (f"{k}-{sfx}" for k in ("bad", "jump", "fine"))
    live = [{"sku_id": "red", "price_fen": 1000}, {"sku_id": "blue", "price_fen": 1000}]
    await publisher.send_many(
        "catalog.products",
        [
            requested(
                bad,
                skus=[
                    {"sku_id": "red", "price_fen": 1000, "stock": 1},
                    {"sku_id": "blue", "price_fen": 0, "stock": 1},
                ],
            ),
            requested(
                jump,
                version=2,
                live_version=1,
                live_skus=live,
                skus=[
                    {"sku_id": "blue", "price_fen": 1100, "stock": 1},
                    {"sku_id": "red", "price_fen": 2000, "stock": 1},
                    {"sku_id": "green", "price_fen": 9000, "stock": 1},
                ],
            ),
            requested(
                fine,
                version=2,
                live_version=1,
                live_skus=live,
                skus=[{"sku_id": "green", "price_fen": 9000, "stock": 0}],
            ),
        ],
    )
    [r] = await probe.wait_for("review.decisions", type="review.rejected", subject=bad)
    assert [(x["code"], x["field"]) for x in r.data["reasons"]] == [
        ("invalid_price", "skus[1].price_fen")
    ]
    [e] = await probe.wait_for("review.decisions", type="review.escalated", subject=jump)
    assert [(x["code"], x["field"]) for x in e.data["reasons"]] == [
        ("price_jump", "skus[1].price_fen")
    ]
    await probe.wait_for("review.decisions", type="review.approved", subject=fine)


async def test_new_cases_titles_and_entries_are_inserted_existing_ones_replaced(stack) -> None:
    """What the transaction looked up and did not find is inserted (cheaper than an upsert on
    nx-27017); what another writer created in between fails the write (the pipeline retries
    the batch, which then finds it) instead of being overwritten."""
    from datetime import UTC, datetime

    from pymongo.errors import BulkWriteError

    from vitrine.runtime import mongo
    from vitrine.runtime.messaging.unit_of_work import UnitOfWork
    from vitrine_review import repository
    from vitrine_review.domain import AuditEntry, Case
    from vitrine_review.repository import MongoCases

    def entry(pid: str, n: int) -> AuditEntry:
        at = datetime(2026, 1, 1, tzinfo=UTC)
        return AuditEntry(pid, "m-1", 1, n, "approved", (), "rules", at)

    client = mongo.connect(stack.mongo_url, app_name="review-repo-test")
    db = mongo.database(client, f"review_repo_{uuid.uuid4().hex[:8]}")
    try:
        await repository.setup(db)
        uow = UnitOfWork(db, None, "review")
        first = MongoCases(uow)
        assert await first.load_cases(["p-1"]) == ({}, {})
        assert await first.load_titles(["m-1:t", "m-1:gone"]) == {}
        case = Case("p-1", "m-1", last_version=1, entries=1, title_key="m-1:t")
        titles = {"m-1:t": ["p-1"], "m-1:gone": []}  # an absent key left empty: no write
        await first.save([case], [entry("p-1", 1)], titles, applied={}, queued=set())
        assert await db[repository.TITLES].count_documents({}) == 1

        again = MongoCases(uow)
        found, _ = await again.load_cases(["p-1"])
        assert found["p-1"].entries == 1
        assert await again.load_titles(["m-1:t"]) == {"m-1:t": ["p-1"]}
        later = Case("p-1", "m-1", last_version=2, entries=2, title_key="m-1:t")
        await again.save(
            [later], [entry("p-1", 2)], {"m-1:t": ["p-1", "p-9"]}, applied={}, queued=set()
        )
        assert (await db[repository.CASES].find_one({"_id": "p-1"}) or {})["last_version"] == 2
        assert await db[repository.DECISIONS].count_documents({"product_id": "p-1"}) == 2
        assert (await db[repository.TITLES].find_one({"_id": "m-1:t"}) or {})["product_ids"] == [
            "p-1",
            "p-9",
        ]

        racing = MongoCases(uow)
        await racing.load_titles(["m-2:t"])
        await db[repository.TITLES].insert_one({"_id": "m-2:t", "product_ids": ["p-7"]})
        with pytest.raises(BulkWriteError):
            await racing.save([], [], {"m-2:t": ["p-8"]}, applied={}, queued=set())
        assert (await db[repository.TITLES].find_one({"_id": "m-2:t"}) or {})["product_ids"] == [
            "p-7"
        ]
    finally:
        await client.drop_database(db.name)
        await client.close()
