"""SKUs, stock without review and platform delisting in the product state machine (pure)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vitrine.contract.events import (
    CatalogAuditCancelled,
    ProductAuditCancelled,
    ProductBackInStock,
    ProductDelisted,
    ProductListed,
    ProductPlatformDelisted,
    ProductPlatformReinstated,
    ProductRefused,
    ProductReviewRequested,
    ProductSoldOut,
    ProductStockChanged,
    ProductStockUpdated,
    ProductSubmitted,
    ProductWithdrawn,
    ReviewApproved,
)
from vitrine.tools.testing.handlers import product_submitted
from vitrine_catalog import domain
from vitrine_catalog.domain import Product

TWO_SKUS = [
    {"sku_id": "250g", "price_fen": 1990, "stock": 3, "attributes": {"weight": "250g"}},
    {"sku_id": "500g", "price_fen": 3590, "stock": 0},
]


def submitted(merchant: str = "m-1", **over: Any) -> ProductSubmitted:
    return product_submitted(
        "p-1", merchant, **{"title": "Longjing tea", "category": "food.tea", **over}
    )


def live(**over: Any) -> Product:
    """A product whose version 1 (``over`` applied to the submission) is live."""
    p = domain.submit(None, submitted(**over)).state
    p = domain.approve(p, ReviewApproved(product_id="p-1", version=1)).state
    assert p is not None and p.live is not None
    return p


def stock(sku: str, value: int, merchant: str = "m-1") -> ProductStockUpdated:
    return ProductStockUpdated(product_id="p-1", merchant_id=merchant, sku_id=sku, stock=value)


def delist(reason: str) -> ProductPlatformDelisted:
    return ProductPlatformDelisted.model_validate({"product_id": "p-1", "reason": reason})


REINSTATE = ProductPlatformReinstated(product_id="p-1")


def codes(decision: domain.ProductDecision) -> list[str]:
    return [r.code for r in decision.refused]


# --- SKUs ------------------------------------------------------------------------------------


def test_without_skus_the_product_has_one_default_sku() -> None:
    [req] = domain.submit(None, submitted()).events
    assert isinstance(req, ProductReviewRequested)
    assert [(s.sku_id, s.price_fen, s.stock) for s in req.skus] == [("default", 1990, 10)]
    out = domain.approve(
        domain.submit(None, submitted()).state, ReviewApproved(product_id="p-1", version=1)
    )
    [listed] = out.events
    assert isinstance(listed, ProductListed)
    assert [s.sku_id for s in listed.skus] == ["default"] and listed.total_stock == 10


def test_listed_carries_skus_images_and_the_lowest_price() -> None:
    p = domain.submit(None, submitted(skus=TWO_SKUS, price_fen=1, stock=99)).state
    [listed] = domain.approve(p, ReviewApproved(product_id="p-1", version=1)).events
    assert isinstance(listed, ProductListed)
    assert listed.price_fen == 1990 and listed.total_stock == 3
    assert [s.sku_id for s in listed.skus] == ["250g", "500g"]
    assert listed.skus[0].attributes == {"weight": "250g"}
    assert listed.images == ["https://img.example/1.jpg"]


def test_a_resubmission_sends_review_the_live_sku_prices() -> None:
    p = live(skus=TWO_SKUS)
    [req] = domain.submit(p, submitted(skus=TWO_SKUS)).events
    assert isinstance(req, ProductReviewRequested)
    assert [(s.sku_id, s.price_fen) for s in req.live_skus] == [("250g", 1990), ("500g", 3590)]
    assert req.live_version == 1 and req.price_fen == 1990


def test_a_version_going_live_without_stock_is_sold_out_and_the_next_one_back() -> None:
    p = domain.submit(None, submitted(stock=0)).state
    out = domain.approve(p, ReviewApproved(product_id="p-1", version=1))
    assert [type(e) for e in out.events] == [ProductListed, ProductSoldOut]
    assert out.state is not None and out.state.status == "sold_out"
    p2 = domain.submit(out.state, submitted(stock=5)).state
    out = domain.approve(p2, ReviewApproved(product_id="p-1", version=2))
    assert [type(e) for e in out.events] == [ProductListed, ProductBackInStock]


# --- stock without review ---------------------------------------------------------------------


def test_stock_update_applies_to_the_live_version_without_review() -> None:
    p = live(skus=TWO_SKUS)
    out = domain.update_stock(p, stock("500g", 7))
    [changed] = out.events
    assert isinstance(changed, ProductStockChanged)
    assert (changed.sku_id, changed.stock, changed.total_stock, changed.version) == (
        "500g",
        7,
        10,
        1,
    )
    assert out.state is not None and out.state.live is not None
    assert out.state.live.number == 1 and out.state.last_version == 1 and out.state.draft is None
    assert out.state.live.total_stock == 10


def test_last_unit_sold_out_then_back_in_stock() -> None:
    p = live(skus=TWO_SKUS)
    out = domain.update_stock(p, stock("250g", 0))
    assert [type(e) for e in out.events] == [ProductStockChanged, ProductSoldOut]
    assert out.state is not None and out.state.status == "sold_out" and out.state.listed
    out = domain.update_stock(out.state, stock("500g", 2))
    assert [type(e) for e in out.events] == [ProductStockChanged, ProductBackInStock]
    back = out.events[1]
    assert isinstance(back, ProductBackInStock) and back.total_stock == 2


def test_same_stock_changes_nothing() -> None:
    out = domain.update_stock(live(skus=TWO_SKUS), stock("250g", 3))
    assert out.ignored == "stock_unchanged" and not out.events


def test_stock_update_refusals() -> None:
    p = live(skus=TWO_SKUS)
    assert codes(domain.update_stock(p, stock("250g", 1, merchant="m-2"))) == ["not_product_owner"]
    assert codes(domain.update_stock(p, stock("1kg", 1))) == ["unknown_sku"]
    draft_only = domain.submit(None, submitted()).state
    assert codes(domain.update_stock(draft_only, stock("default", 1))) == ["product_not_listed"]
    unknown = domain.update_stock(None, stock("default", 1))
    assert codes(unknown) == ["product_not_listed"] and unknown.state is None
    [refusal] = unknown.events
    assert isinstance(refusal, ProductRefused) and refusal.command == "product.stock_updated"


def test_a_withdrawn_product_keeps_its_stock_editable() -> None:
    p = domain.withdraw(live(), ProductWithdrawn(product_id="p-1", merchant_id="m-1")).state
    out = domain.update_stock(p, stock("default", 0))
    assert [type(e) for e in out.events] == [ProductStockChanged, ProductSoldOut]
    assert out.state is not None and out.state.status == "withdrawn"


@given(
    initial=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    updates=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), max_size=30),
)
def test_stock_properties(initial: list[int], updates: list[tuple[int, int]]) -> None:
    """Total = the sum of the SKUs; ``sold_out`` iff the total crosses to 0, ``back_in_stock``
    iff it leaves 0; every applied update says the new total."""
    skus = [{"sku_id": f"s{i}", "price_fen": 100, "stock": n} for i, n in enumerate(initial)]
    p: Product | None = live(skus=skus)
    assert p is not None and p.live is not None
    expected = list(initial)
    for index, value in updates:
        before = sum(expected)
        out = domain.update_stock(p, stock(f"s{index}", value))
        if index >= len(expected):
            assert codes(out) == ["unknown_sku"]
            continue
        expected[index] = value
        after = sum(expected)
        types = [type(e) for e in out.events]
        assert (ProductSoldOut in types) == (before > 0 and after == 0)
        assert (ProductBackInStock in types) == (before == 0 and after > 0)
        for event in out.events:
            if isinstance(event, ProductStockChanged):
                assert event.total_stock == after
        p = out.state
        assert p is not None and p.live is not None
        assert p.live.total_stock == after == sum(s["stock"] for s in p.live.skus)
        assert p.status == ("sold_out" if after == 0 else "listed")


# --- platform delisting -----------------------------------------------------------------------


def test_platform_delisting_and_reinstatement_of_the_same_version() -> None:
    p = live()
    out = domain.platform_delist(p, delist("violation"))
    [delisted] = out.events
    assert isinstance(delisted, ProductDelisted) and delisted.reason == "violation"
    assert out.state is not None and out.state.status == "violation" and not out.state.listed
    assert domain.status_of(out.state)["status_code"] == 13
    assert domain.platform_delist(out.state, delist("violation")).ignored == "already_delisted"
    back = domain.platform_reinstate(out.state, REINSTATE)
    [listed] = back.events
    assert isinstance(listed, ProductListed) and listed.version == 1
    assert back.state is not None and back.state.status == "listed"
    assert domain.platform_reinstate(back.state, REINSTATE).ignored == "not_delisted"


def test_reinstatement_leaves_a_merchant_withdrawal_alone() -> None:
    p = domain.platform_delist(live(), delist("deposit_insufficient")).state
    p = domain.withdraw(p, ProductWithdrawn(product_id="p-1", merchant_id="m-1")).state
    out = domain.platform_reinstate(p, REINSTATE)
    assert not out.events and out.state is not None and out.state.status == "withdrawn"


def test_approval_while_held_goes_live_unlisted_until_reinstated() -> None:
    p = domain.platform_delist(live(), delist("brand_expired")).state
    p = domain.submit(p, submitted(title="Longjing tea, new box")).state
    out = domain.approve(p, ReviewApproved(product_id="p-1", version=2))
    assert not out.events and out.state is not None and out.state.status == "brand_expired"
    [listed] = domain.platform_reinstate(out.state, REINSTATE).events
    assert isinstance(listed, ProductListed) and listed.version == 2


def test_a_ban_is_final() -> None:
    p = domain.submit(live(), submitted(title="v2")).state
    out = domain.platform_delist(p, delist("banned"))
    assert [type(e) for e in out.events] == [CatalogAuditCancelled, ProductDelisted]
    banned = out.state
    assert banned is not None and banned.draft is None
    assert domain.status_of(banned) == {
        "status": "banned",
        "status_code": 20,
        "audit_state": "none",
        "total_stock": 10,
    }
    for decision in (
        domain.submit(banned, submitted()),
        domain.update_stock(banned, stock("default", 1)),
        domain.withdraw(banned, ProductWithdrawn(product_id="p-1", merchant_id="m-1")),
        domain.cancel_audit(banned, ProductAuditCancelled(product_id="p-1", merchant_id="m-1")),
        domain.platform_reinstate(banned, REINSTATE),
        domain.platform_delist(banned, delist("violation")),
    ):
        assert codes(decision) == ["product_banned"], decision
        assert decision.state is banned
    refusal = domain.platform_reinstate(banned, REINSTATE).events[0]
    assert isinstance(refusal, ProductRefused) and refusal.merchant_id is None


def test_platform_action_on_a_product_never_listed_only_marks_it() -> None:
    p = domain.submit(None, submitted()).state
    out = domain.platform_delist(p, delist("violation"))
    assert not out.events and out.state is not None and out.state.status == "violation"
    for unknown in (
        domain.platform_delist(None, delist("banned")),
        domain.platform_reinstate(None, REINSTATE),
    ):
        assert codes(unknown) == ["product_not_listed"] and unknown.state is None


def test_status_codes_and_audit_state() -> None:
    draft_only = domain.submit(None, submitted()).state
    assert draft_only is not None
    assert domain.status_of(draft_only) == {"status": "draft_only", "audit_state": "pending"}
    assert domain.status_of(live())["status_code"] == 5
    withdrawn = domain.withdraw(live(), ProductWithdrawn(product_id="p-1", merchant_id="m-1"))
    assert withdrawn.state is not None and domain.status_of(withdrawn.state)["status_code"] == 11
    sold_out = domain.update_stock(live(), stock("default", 0)).state
    assert sold_out is not None and domain.status_of(sold_out)["status_code"] == 12
    for reason, code in (
        ("violation", 13),
        ("deposit_insufficient", 14),
        ("brand_expired", 15),
        ("banned", 20),
    ):
        held = domain.platform_delist(live(), delist(reason)).state
        assert held is not None and domain.status_of(held)["status_code"] == code
