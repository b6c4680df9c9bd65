"""The index follows the committed projection on the real database: this replica's commits at
once (never an aborted one), another replica's by polling the revision, a restart by loading."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from vitrine.contract.events import Source
from vitrine.runtime.mongo import Document, TransactionGuard
from vitrine_selection import feed, repository
from vitrine_selection.domain import Offer, Product, RateStep
from vitrine_selection.feed import Feed
from vitrine_selection.handlers import rebuild
from vitrine_selection.refresher import refresh_due
from vitrine_selection.search import parse_query

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]
NOW = datetime.now(UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def db(
    stack: Any,
) -> AsyncIterator[tuple[AsyncMongoClient[Document], AsyncDatabase[Document]]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(stack.mongo_url, tz_aware=True)
    database = client[f"selection_feed_{uuid.uuid4().hex[:6]}"]
    await repository.setup(database)
    await database.create_collection(TransactionGuard.BEGIN_COLLECTION)
    try:
        yield client, database
    finally:
        await client.drop_database(database.name)
        await client.close()


async def replica(
    client: AsyncMongoClient[Document], db: AsyncDatabase[Document], name: str
) -> Feed:
    guard = TransactionGuard(client, db.name, instance=f"{name}-{uuid.uuid4().hex[:6]}")
    await guard.recover()
    feed = Feed(db, guard)
    guard.after_commit(feed.committed)
    await feed.load()
    return feed


async def publish(feed: Feed, n: int, title: str) -> None:
    """What on_products + on_offers write for one new offer, in one transaction."""
    async with feed.guard.transaction() as session:
        store = repository.MongoStore.of(feed.db, session)
        product = Product(
            f"p{n}", "m1", title, "家居", (), 1990, Source(kind="mini_shop_alliance"), True
        )
        await store.save_products([product])
        offer = Offer(f"o{n}", f"p{n}", "m1", "active", rates=(RateStep(1000, NOW),))
        await rebuild(store, [offer.offer_id], NOW, {offer.offer_id: offer})


def shown(feed: Feed, **params: str) -> list[str]:
    return [r["offer_id"] for r in feed.index.page(parse_query(params)).rows]


async def test_commits_reach_this_replica_at_once_and_the_other_by_polling(db: Any) -> None:
    client, database = db
    a, b = await replica(client, database, "a"), await replica(client, database, "b")
    await publish(a, 1, "白瓷茶杯")
    assert shown(a, q="茶杯") == ["o1"]  # at commit, no poll
    assert a.watermark == 1
    assert shown(b, q="茶杯") == []
    assert await b.poll() == 1
    assert shown(b, q="茶杯") == ["o1"] and b.watermark == 1
    await publish(b, 2, "玻璃茶杯")
    await publish(b, 3, "紫砂茶壶")
    assert await a.poll() == 2  # a's own o1 is not read again
    assert shown(a, q="茶杯", sort="price") == ["o1", "o2"] and a.watermark == 3


async def test_a_revision_larger_than_a_page_is_followed_whole(
    db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, database = db
    a, b = await replica(client, database, "a"), await replica(client, database, "b")
    monkeypatch.setattr(feed, "PAGE", 2)
    async with a.guard.transaction() as session:  # one revision, five offers
        store = repository.MongoStore.of(a.db, session)
        offers = {
            f"o5{n}": Offer(f"o5{n}", "p50", "m1", "active", rates=(RateStep(1000, NOW),))
            for n in range(5)
        }
        product = Product("p50", "m1", "白瓷茶杯", "big", (), 1990, Source(kind="wechat_mini_shop"))
        await store.save_products([replace(product, listed=True)])
        await rebuild(store, offers, NOW, offers)
    assert await b.poll() == 5
    assert len(shown(b, category="big")) == 5 and b.watermark == a.watermark
    assert await b.poll() == 0


async def test_an_aborted_transaction_never_reaches_the_index(db: Any) -> None:
    client, database = db
    a = await replica(client, database, "a")
    with pytest.raises(RuntimeError):
        async with a.guard.transaction() as session:
            store = repository.MongoStore.of(a.db, session)
            offer = Offer("o9", "p9", "m1", "active", rates=(RateStep(1000, NOW),))
            await rebuild(store, ["o9"], NOW, {"o9": offer})
            raise RuntimeError("handler failed")
    assert "o9" not in a.index.slots
    await a.poll()
    assert "o9" not in a.index.slots


async def test_a_restart_rebuilds_the_same_index_from_the_projection(db: Any) -> None:
    client, database = db
    a = await replica(client, database, "a")
    for n, title in enumerate(["白瓷茶杯", "玻璃茶杯", "咖啡杯"], start=20):
        await publish(a, n, title)
    restarted = await replica(client, database, "a")
    for params in ({"q": "杯"}, {"sort": "price", "order": "desc"}, {"category": "家居"}):
        assert shown(restarted, **params) == shown(a, **params)
    assert restarted.watermark == a.watermark


async def test_a_scheduled_cut_takes_effect_when_due_without_scanning(db: Any) -> None:
    client, database = db
    a = await replica(client, database, "a")
    cut_at = NOW + timedelta(seconds=1)
    async with a.guard.transaction() as session:
        store = repository.MongoStore.of(a.db, session)
        product = Product(
            "p40", "m1", "白瓷茶杯", "cut", (), 1990, Source(kind="mini_shop_alliance")
        )
        await store.save_products([replace(product, listed=True)])
        rates = (RateStep(1000, NOW - timedelta(hours=1)), RateStep(500, cut_at))
        offer = Offer("o40", "p40", "m1", "active", rates=rates)
        await rebuild(store, ["o40"], NOW, {"o40": offer})
    [row] = a.index.page(parse_query({"category": "cut"})).rows
    assert (row["rate_bps"], row["next_rate_bps"]) == (1000, 500)
    assert a.index.due(NOW, 10) == []
    later = cut_at + timedelta(seconds=1)
    assert a.index.due(later, 10) == ["o40"]
    assert await refresh_due(a.db, a.guard, a.index, later) == 1
    [row] = a.index.page(parse_query({"category": "cut"})).rows
    assert (row["rate_bps"], row["next_rate_bps"]) == (500, None)
    assert await refresh_due(a.db, a.guard, a.index, later) == 0
