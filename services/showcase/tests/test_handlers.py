"""Showcase's handlers over the in-memory store and unit of work: real dispatch, folding and
emission, no Kafka, no MongoDB (the tier between test_domain/test_holds and the stack tests)."""

from __future__ import annotations

import pytest

from vitrine.contract.events import (
    EventData,
    ItemAdded,
    ItemRefused,
    ItemRestored,
    ItemSuspended,
    OfferRestored,
    OfferSuspended,
    OfferWithdrawn,
    PolicyLifted,
    ProductBackInStock,
    ProductDelisted,
    ProductSoldOut,
    ShopClosed,
    ShopRegistered,
    ShowcaseAddRequested,
)
from vitrine.tools.testing.handlers import offer_activated as activated
from vitrine.tools.testing.handlers import policy_in_force as in_force
from vitrine.tools.testing.handlers import product_listed as listed
from vitrine.tools.testing.handlers import run_batch
from vitrine_showcase import handlers
from vitrine_showcase.domain import (
    HOLD_DELISTED,
    HOLD_OFFER,
    HOLD_SOLD_OUT,
    item_key,
    policy_hold,
)
from vitrine_showcase.handlers import make_handlers
from vitrine_showcase.repository import InMemoryShowcaseStore

pytestmark = pytest.mark.handlers

ITEMS = "showcase.items"


async def run(store: InMemoryShowcaseStore, topic: str, *data: EventData) -> list[EventData]:
    """One batch on ``topic``; the events it emitted (typed, re-validated)."""
    handlers = make_handlers(lambda _: store)
    return (await run_batch(handlers, topic, *data, service="showcase")).events()


def shop(account: str, kind: str = "channels_shop", shop_id: str = "s1") -> ShopRegistered:
    return ShopRegistered(account_id=account, shop_id=shop_id, shop_kind=kind)  # type: ignore[arg-type]


REQUIRE_CHANNELS = [
    {"kind": "require_shop", "surfaces": ["showcase"], "shop_kind": "channels_shop"}
]


async def a_showcase_with_an_offer_item() -> InMemoryShowcaseStore:
    store = InMemoryShowcaseStore()
    await run(store, "catalog.products", listed())
    await run(store, "accounts.shops", shop("c1"))
    await run(store, "distribution.offers", activated(plan="targeted", creators=("c1",)))
    out = await run(
        store,
        "creators.showcase",
        ShowcaseAddRequested(creator_id="c1", product_id="p1", offer_id="o1"),
    )
    assert [type(e) for e in out] == [ItemAdded]
    return store


async def test_an_offer_suspended_then_restored_takes_its_items_along() -> None:
    store = await a_showcase_with_an_offer_item()
    suspended = OfferSuspended(
        offer_id="o1", product_id="p1", merchant_id="m1", reason="policy", policy_id="x"
    )
    assert await run(store, "distribution.offers", suspended) == [
        ItemSuspended(creator_id="c1", product_id="p1", reason="offer_unavailable")
    ]
    assert store.items[item_key("c1", "p1")].holds == {HOLD_OFFER}
    restored = OfferRestored(offer_id="o1", product_id="p1", merchant_id="m1")
    assert await run(store, "distribution.offers", restored) == [
        ItemRestored(creator_id="c1", product_id="p1", reason="offer_unavailable")
    ]
    assert store.items[item_key("c1", "p1")].active


async def test_withdrawn_and_republished_without_the_creator() -> None:
    store = await a_showcase_with_an_offer_item()
    withdrawn = OfferWithdrawn(offer_id="o1", product_id="p1", merchant_id="m1")
    # withdrawn, then re-published naming someone else: held throughout, one suspension
    out = await run(
        store, "distribution.offers", withdrawn, activated(plan="targeted", creators=("c9",))
    )
    assert [type(e) for e in out] == [ItemSuspended]
    out = await run(store, "distribution.offers", activated(plan="general"))
    assert [type(e) for e in out] == [ItemRestored]


async def test_a_delisting_and_an_offer_hold_one_item_until_both_go() -> None:
    store = await a_showcase_with_an_offer_item()
    delisted = ProductDelisted(product_id="p1", reason="withdrawn")
    await run(store, "catalog.products", delisted)
    suspended = OfferSuspended(offer_id="o1", product_id="p1", merchant_id="m1", reason="x")
    await run(store, "distribution.offers", suspended)
    assert store.items[item_key("c1", "p1")].holds == {HOLD_DELISTED, HOLD_OFFER}
    out = await run(store, "catalog.products", listed())
    assert out == []  # the offer still holds it
    out = await run(
        store,
        "distribution.offers",
        OfferRestored(offer_id="o1", product_id="p1", merchant_id="m1"),
    )
    assert [type(e) for e in out] == [ItemRestored]


async def test_shop_closed_rechecks_require_shop_and_registered_restores() -> None:
    store = await a_showcase_with_an_offer_item()
    await run(store, "compliance.rulings", in_force("pol-1", "block_new", REQUIRE_CHANNELS))
    closed = ShopClosed(account_id="c1", shop_id="s1")
    assert await run(store, "accounts.shops", closed) == []  # block_new: existing items stay
    await run(store, "accounts.shops", shop("c1"))
    out = await run(
        store, "compliance.rulings", in_force("pol-1", "enforce_existing", REQUIRE_CHANNELS)
    )
    assert [type(e).__name__ for e in out] == ["EnforcementReported"]  # c1 holds the shop

    out = await run(store, "accounts.shops", closed)
    assert out == [
        ItemSuspended(creator_id="c1", product_id="p1", reason="policy", policy_id="pol-1")
    ]
    assert store.items[item_key("c1", "p1")].holds == {policy_hold("pol-1")}
    # another kind of shop does not satisfy the rule; the channels shop does
    assert await run(store, "accounts.shops", shop("c1", "mini_program", "s2")) == []
    out = await run(store, "accounts.shops", shop("c1", "channels_shop", "s3"))
    assert out == [
        ItemRestored(creator_id="c1", product_id="p1", reason="policy", policy_id="pol-1")
    ]


@pytest.mark.parametrize("chunk", [1, 3, 1_000])
async def test_enforce_and_lift_in_bulk_report_counts(chunk: int, monkeypatch) -> None:
    # Swept a chunk of items at a time: the counts and events do not depend on the chunking.
    monkeypatch.setattr(handlers, "SWEEP_CHUNK", chunk)
    store = InMemoryShowcaseStore()
    await run(store, "catalog.products", listed("p1", kind="wechat_mini_shop"), listed("p2"))
    await run(store, "accounts.shops", shop("c1"), shop("c2"))
    adds = [
        ShowcaseAddRequested(creator_id=c, product_id=p) for c in ("c1", "c2") for p in ("p1", "p2")
    ]
    await run(store, "creators.showcase", *adds)
    rules = [
        {
            "kind": "disallow_source",
            "surfaces": ["showcase"],
            "sources": [{"kind": "wechat_mini_shop"}],
        }
    ]
    out = await run(store, "compliance.rulings", in_force("pol-m", "enforce_existing", rules))
    suspended = [e for e in out if isinstance(e, ItemSuspended)]
    assert sorted(e.creator_id for e in suspended) == ["c1", "c2"]
    assert out[-1].affected == 2  # type: ignore[attr-defined]
    refused = await run(
        store, "creators.showcase", ShowcaseAddRequested(creator_id="c3", product_id="p1")
    )
    assert isinstance(refused[0], ItemRefused)
    assert [r.code for r in refused[0].reasons] == ["source_disallowed"]
    out = await run(store, "compliance.rulings", PolicyLifted(policy_id="pol-m"))
    assert [type(e) for e in out if not hasattr(e, "affected")] == [ItemRestored, ItemRestored]
    assert out[-1].affected == 2  # type: ignore[attr-defined]
    assert all(i.active for i in store.items.values())


# --- stock ----------------------------------------------------------------------------------

SOLD_OUT = ProductSoldOut(product_id="p1", merchant_id="m1", version=1)
BACK = ProductBackInStock(product_id="p1", merchant_id="m1", version=1, total_stock=3)


async def a_showcase_with_an_item() -> InMemoryShowcaseStore:
    store = InMemoryShowcaseStore()
    await run(store, "catalog.products", listed())
    out = await run(
        store, "creators.showcase", ShowcaseAddRequested(creator_id="c1", product_id="p1")
    )
    assert [type(e) for e in out] == [ItemAdded]
    return store


async def test_sold_out_suspends_and_back_in_stock_restores() -> None:
    store = await a_showcase_with_an_item()
    assert await run(store, "catalog.products", SOLD_OUT) == [
        ItemSuspended(creator_id="c1", product_id="p1", reason="sold_out")
    ]
    assert store.items[item_key("c1", "p1")].holds == {HOLD_SOLD_OUT}
    assert store.products["p1"].sold_out
    assert await run(store, "catalog.products", SOLD_OUT) == []  # already held: nothing
    assert await run(store, "catalog.products", BACK) == [
        ItemRestored(creator_id="c1", product_id="p1", reason="sold_out")
    ]
    assert store.items[item_key("c1", "p1")].active
    assert not store.products["p1"].sold_out


async def test_sold_out_and_delisted_restore_only_after_both_end() -> None:
    store = await a_showcase_with_an_item()
    delisted = ProductDelisted(product_id="p1", reason="withdrawn")
    await run(store, "catalog.products", SOLD_OUT, delisted)
    assert store.items[item_key("c1", "p1")].holds == {HOLD_SOLD_OUT, HOLD_DELISTED}
    assert await run(store, "catalog.products", listed()) == []  # still sold out
    assert store.products["p1"].sold_out  # a relisting does not forget the stock
    assert await run(store, "catalog.products", BACK) == [
        ItemRestored(creator_id="c1", product_id="p1", reason="sold_out")
    ]
    # the other order: back in stock first, the relisting restores
    await run(store, "catalog.products", delisted, SOLD_OUT)
    assert await run(store, "catalog.products", BACK) == []
    assert await run(store, "catalog.products", listed()) == [
        ItemRestored(creator_id="c1", product_id="p1", reason="product_delisted")
    ]


async def test_an_item_added_while_sold_out_is_held_at_once() -> None:
    store = InMemoryShowcaseStore()
    await run(store, "catalog.products", listed(), SOLD_OUT)
    add = ShowcaseAddRequested(creator_id="c1", product_id="p1")
    assert await run(store, "creators.showcase", add) == [
        ItemAdded(creator_id="c1", product_id="p1", position=0),
        ItemSuspended(creator_id="c1", product_id="p1", reason="sold_out"),
    ]
    assert store.items[item_key("c1", "p1")].holds == {HOLD_SOLD_OUT}
    assert await run(store, "catalog.products", BACK) == [
        ItemRestored(creator_id="c1", product_id="p1", reason="sold_out")
    ]


async def test_stock_of_an_unknown_product_changes_nothing() -> None:
    store = InMemoryShowcaseStore()
    assert await run(store, "catalog.products", SOLD_OUT, BACK) == []
    assert store.products == {}
