"""The product aggregate: a live version on sale and at most one draft under review.

Pure: no I/O. Each function takes the current :class:`Product` (or ``None``) and a command or
review decision, and returns a :class:`~vitrine.runtime.decision.Decision`: the new product,
the events it causes, or the refusal — like the WeChat shop API: edits go to a draft, the
live version stays on sale until the draft passes review.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from vitrine.contract.events import (
    CatalogAuditCancelled,
    EventData,
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
from vitrine.runtime.decision import Decision, Emit


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


#: What every function here returns: the product after the input (``None``: still unknown).
ProductDecision = Decision[Product | None]
#: The commands a merchant sends about one product (all refused to anyone but its owner).
Command = ProductSubmitted | ProductWithdrawn | ProductAuditCancelled


_CONTENT_FIELDS = ("title", "category", "images", "price_fen", "stock", "source", "attributes")


def _not_owner(product: Product, cmd: Command) -> ProductDecision:
    """Refuse ``cmd`` from a merchant who does not own ``product``; publish the refusal."""
    reason = Reason(
        code="not_product_owner",
        message=f"product {product.product_id} belongs to another merchant",
        field="merchant_id",
    )
    refusal = ProductRefused(
        product_id=product.product_id,
        merchant_id=cmd.merchant_id,
        command=cmd.event_type,
        reasons=[reason],
    )
    return Decision.refuse(product, [reason], Emit(refusal, product.product_id))


def _emit(product: Product, *events: EventData) -> ProductDecision:
    return Decision(product, [Emit(e, product.product_id) for e in events])


def submit(product: Product | None, cmd: ProductSubmitted) -> ProductDecision:
    """A submission becomes draft n+1 (replacing any pending draft) and is sent to review."""
    if product is not None and product.merchant_id != cmd.merchant_id:
        return _not_owner(product, cmd)
    current = product or Product(cmd.product_id, cmd.merchant_id)
    content = cmd.model_dump(mode="json", include=set(_CONTENT_FIELDS))
    draft = Version(current.last_version + 1, content)
    new = replace(current, last_version=draft.number, draft=draft)
    live = current.live
    return _emit(
        new,
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
        ),
    )


def approve(product: Product | None, decision: ReviewApproved) -> ProductDecision:
    """The current draft goes live; a decision about any other version is stale."""
    if product is None or product.draft is None or product.draft.number != decision.version:
        return Decision.ignore(product, "stale_decision")
    draft = product.draft
    new = replace(product, live=draft, draft=None, listed=True, delisted_reason=None)
    c = draft.content
    return _emit(
        new,
        ProductListed(
            product_id=product.product_id,
            merchant_id=product.merchant_id,
            version=draft.number,
            source=c["source"],
            title=c["title"],
            price_fen=c["price_fen"],
            category=c.get("category"),
        ),
    )


def reject(product: Product | None, decision: ReviewRejected) -> ProductDecision:
    """The current draft is dropped; any live version stays on sale."""
    if product is None or product.draft is None or product.draft.number != decision.version:
        return Decision.ignore(product, "stale_decision")
    new = replace(product, draft=None)
    return _emit(
        new,
        ProductRejected(
            product_id=product.product_id,
            merchant_id=product.merchant_id,
            version=decision.version,
            reasons=decision.reasons,
        ),
    )


def withdraw(product: Product | None, cmd: ProductWithdrawn) -> ProductDecision:
    """The merchant takes the product off sale; a pending draft is dropped with it."""
    if product is None:
        return Decision.ignore(None, "unknown_product")
    if product.merchant_id != cmd.merchant_id:
        return _not_owner(product, cmd)
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
        return Decision.ignore(product, "not_on_sale")
    return _emit(replace(product, listed=False, draft=None, delisted_reason="withdrawn"), *events)


def cancel_audit(product: Product | None, cmd: ProductAuditCancelled) -> ProductDecision:
    """The merchant cancels the pending review: the draft is dropped, the live version stays."""
    if product is None:
        return Decision.ignore(None, "unknown_product")
    if product.merchant_id != cmd.merchant_id:
        return _not_owner(product, cmd)
    if product.draft is None:
        return Decision.ignore(product, "no_pending_review")
    return _emit(
        replace(product, draft=None),
        CatalogAuditCancelled(
            product_id=product.product_id,
            merchant_id=product.merchant_id,
            version=product.draft.number,
        ),
    )
