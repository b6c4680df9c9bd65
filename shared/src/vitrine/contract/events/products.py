"""Products: ``merchants.products`` (inputs) and ``catalog.products`` (catalog's outputs).

A submission is deliberately lenient about the values review judges (title length, price,
images, missing fields): a bad value must reach review and come back as a ``product.rejected``
with a reason code, not go to the DLQ. It is still bounded.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field, StringConstraints

from vitrine.contract.events.base import EventData, Fen, Id, Source
from vitrine.contract.events.common import Code, ReasonList, SignedFen, Version

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


class ProductListed(EventData):
    """A version went live (passed review): what downstream services project."""

    event_type: ClassVar[str] = "product.listed"

    product_id: Id
    merchant_id: Id
    version: Version
    source: Source
    title: ProductTitle
    price_fen: Fen
    category: Category | None = None


class ProductRejected(EventData):
    """Review rejected a draft; any live version stays on sale."""

    event_type: ClassVar[str] = "product.rejected"

    product_id: Id
    merchant_id: Id | None = None
    version: Version
    reasons: ReasonList = Field(default_factory=list)


class ProductDelisted(EventData):
    """The product is no longer on sale. ``reason``: ``withdrawn`` | ``review`` | …"""

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


class ProductRefused(EventData):
    """Catalog refused a merchant's command (e.g. ``not_product_owner``); nothing changed.

    Beyond the design's list of catalog outputs: added so a refused command gets a clear answer on
    ``catalog.products`` rather than only a log line.
    """

    event_type: ClassVar[str] = "product.refused"

    product_id: Id
    merchant_id: Id
    command: Code
    reasons: ReasonList = Field(default_factory=list)
