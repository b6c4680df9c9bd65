"""Products: ``merchants.products`` (inputs) and ``catalog.products`` (catalog's outputs).

A submission is deliberately lenient about the values review judges (title length, price,
images, missing fields): a bad value must reach review and come back as a ``product.rejected``
with a reason code, not go to the DLQ. It is still bounded.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, Field, StringConstraints

from vitrine.contract.events.base import EventData, Fen, Id, Source, Text
from vitrine.contract.events.common import Code, Nested, ReasonList, SignedFen, Version

#: A title as submitted (review refuses > 60 chars with ``title_too_long``).
ProductTitle = Annotated[str, StringConstraints(max_length=1000)]
Category = Annotated[str, StringConstraints(max_length=200)]
ImageUrl = Annotated[str, StringConstraints(max_length=2048)]
Images = Annotated[list[ImageUrl], Field(max_length=50)]
Stock = Annotated[int, Field(ge=0, le=10**9)]
AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
AttributeValue = (
    Annotated[str, StringConstraints(max_length=1000)]
    | int
    | Annotated[float, Field(allow_inf_nan=False)]
    | bool
    | None
)
MAX_ATTRIBUTES = 50
_INT64 = 2**63


def _fits_int64(value: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
    # Checked here rather than on the int branch, which would let a big int fall through to
    # ``float`` and be silently rounded.
    for name, item in value.items():
        if isinstance(item, int) and not isinstance(item, bool) and not -_INT64 <= item < _INT64:
            raise ValueError(f"attribute {name[:100]!r}: integer does not fit in 64 bits")
    return value


#: Free-form attributes: at most 50, scalar values only (no nesting reaches MongoDB).
Attributes = Annotated[
    dict[AttributeName, AttributeValue],
    Field(max_length=MAX_ATTRIBUTES),
    AfterValidator(_fits_int64),
]


#: At most this many SKUs (规格) per product.
MAX_SKUS = 500
#: The SKU a product submitted without ``skus[]`` has (top-level ``price_fen``/``stock``).
DEFAULT_SKU = "default"
#: A product's total stock: the sum over its SKUs.
TotalStock = Annotated[int, Field(ge=0, le=MAX_SKUS * 10**9)]


class Sku(Nested):
    """One SKU as submitted. The price is lenient like the top-level one: review judges it
    (``invalid_price`` / ``missing_field`` with ``field`` = ``skus[i].price_fen``)."""

    sku_id: Id
    price_fen: SignedFen | None = None
    stock: Stock
    attributes: Attributes = Field(default_factory=dict)


class SkuPrice(Nested):
    """A live SKU's price, which review compares a draft's SKU of the same id with."""

    sku_id: Id
    price_fen: SignedFen


class ListedSku(Nested):
    """One SKU of a live version (passed review, so its price is valid)."""

    sku_id: Id
    price_fen: Fen
    stock: Stock
    attributes: Attributes = Field(default_factory=dict)


_S = TypeVar("_S", Sku, SkuPrice, ListedSku)


def _unique_sku_ids(skus: list[_S]) -> list[_S]:
    seen: set[str] = set()
    for sku in skus:
        if sku.sku_id in seen:
            raise ValueError(f"sku_id {sku.sku_id!r} appears twice")
        seen.add(sku.sku_id)
    return skus


#: A submission's SKUs: 1–500, ``sku_id`` unique within the product (else dead-lettered).
Skus = Annotated[
    list[Sku], Field(min_length=1, max_length=MAX_SKUS), AfterValidator(_unique_sku_ids)
]
SkuPrices = Annotated[list[SkuPrice], Field(max_length=MAX_SKUS), AfterValidator(_unique_sku_ids)]
ListedSkus = Annotated[list[ListedSku], Field(max_length=MAX_SKUS), AfterValidator(_unique_sku_ids)]
#: Why the platform delists a product (``banned`` is for good).
PlatformDelistReason = Literal["violation", "deposit_insufficient", "brand_expired", "banned"]


# --- merchants.products (inputs) ---------------------------------------------------------------


class ProductSubmitted(EventData):
    """A merchant submits a product; each submission becomes a new draft version."""

    event_type: ClassVar[str] = "product.submitted"

    product_id: Id
    merchant_id: Id
    title: ProductTitle | None = None
    category: Category | None = None
    images: Images = Field(default_factory=list)
    price_fen: SignedFen | None = None
    stock: Stock | None = None
    source: Source | None = None
    attributes: Attributes = Field(default_factory=dict)
    skus: Skus | None = None


class ProductStockUpdated(EventData):
    """The merchant sets one SKU's stock (absolute) on the live version, without review."""

    event_type: ClassVar[str] = "product.stock_updated"

    product_id: Id
    merchant_id: Id
    sku_id: Id
    stock: Stock


class ProductWithdrawn(EventData):
    """The merchant takes the product off sale."""

    event_type: ClassVar[str] = "product.withdrawn"

    product_id: Id
    merchant_id: Id


class ProductAuditCancelled(EventData):
    """The merchant cancels the pending review of its draft (input on ``merchants.products``)."""

    event_type: ClassVar[str] = "product.audit_cancelled"

    product_id: Id
    merchant_id: Id


# --- platform.actions (inputs) ----------------------------------------------------------------


class ProductPlatformDelisted(EventData):
    """The platform (trust & safety) delists a product; ``banned`` is final."""

    event_type: ClassVar[str] = "product.platform_delisted"

    product_id: Id
    reason: PlatformDelistReason
    note: Text | None = None


class ProductPlatformReinstated(EventData):
    """The platform undoes its delisting (never a ban)."""

    event_type: ClassVar[str] = "product.platform_reinstated"

    product_id: Id
    note: Text | None = None


# --- catalog.products (outputs) ----------------------------------------------------------------


class ProductReviewRequested(EventData):
    """Catalog asks review to audit a draft. Carries the whole draft, plus what review needs of
    the live version (``price_jump``) so review never reads catalog's database."""

    event_type: ClassVar[str] = "product.review_requested"

    product_id: Id
    merchant_id: Id
    version: Version
    title: ProductTitle | None = None
    category: Category | None = None
    images: Images = Field(default_factory=list)
    price_fen: SignedFen | None = None
    stock: Stock | None = None
    source: Source | None = None
    attributes: Attributes = Field(default_factory=dict)
    live_version: Version | None = None
    live_price_fen: SignedFen | None = None
    #: The draft's SKUs (always at least one: ``default`` when submitted without ``skus[]``).
    skus: Annotated[list[Sku], Field(max_length=MAX_SKUS)] = Field(default_factory=list)
    #: The live version's SKU prices, for ``price_jump`` per SKU (empty: nothing live).
    live_skus: SkuPrices = Field(default_factory=list)


class ProductListed(EventData):
    """A version went live (passed review): what downstream services project."""

    event_type: ClassVar[str] = "product.listed"

    product_id: Id
    merchant_id: Id
    version: Version
    source: Source
    title: ProductTitle
    #: The lowest SKU price.
    price_fen: Fen
    category: Category | None = None
    images: Images = Field(default_factory=list)
    skus: ListedSkus = Field(default_factory=list)
    total_stock: TotalStock | None = None


class ProductRejected(EventData):
    """Review rejected a draft; any live version stays on sale."""

    event_type: ClassVar[str] = "product.rejected"

    product_id: Id
    merchant_id: Id | None = None
    version: Version
    reasons: ReasonList = Field(default_factory=list)


class ProductDelisted(EventData):
    """The product is no longer on sale. ``reason``: ``withdrawn`` (the merchant) |
    ``violation`` | ``deposit_insufficient`` | ``brand_expired`` | ``banned`` (the platform)."""

    event_type: ClassVar[str] = "product.delisted"

    product_id: Id
    merchant_id: Id | None = None
    reason: Code
    version: Version | None = None


class CatalogAuditCancelled(EventData):
    """Catalog dropped a pending draft (output ``product.audit_cancelled`` on catalog.products)."""

    event_type: ClassVar[str] = "product.audit_cancelled"

    product_id: Id
    merchant_id: Id | None = None
    version: Version | None = None


class ProductStockChanged(EventData):
    """One SKU's stock on the live version changed (no review, no new version)."""

    event_type: ClassVar[str] = "product.stock_changed"

    product_id: Id
    merchant_id: Id | None = None
    version: Version | None = None
    sku_id: Id
    stock: Stock
    total_stock: TotalStock


class ProductSoldOut(EventData):
    """The live version's total stock reached 0: still listed, not buyable."""

    event_type: ClassVar[str] = "product.sold_out"

    product_id: Id
    merchant_id: Id | None = None
    version: Version | None = None


class ProductBackInStock(EventData):
    """The live version's total stock rose from 0 again."""

    event_type: ClassVar[str] = "product.back_in_stock"

    product_id: Id
    merchant_id: Id | None = None
    version: Version | None = None
    total_stock: TotalStock


class ProductRefused(EventData):
    """Catalog refused a merchant's command (e.g. ``not_product_owner``); nothing changed.

    Beyond the design's list of catalog outputs: added so a refused command gets a clear answer on
    ``catalog.products`` rather than only a log line.
    """

    event_type: ClassVar[str] = "product.refused"

    product_id: Id
    #: ``None`` for a refused platform action (``product_banned`` on ``platform.actions``).
    merchant_id: Id | None = None
    command: Code
    reasons: ReasonList = Field(default_factory=list)
