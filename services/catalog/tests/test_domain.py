"""The catalog's product state machine, pure and fast."""

from __future__ import annotations

from typing import Any

from vitrine.contract.events import (
    CatalogAuditCancelled,
    ProductAuditCancelled,
    ProductDelisted,
    ProductListed,
    ProductRejected,
    ProductReviewRequested,
    ProductSubmitted,
    ProductWithdrawn,
    Reason,
    ReviewApproved,
    ReviewRejected,
)
from vitrine_catalog import domain
from vitrine_catalog.domain import Product


def submitted(merchant: str = "m-1", **over: Any) -> ProductSubmitted:
    data: dict[str, Any] = {
        "product_id": "p-1",
        "merchant_id": merchant,
        "title": "Tea cup",
        "category": "kitchen",
        "images": ["https://img.example/1.jpg"],
        "price_fen": 1990,
        "stock": 10,
        "source": {"kind": "channels_shop"},
    }
    data.update(over)
    return ProductSubmitted.model_validate(data)


def approved(version: int) -> ReviewApproved:
    return ReviewApproved(product_id="p-1", version=version)


def rejected(version: int, code: str = "banned_term") -> ReviewRejected:
    return ReviewRejected(product_id="p-1", version=version, reasons=[Reason(code=code)])


def listed_v1() -> Product:
    p = domain.submit(None, submitted()).product
    p = domain.approve(p, approved(1)).product
    assert p is not None and p.listed
    return p


def test_submit_creates_draft_v1_and_requests_review() -> None:
    out = domain.submit(None, submitted())
    assert out.product is not None
    assert out.product.last_version == 1
    assert out.product.draft is not None and out.product.draft.number == 1
    assert out.product.live is None and not out.product.listed
    [event] = out.events
    assert isinstance(event, ProductReviewRequested)
    assert (event.version, event.title, event.price_fen) == (1, "Tea cup", 1990)
    assert event.live_version is None and event.live_price_fen is None


def test_submit_keeps_values_review_must_judge() -> None:
    out = domain.submit(None, submitted(title=None, price_fen=-1, images=[]))
    [event] = out.events
    assert isinstance(event, ProductReviewRequested)
    assert event.title is None and event.price_fen == -1 and event.images == []


def test_approve_lists_the_draft() -> None:
    p = domain.submit(None, submitted()).product
    out = domain.approve(p, approved(1))
    assert out.product is not None
    assert out.product.listed and out.product.draft is None
    assert out.product.live is not None and out.product.live.number == 1
    [event] = out.events
    assert isinstance(event, ProductListed)
    assert (event.version, event.title, event.price_fen, event.category) == (
        1,
        "Tea cup",
        1990,
        "kitchen",
    )
    assert event.source.kind == "channels_shop"


def test_stale_approve_is_ignored() -> None:
    p = domain.submit(None, submitted()).product
    p = domain.submit(p, submitted(title="Tea cup v2")).product  # draft v2 replaces v1
    out = domain.approve(p, approved(1))
    assert out.ignored == "stale_decision" and out.events == [] and out.product == p
    assert domain.approve(listed_v1(), approved(1)).ignored == "stale_decision"
    assert domain.approve(None, approved(1)).ignored == "stale_decision"


def test_reject_drops_the_draft_and_reports_reasons() -> None:
    p = domain.submit(None, submitted()).product
    out = domain.reject(p, rejected(1))
    assert out.product is not None and out.product.draft is None and not out.product.listed
    [event] = out.events
    assert isinstance(event, ProductRejected)
    assert event.version == 1 and [r.code for r in event.reasons] == ["banned_term"]


def test_reject_of_an_edit_leaves_live_alone() -> None:
    live = listed_v1()
    p = domain.submit(live, submitted(title="最佳 tea cup")).product
    out = domain.reject(p, rejected(2))
    assert out.product is not None
    assert out.product.listed and out.product.live == live.live and out.product.draft is None


def test_stale_reject_is_ignored() -> None:
    live = listed_v1()
    out = domain.reject(live, rejected(1))
    assert out.ignored == "stale_decision" and out.product == live


def test_edit_of_listed_product_keeps_live_listed() -> None:
    live = listed_v1()
    out = domain.submit(live, submitted(title="Tea cup v2", price_fen=2990))
    assert out.product is not None
    assert out.product.listed and out.product.live == live.live
    assert out.product.draft is not None and out.product.draft.number == 2
    [event] = out.events
    assert isinstance(event, ProductReviewRequested)
    assert (event.version, event.live_version, event.live_price_fen) == (2, 1, 1990)
    listed = domain.approve(out.product, approved(2))
    assert listed.product is not None and listed.product.live is not None
    assert listed.product.live.number == 2 and listed.product.live.content["price_fen"] == 2990


def test_resubmission_replaces_pending_draft() -> None:
    p = domain.submit(None, submitted()).product
    out = domain.submit(p, submitted(title="Tea cup again"))
    assert out.product is not None and out.product.draft is not None
    assert out.product.draft.number == 2 and out.product.draft.content["title"] == "Tea cup again"


def test_withdraw_delists_and_drops_the_draft() -> None:
    live = listed_v1()
    p = domain.submit(live, submitted(title="Tea cup v2")).product
    out = domain.withdraw(p, ProductWithdrawn(product_id="p-1", merchant_id="m-1"))
    assert out.product is not None
    assert not out.product.listed and out.product.draft is None
    assert out.product.delisted_reason == "withdrawn"
    assert [type(e) for e in out.events] == [CatalogAuditCancelled, ProductDelisted]
    cancel, delisted = out.events
    assert isinstance(cancel, CatalogAuditCancelled) and cancel.version == 2
    assert isinstance(delisted, ProductDelisted)
    assert (delisted.reason, delisted.version) == ("withdrawn", 1)
    # a late approval of the dropped draft changes nothing
    assert domain.approve(out.product, approved(2)).ignored == "stale_decision"


def test_withdraw_of_a_listed_product_without_draft() -> None:
    out = domain.withdraw(listed_v1(), ProductWithdrawn(product_id="p-1", merchant_id="m-1"))
    assert [type(e) for e in out.events] == [ProductDelisted]


def test_withdraw_twice_or_unknown_is_ignored() -> None:
    cmd = ProductWithdrawn(product_id="p-1", merchant_id="m-1")
    gone = domain.withdraw(listed_v1(), cmd).product
    assert domain.withdraw(gone, cmd).ignored == "not_on_sale"
    assert domain.withdraw(None, cmd).ignored == "unknown_product"


def test_resubmit_after_withdraw_lists_again() -> None:
    cmd = ProductWithdrawn(product_id="p-1", merchant_id="m-1")
    gone = domain.withdraw(listed_v1(), cmd).product
    p = domain.submit(gone, submitted()).product
    out = domain.approve(p, approved(2))
    assert out.product is not None and out.product.listed
    assert out.product.delisted_reason is None


def test_cancel_audit_drops_draft_keeps_live() -> None:
    live = listed_v1()
    p = domain.submit(live, submitted(title="Tea cup v2")).product
    out = domain.cancel_audit(p, ProductAuditCancelled(product_id="p-1", merchant_id="m-1"))
    assert out.product is not None
    assert out.product.draft is None and out.product.listed and out.product.live == live.live
    [event] = out.events
    assert isinstance(event, CatalogAuditCancelled) and event.version == 2
    assert domain.approve(out.product, approved(2)).ignored == "stale_decision"


def test_cancel_audit_without_draft_is_ignored() -> None:
    cmd = ProductAuditCancelled(product_id="p-1", merchant_id="m-1")
    assert domain.cancel_audit(listed_v1(), cmd).ignored == "no_pending_review"
    assert domain.cancel_audit(None, cmd).ignored == "unknown_product"


def test_other_merchant_is_refused_everywhere() -> None:
    live = listed_v1()
    p = domain.submit(live, submitted(title="Tea cup v2")).product
    assert p is not None
    outcomes = [
        domain.submit(p, submitted(merchant="m-2")),
        domain.withdraw(p, ProductWithdrawn(product_id="p-1", merchant_id="m-2")),
        domain.cancel_audit(p, ProductAuditCancelled(product_id="p-1", merchant_id="m-2")),
    ]
    for out in outcomes:
        assert out.refused is not None and out.refused.code == "not_product_owner"
        assert out.refused.field == "merchant_id"
        assert out.events == [] and out.product == p
