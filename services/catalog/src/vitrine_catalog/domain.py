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
    DEFAULT_SKU,
    CatalogAuditCancelled,
    EventData,
    ListedSku,
    ProductAuditCancelled,
    ProductBackInStock,
    ProductDelisted,
    ProductListed,
    ProductPlatformDelisted,
    ProductPlatformReinstated,
    ProductRefused,
    ProductRejected,
    ProductReviewRequested,
    ProductSoldOut,
    ProductStockChanged,
    ProductStockUpdated,
    ProductSubmitted,
    ProductWithdrawn,
    Reason,
    ReviewApproved,
    ReviewRejected,
    SkuPrice,
)
from vitrine.runtime.decision import Decision, Emit


@dataclass(frozen=True)
class Version:
    """One submitted version of a product, as the merchant sent it (``content["skus"]`` always
    holds its SKUs; only a stock update changes a live version's content)."""

    number: int
    content: dict[str, Any]

    @property
    def skus(self) -> list[dict[str, Any]]:
        """The version's SKUs (a version stored before SKUs existed has the ``default`` one)."""
        return skus_of(self.content)

    @property
    def total_stock(self) -> int:
        """The sum of its SKUs' stock."""
        return sum(int(sku.get("stock") or 0) for sku in self.skus)


def skus_of(content: dict[str, Any]) -> list[dict[str, Any]]:
    """The SKUs of a version's content: its ``skus`` or the ``default`` one from the top level."""
    skus = content.get("skus")
    if skus:
        return list(skus)
    return [
        {
            "sku_id": DEFAULT_SKU,
            "price_fen": content.get("price_fen"),
            "stock": content.get("stock") or 0,
            "attributes": {},
        }
    ]


#: WeChat shop API status codes beside catalog's ``status`` (a product with no live version has
#: none: ``draft_only``).
STATUS_CODES = {
    "listed": 5,
    "withdrawn": 11,
    "sold_out": 12,
    "violation": 13,
    "deposit_insufficient": 14,
    "brand_expired": 15,
    "banned": 20,
}
BANNED = "banned"


@dataclass(frozen=True)
class Product:
    """A product as catalog keeps it (one document, ``_id`` = product id).

    ``withdrawn`` (by the merchant) and ``platform_hold`` (the platform's delisting reason)
    are kept apart: a reinstatement lifts only the platform's, a new approved version only the
    merchant's.
    """

    product_id: str
    merchant_id: str
    last_version: int = 0
    live: Version | None = None
    draft: Version | None = None
    withdrawn: bool = False
    platform_hold: str | None = None

    @property
    def listed(self) -> bool:
        """On sale: a live version, neither withdrawn nor held by the platform (sold out or
        not)."""
        return self.live is not None and not self.withdrawn and self.platform_hold is None

    @property
    def banned(self) -> bool:
        return self.platform_hold == BANNED

    @property
    def delisted_reason(self) -> str | None:
        """Why a product with a live version is off sale (the platform's reason first)."""
        return self.platform_hold or ("withdrawn" if self.withdrawn else None)

    @property
    def status(self) -> str:
        """``banned``, a platform reason, ``withdrawn``, ``sold_out``, ``listed`` or
        ``draft_only`` (no live version)."""
        if self.platform_hold is not None:
            return self.platform_hold
        if self.live is None:
            return "draft_only"
        if self.withdrawn:
            return "withdrawn"
        return "sold_out" if self.live.total_stock == 0 else "listed"


#: What every function here returns: the product after the input (``None``: still unknown).
ProductDecision = Decision[Product | None]
#: The commands a merchant sends about one product (all refused to anyone but its owner).
Command = ProductSubmitted | ProductStockUpdated | ProductWithdrawn | ProductAuditCancelled
PlatformAction = ProductPlatformDelisted | ProductPlatformReinstated


_CONTENT_FIELDS = ("title", "category", "images", "price_fen", "stock", "source", "attributes")


def _refuse(
    product: Product, cmd: Command | PlatformAction, code: str, message: str, field: str
) -> ProductDecision:
    """Refuse ``cmd`` (nothing changes) and publish the refusal on ``catalog.products``."""
    reason = Reason(code=code, message=message, field=field)
    refusal = ProductRefused(
        product_id=product.product_id,
        merchant_id=getattr(cmd, "merchant_id", None),
        command=cmd.event_type,
        reasons=[reason],
    )
    return Decision.refuse(product, [reason], Emit(refusal, product.product_id))


def _not_owner(product: Product, cmd: Command) -> ProductDecision:
    return _refuse(
        product,
        cmd,
        "not_product_owner",
        f"product {product.product_id} belongs to another merchant",
        "merchant_id",
    )


def _banned(product: Product, cmd: Command | PlatformAction) -> ProductDecision:
    return _refuse(
        product,
        cmd,
        "product_banned",
        f"product {product.product_id} is banned by the platform",
        "product_id",
    )


def _unknown(cmd: ProductStockUpdated | PlatformAction) -> ProductDecision:
    """Refuse a stock update or platform action about a product catalog has never seen (an
    answer on ``catalog.products`` rather than silence: the sender may have a wrong id)."""
    reason = Reason(code="product_not_listed", message="no such product", field="product_id")
    unknown = ProductRefused(
        product_id=cmd.product_id,
        merchant_id=getattr(cmd, "merchant_id", None),
        command=cmd.event_type,
        reasons=[reason],
    )
    return Decision.refuse(None, [reason], Emit(unknown, cmd.product_id))


def _check(product: Product, cmd: Command) -> ProductDecision | None:
    """The refusal every merchant command gets first: not the owner, or banned."""
    if product.merchant_id != cmd.merchant_id:
        return _not_owner(product, cmd)
    if product.banned:
        return _banned(product, cmd)
    return None


def _emit(product: Product, *events: EventData) -> ProductDecision:
    return Decision(product, [Emit(e, product.product_id) for e in events])


def _listed(product: Product, version: Version) -> ProductListed:
    c = version.content
    skus = version.skus
    return ProductListed(
        product_id=product.product_id,
        merchant_id=product.merchant_id,
        version=version.number,
        source=c["source"],
        title=c["title"],
        price_fen=min(sku["price_fen"] for sku in skus),
        category=c.get("category"),
        images=c.get("images") or [],
        skus=[ListedSku.model_validate(sku) for sku in skus],
        total_stock=version.total_stock,
    )


def _stock_crossing(product: Product, before: int | None, after: int) -> list[EventData]:
    """``product.sold_out`` when the live total reaches 0 (or a version goes live with none),
    ``product.back_in_stock`` when it rises from 0; nothing otherwise."""
    live = product.live
    version = live.number if live else None
    if after == 0 and before != 0:
        return [
            ProductSoldOut(
                product_id=product.product_id, merchant_id=product.merchant_id, version=version
            )
        ]
    if after > 0 and before == 0:
        return [
            ProductBackInStock(
                product_id=product.product_id,
                merchant_id=product.merchant_id,
                version=version,
                total_stock=after,
            )
        ]
    return []


def _draft_content(cmd: ProductSubmitted) -> dict[str, Any]:
    content = cmd.model_dump(mode="json", include=set(_CONTENT_FIELDS))
    if cmd.skus:
        content["skus"] = [sku.model_dump(mode="json") for sku in cmd.skus]
        prices = [sku.price_fen for sku in cmd.skus if sku.price_fen is not None]
        # Top-level price/stock are derived from the SKUs (the submitted ones are ignored).
        content["price_fen"] = min(prices) if prices else None
        content["stock"] = sum(sku.stock for sku in cmd.skus)
    else:
        content["skus"] = skus_of(content)
    return content


def submit(product: Product | None, cmd: ProductSubmitted) -> ProductDecision:
    """A submission becomes draft n+1 (replacing any pending draft) and is sent to review."""
    if product is not None and (refusal := _check(product, cmd)):
        return refusal
    current = product or Product(cmd.product_id, cmd.merchant_id)
    content = _draft_content(cmd)
    draft = Version(current.last_version + 1, content)
    new = replace(current, last_version=draft.number, draft=draft)
    live = current.live if current.listed else None
    return _emit(
        new,
        ProductReviewRequested(
            product_id=cmd.product_id,
            merchant_id=cmd.merchant_id,
            version=draft.number,
            **{k: v for k, v in content.items() if v is not None},
            live_version=live.number if live else None,
            live_price_fen=live.content.get("price_fen") if live else None,
            live_skus=[
                SkuPrice(sku_id=s["sku_id"], price_fen=s["price_fen"])
                for s in (live.skus if live else [])
                if s.get("price_fen") is not None
            ],
        ),
    )


def approve(product: Product | None, decision: ReviewApproved) -> ProductDecision:
    """The current draft goes live; a decision about any other version is stale.

    A merchant's withdrawal ends with it; a platform hold does not: the version becomes the
    live one, listed when the platform reinstates the product.
    """
    if product is None or product.draft is None or product.draft.number != decision.version:
        return Decision.ignore(product, "stale_decision")
    draft = product.draft
    before = product.live.total_stock if product.live else None
    new = replace(product, live=draft, draft=None, withdrawn=False)
    events: list[EventData] = [_listed(new, draft)] if new.listed else []
    events += _stock_crossing(new, before, draft.total_stock)
    return _emit(new, *events)


#: Why a review verdict is held rather than decided: it names a version not submitted yet (a
#: replay, or a lagging consumer, read ``review.decisions`` ahead of ``merchants.products``).
AWAITS_SUBMISSION = "awaits_submission"


def await_submission(product: Product | None, version: int) -> ProductDecision | None:
    """Hold a verdict on a version catalog has not seen submitted (``None``: decide it now; a
    verdict on an older version than the last submitted one is stale at once)."""
    if product is None or version > product.last_version:
        return Decision.ignore(product, AWAITS_SUBMISSION)
    return None


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
    """The merchant takes the product off sale; a pending draft is dropped with it
    (``product.delisted`` only when it was on sale)."""
    if product is None:
        return Decision.ignore(None, "unknown_product")
    if refusal := _check(product, cmd):
        return refusal
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
    withdrawing = product.live is not None and not product.withdrawn
    if not events and not withdrawing:
        return Decision.ignore(product, "not_on_sale")
    # Recorded even while the platform holds it, so a reinstatement does not relist it.
    return _emit(replace(product, withdrawn=product.live is not None, draft=None), *events)


def cancel_audit(product: Product | None, cmd: ProductAuditCancelled) -> ProductDecision:
    """The merchant cancels the pending review: the draft is dropped, the live version stays."""
    if product is None:
        return Decision.ignore(None, "unknown_product")
    if refusal := _check(product, cmd):
        return refusal
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


def update_stock(product: Product | None, cmd: ProductStockUpdated) -> ProductDecision:
    """One SKU's stock on the live version, at once and without review (免审更新)."""
    if product is None:
        return _unknown(cmd)
    if refusal := _check(product, cmd):
        return refusal
    live = product.live
    if live is None:
        return _refuse(
            product, cmd, "product_not_listed", "the product has no live version", "product_id"
        )
    skus = live.skus
    index = next((i for i, s in enumerate(skus) if s["sku_id"] == cmd.sku_id), None)
    if index is None:
        return _refuse(
            product, cmd, "unknown_sku", f"version {live.number} has no such SKU", "sku_id"
        )
    if skus[index].get("stock") == cmd.stock:
        return Decision.ignore(product, "stock_unchanged")
    skus[index] = {**skus[index], "stock": cmd.stock}
    new_live = replace(live, content={**live.content, "skus": skus})
    before, after = live.total_stock, new_live.total_stock
    new = replace(product, live=replace(new_live, content={**new_live.content, "stock": after}))
    changed = ProductStockChanged(
        product_id=product.product_id,
        merchant_id=product.merchant_id,
        version=live.number,
        sku_id=cmd.sku_id,
        stock=cmd.stock,
        total_stock=after,
    )
    return _emit(new, changed, *_stock_crossing(new, before, after))


def platform_delist(product: Product | None, action: ProductPlatformDelisted) -> ProductDecision:
    """The platform delists the product for ``action.reason``; a ban also drops any draft."""
    if product is None:
        return _unknown(action)
    if product.banned:
        return _banned(product, action)
    if product.platform_hold == action.reason:
        return Decision.ignore(product, "already_delisted")
    events: list[EventData] = []
    new = replace(product, platform_hold=action.reason)
    if action.reason == BANNED and product.draft is not None:
        events.append(
            CatalogAuditCancelled(
                product_id=product.product_id,
                merchant_id=product.merchant_id,
                version=product.draft.number,
            )
        )
        new = replace(new, draft=None)
    if product.live is not None:
        events.append(
            ProductDelisted(
                product_id=product.product_id,
                merchant_id=product.merchant_id,
                reason=action.reason,
                version=product.live.number,
            )
        )
    return _emit(new, *events)


def platform_reinstate(
    product: Product | None, action: ProductPlatformReinstated
) -> ProductDecision:
    """The platform lifts its delisting: listed again (same live version) unless withdrawn."""
    if product is None:
        return _unknown(action)
    if product.banned:
        return _banned(product, action)
    if product.platform_hold is None:
        return Decision.ignore(product, "not_delisted")
    new = replace(product, platform_hold=None)
    return _emit(new, *([_listed(new, new.live)] if new.listed and new.live else []))


def status_of(product: Product) -> dict[str, Any]:
    """The product query's status fields: ``status``, the WeChat ``status_code`` and the
    draft's ``audit_state``."""
    out: dict[str, Any] = {"status": product.status}
    if product.status in STATUS_CODES:
        out["status_code"] = STATUS_CODES[product.status]
    out["audit_state"] = "pending" if product.draft is not None else "none"
    if product.live is not None:
        out["total_stock"] = product.live.total_stock
    return out
