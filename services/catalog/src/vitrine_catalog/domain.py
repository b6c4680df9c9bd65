"""The product aggregate: a live version on sale and at most one draft under review.

Pure: no I/O. ``decide_*`` functions take the current :class:`Product` (or ``None``) and a
command or decision, and return the new state plus the events it causes, like the WeChat shop
API: edits go to a draft, the live version stays on sale until the draft passes review.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vitrine.contract.events import (
    CatalogAuditCancelled,
    EventData,
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


@dataclass(frozen=True)
class Version:
    """One submitted version of a product, as the merchant sent it."""

    number: int
    content: dict[str, Any]


@dataclass(frozen=True)
class Product:
    """A product as catalog keeps it (one document, ``_id`` = product id)."""

    product_id: str
    merchant_id: str
    last_version: int = 0
    live: Version | None = None
    listed: bool = False
    draft: Version | None = None
    delisted_reason: str | None = None


@dataclass(frozen=True)
class Outcome:
    """The new state (unchanged when nothing applies), what to publish, what was refused."""

    product: Product | None
    events: list[EventData] = field(default_factory=list)
    refused: Reason | None = None
    ignored: str | None = None


_CONTENT_FIELDS = ("title", "category", "images", "price_fen", "stock", "source", "attributes")


def _not_owner(product: Product, merchant_id: str) -> Reason:
    return Reason(
        code="not_product_owner",
        message=f"product {product.product_id} belongs to another merchant",
        field="merchant_id",
    )


def submit(product: Product | None, cmd: ProductSubmitted) -> Outcome:
    """A submission becomes draft n+1 (replacing any pending draft) and is sent to review."""
    if product is not None and product.merchant_id != cmd.merchant_id:
        return Outcome(product, refused=_not_owner(product, cmd.merchant_id))
    current = product or Product(cmd.product_id, cmd.merchant_id)
    content = cmd.model_dump(mode="json", include=set(_CONTENT_FIELDS))
    draft = Version(current.last_version + 1, content)
    new = replace(current, last_version=draft.number, draft=draft)
    live = current.live
    return Outcome(
        new,
        [
            ProductReviewRequested(
                product_id=cmd.product_id,
                merchant_id=cmd.merchant_id,
                version=draft.number,
                **{
                    k: v
                    for k, v in cmd.model_dump(include=set(_CONTENT_FIELDS)).items()
                    if v is not None
                },
                live_version=live.number if live and current.listed else None,
                live_price_fen=live.content.get("price_fen") if live and current.listed else None,
            )
        ],
    )


def approve(product: Product | None, decision: ReviewApproved) -> Outcome:
    """The current draft goes live; a decision about any other version is stale."""
    if product is None or product.draft is None or product.draft.number != decision.version:
        return Outcome(product, ignored="stale_decision")
    draft = product.draft
    new = replace(product, live=draft, draft=None, listed=True, delisted_reason=None)
    c = draft.content
    return Outcome(
        new,
        [
            ProductListed(
                product_id=product.product_id,
                merchant_id=product.merchant_id,
                version=draft.number,
                source=c["source"],
                title=c["title"],
                price_fen=c["price_fen"],
                category=c.get("category"),
            )
        ],
    )


def reject(product: Product | None, decision: ReviewRejected) -> Outcome:
    """The current draft is dropped; any live version stays on sale."""
    if product is None or product.draft is None or product.draft.number != decision.version:
        return Outcome(product, ignored="stale_decision")
    new = replace(product, draft=None)
    return Outcome(
        new,
        [
            ProductRejected(
                product_id=product.product_id,
                merchant_id=product.merchant_id,
                version=decision.version,
                reasons=decision.reasons,
            )
        ],
    )


def withdraw(product: Product | None, cmd: ProductWithdrawn) -> Outcome:
    """The merchant takes the product off sale; a pending draft is dropped with it."""
    if product is None:
        return Outcome(None, ignored="unknown_product")
    if product.merchant_id != cmd.merchant_id:
        return Outcome(product, refused=_not_owner(product, cmd.merchant_id))
    events: list[EventData] = []
    if product.draft is not None:
        events.append(
            CatalogAuditCancelled(
                product_id=product.product_id,
                merchant_id=product.merchant_id,
                version=product.draft.number,
            )
        )
    if product.listed:
        events.append(
            ProductDelisted(
                product_id=product.product_id,
                merchant_id=product.merchant_id,
                reason="withdrawn",
                version=product.live.number if product.live else None,
            )
        )
    if not events:
        return Outcome(product, ignored="not_on_sale")
    return Outcome(replace(product, listed=False, draft=None, delisted_reason="withdrawn"), events)


def cancel_audit(product: Product | None, cmd: ProductAuditCancelled) -> Outcome:
    """The merchant cancels the pending review: the draft is dropped, the live version stays."""
    if product is None:
        return Outcome(None, ignored="unknown_product")
    if product.merchant_id != cmd.merchant_id:
        return Outcome(product, refused=_not_owner(product, cmd.merchant_id))
    if product.draft is None:
        return Outcome(product, ignored="no_pending_review")
    return Outcome(
        replace(product, draft=None),
        [
            CatalogAuditCancelled(
                product_id=product.product_id,
                merchant_id=product.merchant_id,
                version=product.draft.number,
            )
        ],
    )
