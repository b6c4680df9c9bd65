"""Review's price rules per SKU: ``invalid_price``/``missing_field`` per SKU with its field,
``price_jump`` per SKU against the live version's SKU of the same id."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vitrine.contract.events import ProductReviewRequested, ReviewRejected
from vitrine_review import rules
from vitrine_review.config import ReviewConfig

CONFIG = ReviewConfig()


def request(
    skus: list[dict[str, Any]], live: list[dict[str, Any]] | None = None, **over: Any
) -> ProductReviewRequested:
    data: dict[str, Any] = {
        "product_id": "p-1",
        "merchant_id": "m-1",
        "version": 2,
        "title": "Tea cup",
        "category": "kitchen",
        "images": ["https://img.example/1.jpg"],
        "source": {"kind": "channels_shop"},
        "skus": skus,
        "live_skus": live or [],
        "live_version": 1 if live else None,
        **over,
    }
    return ProductReviewRequested.model_validate(data)


def sku(sku_id: str, price: int | None, stock: int = 1) -> dict[str, Any]:
    return {"sku_id": sku_id, "price_fen": price, "stock": stock}


def test_each_bad_sku_price_is_named() -> None:
    req = request([sku("a", 100), sku("b", 0), sku("c", None), sku("d", 100_000_001)])
    reasons = rules.hard_reasons(req, CONFIG)
    assert [(r.code, r.field) for r in reasons] == [
        ("missing_field", "skus[2].price_fen"),
        ("invalid_price", "skus[1].price_fen"),
        ("invalid_price", "skus[3].price_fen"),
    ]


def test_the_implicit_default_sku_reports_the_top_level_field() -> None:
    reasons = rules.hard_reasons(request([sku("default", -5)], price_fen=-5), CONFIG)
    assert [(r.code, r.field) for r in reasons] == [("invalid_price", "price_fen")]
    reasons = rules.hard_reasons(request([sku("default", None)]), CONFIG)
    assert [(r.code, r.field) for r in reasons] == [("missing_field", "price_fen")]


def test_with_skus_the_top_level_price_is_not_required() -> None:
    assert rules.evaluate(request([sku("a", 100)], price_fen=None), CONFIG).outcome == "approved"


def test_price_jump_compares_the_same_sku_only() -> None:
    live = [{"sku_id": "a", "price_fen": 1000}, {"sku_id": "b", "price_fen": 1000}]
    req = request([sku("a", 1400), sku("b", 1600), sku("new", 99_999)], live)
    verdict = rules.evaluate(req, CONFIG)
    assert verdict.outcome == "escalated"
    assert [(r.code, r.field) for r in verdict.reasons] == [("price_jump", "skus[1].price_fen")]
    # Swapping ids is judged by id, not position.
    swapped = request([sku("b", 1000), sku("a", 1000)], live)
    assert rules.evaluate(swapped, CONFIG).outcome == "approved"


def test_a_request_without_skus_still_uses_the_top_level_prices() -> None:
    req = ProductReviewRequested.model_validate(
        {
            "product_id": "p-1",
            "merchant_id": "m-1",
            "version": 2,
            "title": "Tea cup",
            "category": "kitchen",
            "images": ["https://img.example/1.jpg"],
            "source": {"kind": "channels_shop"},
            "price_fen": 3000,
            "live_version": 1,
            "live_price_fen": 1000,
        }
    )
    [reason] = rules.evaluate(req, CONFIG).reasons
    assert (reason.code, reason.field) == ("price_jump", "price_fen")


def test_five_hundred_bad_skus_fit_one_rejection() -> None:
    req = request([sku(f"s{i}", 0) for i in range(500)])
    verdict = rules.evaluate(req, CONFIG)
    assert verdict.outcome == "rejected"
    assert len(verdict.reasons) == rules.MAX_SKU_REASONS
    assert verdict.reasons[-1].message == f"and {500 - rules.MAX_SKU_REASONS + 1} more SKUs"
    # The rejection event must still validate (a reason list holds at most 100).
    ReviewRejected(product_id="p-1", version=2, reasons=list(verdict.reasons))
    jumps = request(
        [sku(f"s{i}", 10_000) for i in range(500)],
        [{"sku_id": f"s{i}", "price_fen": 100} for i in range(500)],
    )
    assert len(rules.evaluate(jumps, CONFIG).reasons) == rules.MAX_SKU_REASONS


@given(
    prices=st.lists(st.integers(-10, 200_000_000) | st.none(), min_size=1, max_size=30),
)
def test_sku_price_verdict_property(prices: list[int | None]) -> None:
    """Rejected iff some SKU price is missing or outside (0, 100,000,000]."""
    req = request([sku(f"s{i}", p) for i, p in enumerate(prices)])
    bad = [p is None or not 0 < p <= rules.MAX_PRICE_FEN for p in prices]
    assert (rules.evaluate(req, CONFIG).outcome == "rejected") == any(bad)
