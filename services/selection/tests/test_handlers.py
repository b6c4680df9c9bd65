"""Selection's handlers over the in-memory store: real dispatch and folding, the listing each
offer gets, any arrival order, stale events, rate cuts, sales and policy verdicts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    EventData,
    OfferActivated,
    OfferSuspended,
    OfferWithdrawn,
    OrderPaid,
    OrderRefunded,
    PolicyInForce,
    PolicyLifted,
    ProductBackInStock,
    ProductDelisted,
    ProductListed,
    ProductSoldOut,
    ShopRegistered,
)
from vitrine.runtime.messaging.unit_of_work import FIXED_TIME, InMemoryUnitOfWork, incoming
from vitrine_selection import domain
from vitrine_selection.handlers import make_handlers
from vitrine_selection.repository import InMemoryStore

pytestmark = pytest.mark.handlers

TOPIC = {
    ProductListed: "catalog.products",
    ProductDelisted: "catalog.products",
    OfferActivated: "distribution.offers",
    OfferSuspended: "distribution.offers",
    OfferWithdrawn: "distribution.offers",
    OrderPaid: "orders.lifecycle",
    OrderRefunded: "orders.lifecycle",
    ShopRegistered: "accounts.shops",
    PolicyInForce: "compliance.rulings",
    PolicyLifted: "compliance.rulings",
}


def listed(pid: str = "p-1", **over: Any) -> ProductListed:
    data = {
        "product_id": pid,
        "merchant_id": "m-1",
        "version": 1,
        "source": {"kind": "channels_shop"},
        "title": "景德镇白瓷茶杯",
        "price_fen": 1990,
        "category": "家居",
        **over,
    }
    return ProductListed.model_validate(data)


def activated(oid: str = "o-1", bps: int = 1000, **over: Any) -> OfferActivated:
    data = {
        "offer_id": oid,
        "product_id": "p-1",
        "merchant_id": "m-1",
        "commission_bps": bps,
        "plan": "general",
        "effective_at": FIXED_TIME,
        **over,
    }
    return OfferActivated.model_validate(data)


class Selection:
    def __init__(self) -> None:
        self.store = InMemoryStore()
        self.uow = InMemoryUnitOfWork(service="selection")
        self.handlers = make_handlers(lambda _: self.store)

    async def feed(self, *data: EventData, at: Any = None) -> None:
        for d in data:
            subject = getattr(d, "offer_id", None) or getattr(d, "product_id", None)
            subject = getattr(d, "policy_id", None) or getattr(d, "order_id", None) or subject
            subject = getattr(d, "account_id", None) or subject
            assert isinstance(subject, str), d
            raw = incoming(d, subject)
            # Event time decides staleness: default to the unit of work's fixed clock.
            envelope = raw.envelope.model_copy(update={"time": at or FIXED_TIME})
            event = Event(envelope, raw.data)
            await self.handlers[TOPIC[type(d)]]([event], self.uow)

    def doc(self, oid: str = "o-1") -> dict[str, Any]:
        return self.store.listing(oid)


async def test_an_active_offer_of_a_listed_product_is_visible_with_its_product_and_rate() -> None:
    s = Selection()
    await s.feed(listed(), activated())
    doc = s.doc()
    assert doc["visible"] and doc["title"] == "景德镇白瓷茶杯" and doc["rate_bps"] == 1000
    assert doc["commission_fen"] == 199 and doc["supplier"] == "channels_shop"
    assert "茶杯" in doc["tokens"] and doc["audience"] == ["*"]
    assert doc["open_on"] == ["showcase", "live", "distribution"]


async def test_the_offer_may_arrive_before_its_product() -> None:
    s = Selection()
    await s.feed(activated())
    assert not s.doc()["visible"]
    await s.feed(listed())
    assert s.doc()["visible"] and s.doc()["price_fen"] == 1990


async def test_withdrawal_suspension_and_delisting_hide_the_offer() -> None:
    s = Selection()
    await s.feed(listed(), activated())
    await s.feed(
        OfferSuspended(offer_id="o-1", product_id="p-1", merchant_id="m-1", reason="policy")
    )
    assert not s.doc()["visible"]
    await s.feed(activated())
    assert s.doc()["visible"]
    await s.feed(ProductDelisted(product_id="p-1", merchant_id="m-1", reason="withdrawn"))
    assert not s.doc()["visible"]
    await s.feed(listed(version=2))
    await s.feed(OfferWithdrawn(offer_id="o-1", product_id="p-1", merchant_id="m-1"))
    assert not s.doc()["visible"] and s.doc()["status"] == "withdrawn"


async def test_a_stale_event_does_not_undo_a_newer_one() -> None:
    s = Selection()
    await s.feed(listed(), activated())
    later = FIXED_TIME + timedelta(minutes=5)
    await s.feed(OfferWithdrawn(offer_id="o-1", product_id="p-1", merchant_id="m-1"), at=later)
    await s.feed(activated(), at=FIXED_TIME)  # a replay of the older activation
    assert s.doc()["status"] == "withdrawn"
    await s.feed(listed(title="旧标题", version=1), at=later)  # older version, newer time
    await s.feed(listed(title="新标题", version=3), at=later)
    await s.feed(listed(title="旧标题", version=2), at=later)
    assert s.store.docs["products"]["p-1"]["title"] == "新标题"


async def test_a_cut_is_scheduled_and_a_raise_takes_effect_at_once() -> None:
    s = Selection()
    await s.feed(listed(), activated(bps=2000))
    midnight = FIXED_TIME + timedelta(hours=10)
    await s.feed(activated(bps=1500, effective_at=midnight))
    doc = s.doc()
    assert (doc["rate_bps"], doc["next_rate_bps"], doc["next_rate_at"]) == (2000, 1500, midnight)
    assert doc["due_at"] == midnight
    await s.feed(activated(bps=2500))  # a raise supersedes the pending cut
    doc = s.doc()
    assert (doc["rate_bps"], doc["next_rate_bps"]) == (2500, None)


def test_a_scheduled_cut_takes_effect_when_its_time_comes() -> None:
    steps = domain.schedule_rate((), 2000, FIXED_TIME, FIXED_TIME)
    cut_at = FIXED_TIME + timedelta(hours=3)
    steps = domain.schedule_rate(steps, 1500, cut_at, FIXED_TIME)
    offer = domain.Offer("o-1", "p-1", "m-1", "active", rates=steps, published_at=FIXED_TIME)
    product = domain.Product("p-1", "m-1", "杯", price_fen=1000, listed=True)
    before = domain.listing(offer, product, None, [], FIXED_TIME)
    after = domain.listing(offer, product, None, [], cut_at)
    assert (before["rate_bps"], after["rate_bps"], after["next_rate_bps"]) == (2000, 1500, None)


async def test_sales_count_paid_orders_and_subtract_refunds_whatever_the_order() -> None:
    s = Selection()
    await s.feed(listed(), activated())
    paid = dict(product_id="p-1", merchant_id="m-1", offer_id="o-1", paid_at=FIXED_TIME)
    await s.feed(OrderRefunded(order_id="r-1", refund_fen=300))  # before its payment
    await s.feed(OrderPaid(order_id="r-1", amount_fen=1000, **paid))  # type: ignore[arg-type]
    await s.feed(OrderPaid(order_id="r-2", amount_fen=500, **paid))  # type: ignore[arg-type]
    await s.feed(OrderPaid(order_id="r-3", amount_fen=400, **paid))  # type: ignore[arg-type]
    await s.feed(OrderRefunded(order_id="r-3", refund_fen=400))  # fully refunded
    doc = s.doc()
    assert (doc["sales_orders_30d"], doc["sales_gmv_30d_fen"]) == (2, 1200)


async def test_sales_before_the_offer_itself_are_kept() -> None:
    s = Selection()
    await s.feed(
        OrderPaid(
            order_id="r-1",
            product_id="p-1",
            merchant_id="m-1",
            amount_fen=700,
            offer_id="o-1",
            paid_at=FIXED_TIME,
        )
    )
    await s.feed(listed(), activated())
    assert s.doc()["visible"] and s.doc()["sales_gmv_30d_fen"] == 700


def test_sales_older_than_30_days_leave_the_window() -> None:
    day = domain.sales_day(FIXED_TIME)
    offer = domain.Offer("o-1", sales={day: (3, 900)})
    assert domain.sales_in_window(offer.sales, FIXED_TIME + timedelta(days=29)) == (3, 900)
    assert domain.sales_in_window(offer.sales, FIXED_TIME + timedelta(days=31)) == (0, 0)
    assert domain.prune_sales(offer, FIXED_TIME + timedelta(days=31)).sales == {}


def in_force(pid: str, rules: list[dict[str, Any]], **exemptions: Any) -> PolicyInForce:
    return PolicyInForce.model_validate(
        {
            "policy_id": pid,
            "phase": "block_new",
            "rules": rules,
            "exemptions": exemptions,
            "effective_at": FIXED_TIME,
        }
    )


async def test_a_policy_in_force_bars_a_source_per_surface_until_lifted() -> None:
    s = Selection()
    mini: dict[str, Any] = {"source": {"kind": "wechat_mini_shop"}}
    await s.feed(listed(**mini), activated())
    rule = {
        "kind": "disallow_source",
        "surfaces": ["showcase", "live"],
        "sources": [{"kind": "wechat_mini_shop"}],
    }
    await s.feed(in_force("pol-1", [rule]))
    doc = s.doc()
    assert doc["open_on"] == ["distribution"] and doc["barred_by"]["live"] == ["pol-1"]
    assert doc["visible"]  # distribution's own status decides the general listing
    await s.feed(PolicyLifted(policy_id="pol-1"))
    assert s.doc()["open_on"] == ["showcase", "live", "distribution"]


async def test_a_provider_built_merchant_is_exempt_from_source_rules() -> None:
    s = Selection()
    await s.feed(listed(source={"kind": "wechat_mini_shop"}), activated())
    rule = {
        "kind": "disallow_source",
        "surfaces": ["showcase"],
        "sources": [{"kind": "wechat_mini_shop"}],
    }
    await s.feed(in_force("pol-1", [rule], service_provider_built=True))
    assert "showcase" not in s.doc()["open_on"]
    await s.feed(
        ShopRegistered(
            account_id="m-1", shop_id="s-1", shop_kind="mini_program", service_provider_built=True
        )
    )
    assert "showcase" in s.doc()["open_on"]


def test_eligibility_names_the_creator_and_the_shop_rules_they_fail() -> None:
    from vitrine.contract import policy_kernel as kernel

    rule = {"kind": "require_shop", "surfaces": ["live"], "shop_kind": "channels_shop"}
    policy = domain.Policy(
        "pol-2", tuple(in_force("pol-2", [rule]).rules), phases=frozenset({"block_new"})
    )
    flt = domain.eligibility("c-1", "live", None, [policy])
    assert {"shop_exempt": "pol-2"} in flt["$and"] and {"open_on": "live"} in flt["$and"]
    assert {"audience": {"$in": ["*", "c-1"]}} in flt["$and"] and {"sold_out": False} in flt["$and"]
    holder = kernel.Account("c-1", (kernel.Shop("s-1", "channels_shop"),))
    assert {"shop_exempt": "pol-2"} not in domain.eligibility("c-1", "live", holder, [policy])[
        "$and"
    ]
    assert {"shop_exempt": "pol-2"} not in domain.eligibility("c-1", "showcase", None, [policy])[
        "$and"
    ]


async def test_a_targeted_plan_is_shown_only_to_its_creators() -> None:
    s = Selection()
    await s.feed(listed(), activated(plan="targeted", creator_ids=["c-1", "c-2"]))
    assert s.doc()["audience"] == ["c-1", "c-2"]


async def test_sold_out_goods_stay_listed_and_come_back_in_stock() -> None:
    s = Selection()
    await s.feed(listed(), activated())
    await s.handlers["catalog.products"](
        [
            Event(
                incoming(ProductSoldOut(product_id="p-1"), "p-1").envelope.model_copy(
                    update={"time": FIXED_TIME}
                ),
                ProductSoldOut(product_id="p-1"),
            )
        ],
        s.uow,
    )
    assert s.doc()["sold_out"] and s.doc()["visible"]
    back = ProductBackInStock(product_id="p-1", total_stock=5)
    await s.handlers["catalog.products"](
        [Event(incoming(back, "p-1").envelope.model_copy(update={"time": FIXED_TIME}), back)], s.uow
    )
    assert not s.doc()["sold_out"]
