"""The catalog's product state machine, pure and fast."""

from __future__ import annotations

from typing import Any

from vitrine.contract.events import (
    CatalogAuditCancelled,
    ProductAuditCancelled,
    ProductDelisted,
    ProductListed,
    ProductRefused,
    ProductRejected,
    ProductReviewRequested,
    ProductSubmitted,
    ProductWithdrawn,
    Reason,
    ReviewApproved,
    ReviewRejected,
)
from vitrine.tools.testing.handlers import product_submitted
from vitrine_catalog import domain
from vitrine_catalog.domain import Product


def submitted(merchant: str = "m-1", **over: Any) -> ProductSubmitted:
    return product_submitted("p-1", merchant, **over)


def approved(version: int) -> ReviewApproved:
    return ReviewApproved(product_id="p-1", version=version)


def rejected(version: int, code: str = "banned_term") -> ReviewRejected:
    return ReviewRejected(product_id="p-1", version=version, reasons=[Reason(code=code)])


def listed_v1() -> Product:
    p = domain.submit(None, submitted()).state
    p = domain.approve(p, approved(1)).state
    assert p is not None and p.listed
    return p


def test_submit_creates_draft_v1_and_requests_review() -> None:
    out = domain.submit(None, submitted())
    assert out.state is not None
    assert out.state.last_version == 1
    assert out.state.draft is not None and out.state.draft.number == 1
    assert out.state.live is None and not out.state.listed
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
    p = domain.submit(None, submitted()).state
    out = domain.approve(p, approved(1))
    assert out.state is not None
    assert out.state.listed and out.state.draft is None
    assert out.state.live is not None and out.state.live.number == 1
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
    p = domain.submit(None, submitted()).state
    p = domain.submit(p, submitted(title="Tea cup v2")).state  # draft v2 replaces v1
    out = domain.approve(p, approved(1))
    assert out.ignored == "stale_decision" and out.events == [] and out.state == p
    assert domain.approve(listed_v1(), approved(1)).ignored == "stale_decision"
    assert domain.approve(None, approved(1)).ignored == "stale_decision"


def test_reject_drops_the_draft_and_reports_reasons() -> None:
    p = domain.submit(None, submitted()).state
    out = domain.reject(p, rejected(1))
    assert out.state is not None and out.state.draft is None and not out.state.listed
    [event] = out.events
    assert isinstance(event, ProductRejected)
    assert event.version == 1 and [r.code for r in event.reasons] == ["banned_term"]


def test_reject_of_an_edit_leaves_live_alone() -> None:
    live = listed_v1()
    p = domain.submit(live, submitted(title="最佳 tea cup")).state
    out = domain.reject(p, rejected(2))
    assert out.state is not None
    assert out.state.listed and out.state.live == live.live and out.state.draft is None


def test_stale_reject_is_ignored() -> None:
    live = listed_v1()
    out = domain.reject(live, rejected(1))
    assert out.ignored == "stale_decision" and out.state == live


def test_edit_of_listed_product_keeps_live_listed() -> None:
    live = listed_v1()
    out = domain.submit(live, submitted(title="Tea cup v2", price_fen=2990))
    assert out.state is not None
    assert out.state.listed and out.state.live == live.live
    assert out.state.draft is not None and out.state.draft.number == 2
    [event] = out.events
    assert isinstance(event, ProductReviewRequested)
    assert (event.version, event.live_version, event.live_price_fen) == (2, 1, 1990)
    listed = domain.approve(out.state, approved(2))
    assert listed.state is not None and listed.state.live is not None
    assert listed.state.live.number == 2 and listed.state.live.content["price_fen"] == 2990


def test_resubmission_replaces_pending_draft() -> None:
    p = domain.submit(None, submitted()).state
    out = domain.submit(p, submitted(title="Tea cup again"))
    assert out.state is not None and out.state.draft is not None
    assert out.state.draft.number == 2 and out.state.draft.content["title"] == "Tea cup again"


def test_withdraw_delists_and_drops_the_draft() -> None:
    live = listed_v1()
    p = domain.submit(live, submitted(title="Tea cup v2")).state
    out = domain.withdraw(p, ProductWithdrawn(product_id="p-1", merchant_id="m-1"))
    assert out.state is not None
    assert not out.state.listed and out.state.draft is None
    assert out.state.delisted_reason == "withdrawn"
    assert [type(e) for e in out.events] == [CatalogAuditCancelled, ProductDelisted]
    cancel, delisted = out.events
    assert isinstance(cancel, CatalogAuditCancelled) and cancel.version == 2
    assert isinstance(delisted, ProductDelisted)
    assert (delisted.reason, delisted.version) == ("withdrawn", 1)
    # a late approval of the dropped draft changes nothing
    assert domain.approve(out.state, approved(2)).ignored == "stale_decision"


def test_withdraw_of_a_listed_product_without_draft() -> None:
    out = domain.withdraw(listed_v1(), ProductWithdrawn(product_id="p-1", merchant_id="m-1"))
    assert [type(e) for e in out.events] == [ProductDelisted]


def test_withdraw_twice_or_unknown_is_ignored() -> None:
    cmd = ProductWithdrawn(product_id="p-1", merchant_id="m-1")
    gone = domain.withdraw(listed_v1(), cmd).state
    assert domain.withdraw(gone, cmd).ignored == "not_on_sale"
    assert domain.withdraw(None, cmd).ignored == "unknown_product"


def test_resubmit_after_withdraw_lists_again() -> None:
    cmd = ProductWithdrawn(product_id="p-1", merchant_id="m-1")
    gone = domain.withdraw(listed_v1(), cmd).state
    p = domain.submit(gone, submitted()).state
    out = domain.approve(p, approved(2))
    assert out.state is not None and out.state.listed
    assert out.state.delisted_reason is None


def test_cancel_audit_drops_draft_keeps_live() -> None:
    live = listed_v1()
    p = domain.submit(live, submitted(title="Tea cup v2")).state
    out = domain.cancel_audit(p, ProductAuditCancelled(product_id="p-1", merchant_id="m-1"))
    assert out.state is not None
    assert out.state.draft is None and out.state.listed and out.state.live == live.live
    [event] = out.events
    assert isinstance(event, CatalogAuditCancelled) and event.version == 2
    assert domain.approve(out.state, approved(2)).ignored == "stale_decision"


def test_cancel_audit_without_draft_is_ignored() -> None:
    cmd = ProductAuditCancelled(product_id="p-1", merchant_id="m-1")
    assert domain.cancel_audit(listed_v1(), cmd).ignored == "no_pending_review"
    assert domain.cancel_audit(None, cmd).ignored == "unknown_product"


def test_other_merchant_is_refused_everywhere() -> None:
    live = listed_v1()
    p = domain.submit(live, submitted(title="Tea cup v2")).state
    assert p is not None
    outcomes = [
        domain.submit(p, submitted(merchant="m-2")),
        domain.withdraw(p, ProductWithdrawn(product_id="p-1", merchant_id="m-2")),
        domain.cancel_audit(p, ProductAuditCancelled(product_id="p-1", merchant_id="m-2")),
    ]
    for out in outcomes:
        [reason] = out.refused
        assert reason.code == "not_product_owner" and reason.field == "merchant_id"
        [refusal] = out.events  # published, never dead-lettered
        assert isinstance(refusal, ProductRefused) and refusal.merchant_id == "m-2"
        assert refusal.reasons == [reason] and out.state == p
