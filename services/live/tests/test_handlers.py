"""Live's handlers over the in-memory store and unit of work: real dispatch, folding and
emission, no Kafka, no MongoDB."""

from __future__ import annotations

import pytest

from vitrine.contract.events import (
    EnforcementReported,
    EventData,
    ItemAdded,
    ItemRemoved,
    ItemSuspended,
    LiveAddRequested,
    LiveEndRequested,
    LiveExplainRequested,
    LiveItemAdded,
    LiveItemExplaining,
    LiveItemRefused,
    LiveItemRemoved,
    LiveItemRestored,
    LiveItemSuspended,
    LiveRemoveRequested,
    LiveSessionEnded,
    LiveSessionRefused,
    LiveSessionStarted,
    LiveStartRequested,
    OfferWithdrawn,
    PolicyLifted,
    ProductDelisted,
    ShopClosed,
    ShopRegistered,
)
from vitrine.contract.holds import HOLD_DELISTED, policy_hold
from vitrine.tools.testing.handlers import offer_activated as activated
from vitrine.tools.testing.handlers import policy_in_force as in_force
from vitrine.tools.testing.handlers import product_listed as listed
from vitrine.tools.testing.handlers import run_batch
from vitrine_live.handlers import make_handlers
from vitrine_live.repository import InMemoryLiveStore

pytestmark = pytest.mark.handlers


async def run(
    store: InMemoryLiveStore, topic: str, *data: EventData, subject: str | None = None
) -> list[EventData]:
    """One batch on ``topic``; the events it emitted (typed, re-validated)."""
    handlers = make_handlers(lambda _: store)
    return (await run_batch(handlers, topic, *data, service="live", subject=subject)).events()


MINI_SHOP_ON_LIVE = {
    "kind": "disallow_source",
    "surfaces": ["showcase", "live"],
    "sources": [{"kind": "wechat_mini_shop"}],
}


def start(creator: str = "c1", session: str = "s1") -> LiveStartRequested:
    return LiveStartRequested(creator_id=creator, session_id=session, title="秋季上新")


def add(pid: str = "p1", offer: str | None = None, session: str = "s1") -> LiveAddRequested:
    return LiveAddRequested(creator_id="c1", session_id=session, product_id=pid, offer_id=offer)


async def a_live_cart(kind: str = "channels_shop") -> InMemoryLiveStore:
    """c1 has p1 active in the showcase and an open session s1 with p1 in its cart."""
    store = InMemoryLiveStore()
    await run(store, "catalog.products", listed(kind=kind))
    await run(
        store,
        "accounts.shops",
        ShopRegistered(account_id="c1", shop_id="sh1", shop_kind="channels_shop"),
    )
    await run(store, "showcase.items", ItemAdded(creator_id="c1", product_id="p1", position=0))
    out = await run(store, "creators.live", start(), add())
    assert [type(e) for e in out] == [LiveSessionStarted, LiveItemAdded]
    return store


async def test_session_lifecycle_add_explain_remove_end() -> None:
    store = await a_live_cart()
    out = await run(
        store,
        "creators.live",
        LiveExplainRequested(creator_id="c1", session_id="s1", product_id="p1"),
        LiveRemoveRequested(creator_id="c1", session_id="s1", product_id="p1"),
        LiveEndRequested(creator_id="c1", session_id="s1"),
    )
    assert [type(e) for e in out] == [LiveItemExplaining, LiveItemRemoved, LiveSessionEnded]
    assert isinstance(out[-1], LiveSessionEnded) and out[-1].items == 0
    assert not store.sessions["s1"].open and store.sessions["s1"].ended_at is not None


async def test_one_open_session_per_creator() -> None:
    store = await a_live_cart()
    (refusal,) = await run(store, "creators.live", start(session="s2"))
    assert isinstance(refusal, LiveSessionRefused)
    assert [r.code for r in refusal.reasons] == ["session_already_open"]
    assert await run(store, "creators.live", start()) == []  # the same start again: ignored
    # after the end, a new session opens; the ended one cannot be started again
    await run(store, "creators.live", LiveEndRequested(creator_id="c1", session_id="s1"))
    out = await run(store, "creators.live", start(session="s1"), start(session="s2"))
    assert isinstance(out[0], LiveSessionRefused)
    assert [r.code for r in out[0].reasons] == ["session_not_open"]
    assert isinstance(out[1], LiveSessionStarted)


async def test_requests_on_sessions_not_open_or_not_owned_are_refused() -> None:
    store = await a_live_cart()
    out = await run(
        store,
        "creators.live",
        LiveAddRequested(creator_id="c1", session_id="nope", product_id="p1"),
        LiveEndRequested(creator_id="c1", session_id="nope"),
    )
    assert [type(e) for e in out] == [LiveItemRefused, LiveSessionRefused]
    assert all(isinstance(e, LiveItemRefused | LiveSessionRefused) for e in out)
    assert {r.code for e in out for r in e.reasons} == {"session_not_open"}  # type: ignore[attr-defined]
    # c2 names c1's session: not_session_owner, on c2's key; c1's cart is untouched
    foreign = LiveRemoveRequested(creator_id="c2", session_id="s1", product_id="p1")
    (refusal,) = await run(store, "creators.live", foreign)
    assert isinstance(refusal, LiveItemRefused) and refusal.creator_id == "c2"
    assert [r.code for r in refusal.reasons] == ["not_session_owner"]
    # a request keyed to c2 that claims to be c1's
    (refusal,) = await run(
        store, "creators.live", foreign.model_copy(update={"creator_id": "c1"}), subject="c2"
    )
    assert isinstance(refusal, LiveItemRefused) and refusal.creator_id == "c2"
    assert [r.code for r in refusal.reasons] == ["not_session_owner"]
    assert store.sessions["s1"].find("p1") is not None


async def test_entry_rules_refuse_with_their_codes() -> None:
    store = await a_live_cart()
    await run(store, "catalog.products", listed("p2"), listed("p3", kind="wechat_mini_shop"))
    await run(store, "showcase.items", ItemAdded(creator_id="c1", product_id="p3", position=1))
    await run(store, "compliance.rulings", in_force("pol-1", "block_new", [MINI_SHOP_ON_LIVE]))
    out = await run(
        store,
        "creators.live",
        add("p9"),  # unknown product
        add("p2"),  # listed, not in the showcase, no offer
        add("p2", offer="o-missing"),
        add("p3"),  # in the showcase, but a Mini Shop product under the policy
    )
    codes = [[r.code for r in e.reasons] for e in out if isinstance(e, LiveItemRefused)]
    assert codes == [
        ["product_not_listed", "not_in_showcase"],
        ["not_in_showcase"],
        ["offer_not_available"],
        ["source_disallowed"],
    ]


async def test_targeted_offer_must_name_the_creator_and_a_general_offer_lets_in() -> None:
    store = InMemoryLiveStore()
    await run(store, "catalog.products", listed())
    await run(store, "distribution.offers", activated("o-t", "targeted", ("someone",)))
    await run(store, "distribution.offers", activated("o-g"))
    out = await run(store, "creators.live", start(), add(offer="o-t"), add(offer="o-g"))
    assert isinstance(out[1], LiveItemRefused)
    assert [r.code for r in out[1].reasons] == ["not_in_targeted_plan"]
    assert isinstance(out[2], LiveItemAdded) and out[2].offer_id == "o-g"


async def test_require_shop_on_live_refuses_a_creator_without_the_shop() -> None:
    store = await a_live_cart()
    rule = {"kind": "require_shop", "surfaces": ["live"], "shop_kind": "wechat_mini_shop"}
    await run(store, "catalog.products", listed("p2"))
    await run(store, "showcase.items", ItemAdded(creator_id="c1", product_id="p2", position=1))
    await run(store, "compliance.rulings", in_force("pol-shop", "block_new", [rule]))
    (refusal,) = await run(store, "creators.live", add("p2"))
    assert isinstance(refusal, LiveItemRefused)
    assert [r.code for r in refusal.reasons] == ["shop_required"]


async def test_cart_follows_the_showcase_projection_for_entry_only() -> None:
    store = await a_live_cart()
    await run(store, "catalog.products", listed("p2"))
    await run(store, "showcase.items", ItemAdded(creator_id="c1", product_id="p2", position=1))
    await run(
        store, "showcase.items", ItemSuspended(creator_id="c1", product_id="p2", reason="sold_out")
    )
    (refusal,) = await run(store, "creators.live", add("p2"))
    assert isinstance(refusal, LiveItemRefused)
    await run(store, "showcase.items", ItemRemoved(creator_id="c1", product_id="p2"))
    assert store.showcase == {"c1/p1": True}


async def test_cart_follows_delisting_and_relisting() -> None:
    store = await a_live_cart()
    pid = "p1"
    (suspended,) = await run(
        store,
        "catalog.products",
        ProductDelisted(product_id=pid, merchant_id="m1", reason="withdrawn"),
    )
    assert isinstance(suspended, LiveItemSuspended) and suspended.reason == HOLD_DELISTED
    assert suspended.session_id == "s1" and suspended.creator_id == "c1"
    (refusal,) = await run(
        store,
        "creators.live",
        LiveExplainRequested(creator_id="c1", session_id="s1", product_id=pid),
    )
    assert isinstance(refusal, LiveItemRefused) and refusal.reasons[0].code == "item_suspended"
    (restored,) = await run(store, "catalog.products", listed())
    assert isinstance(restored, LiveItemRestored) and restored.reason == HOLD_DELISTED


async def test_cart_follows_the_offer_it_was_taken_through() -> None:
    store = InMemoryLiveStore()
    await run(store, "catalog.products", listed())
    await run(store, "distribution.offers", activated("o1", "targeted", ("c1",)))
    await run(store, "creators.live", start(), add(offer="o1"))
    (out,) = await run(store, "distribution.offers", activated("o1", "targeted", ("c2",)))
    assert isinstance(out, LiveItemSuspended) and out.reason == "offer_unavailable"
    (back,) = await run(store, "distribution.offers", activated("o1", "general"))
    assert isinstance(back, LiveItemRestored)
    (gone,) = await run(
        store,
        "distribution.offers",
        OfferWithdrawn(offer_id="o1", product_id="p1", merchant_id="m1"),
    )
    assert isinstance(gone, LiveItemSuspended) and gone.reason == "offer_unavailable"


async def test_policy_enforcement_holds_reports_and_lift_restores() -> None:
    store = await a_live_cart(kind="wechat_mini_shop")
    await run(store, "compliance.rulings", in_force("pol-1", "block_new", [MINI_SHOP_ON_LIVE]))
    out = await run(
        store, "compliance.rulings", in_force("pol-1", "enforce_existing", [MINI_SHOP_ON_LIVE])
    )
    suspended, report = out
    assert isinstance(suspended, LiveItemSuspended) and suspended.policy_id == "pol-1"
    assert isinstance(report, EnforcementReported)
    assert (report.service, report.phase, report.affected) == ("live", "enforce_existing", 1)
    assert store.sessions["s1"].items[0].holds == {policy_hold("pol-1")}
    # a delisting on top: two causes; lifting the policy leaves the item suspended
    await run(
        store,
        "catalog.products",
        ProductDelisted(product_id="p1", merchant_id="m1", reason="withdrawn"),
    )
    out = await run(store, "compliance.rulings", PolicyLifted(policy_id="pol-1"))
    assert [type(e) for e in out] == [EnforcementReported]
    assert store.sessions["s1"].items[0].holds == {HOLD_DELISTED}
    (restored,) = await run(store, "catalog.products", listed(kind="wechat_mini_shop"))
    assert isinstance(restored, LiveItemRestored) and restored.reason == HOLD_DELISTED


async def test_a_policy_not_naming_live_is_not_reported_by_live() -> None:
    store = await a_live_cart(kind="wechat_mini_shop")
    rule = {**MINI_SHOP_ON_LIVE, "surfaces": ["showcase"]}
    out = await run(store, "compliance.rulings", in_force("pol-2", "enforce_existing", [rule]))
    assert out == []


async def test_shop_closed_rejudges_the_open_cart() -> None:
    store = await a_live_cart()
    rule = {"kind": "require_shop", "surfaces": ["live"], "shop_kind": "channels_shop"}
    out = await run(store, "compliance.rulings", in_force("pol-s", "enforce_existing", [rule]))
    assert [type(e) for e in out] == [EnforcementReported]  # c1 holds the shop
    (held,) = await run(store, "accounts.shops", ShopClosed(account_id="c1", shop_id="sh1"))
    assert isinstance(held, LiveItemSuspended) and held.policy_id == "pol-s"
    (back,) = await run(
        store,
        "accounts.shops",
        ShopRegistered(account_id="c1", shop_id="sh2", shop_kind="channels_shop"),
    )
    assert isinstance(back, LiveItemRestored)


async def test_ended_sessions_follow_nothing() -> None:
    store = await a_live_cart()
    await run(store, "creators.live", LiveEndRequested(creator_id="c1", session_id="s1"))
    assert (
        await run(
            store,
            "catalog.products",
            ProductDelisted(product_id="p1", merchant_id="m1", reason="withdrawn"),
        )
        == []
    )


async def test_cart_follows_sold_out_and_back_in_stock_and_refuses_sold_out_goods() -> None:
    from vitrine.contract.events import ProductBackInStock, ProductSoldOut

    store = await a_live_cart()
    await run(store, "catalog.products", listed("p2"))
    await run(store, "showcase.items", ItemAdded(creator_id="c1", product_id="p2", position=1))
    out = await run(
        store,
        "catalog.products",
        ProductSoldOut(product_id="p1", merchant_id="m1"),
        ProductSoldOut(product_id="p2", merchant_id="m1"),
    )
    assert [(type(e), getattr(e, "reason", None)) for e in out] == [(LiveItemSuspended, "sold_out")]
    (refusal,) = await run(store, "creators.live", add("p2"))
    assert isinstance(refusal, LiveItemRefused)
    assert [r.code for r in refusal.reasons] == ["sold_out"]
    (back,) = await run(
        store, "catalog.products", ProductBackInStock(product_id="p1", total_stock=3)
    )
    assert isinstance(back, LiveItemRestored) and back.reason == "sold_out"
    assert store.products["p1"].sold_out is False and store.products["p2"].sold_out is True
