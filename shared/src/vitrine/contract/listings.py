"""The product as a placing service projects it from ``catalog.products``. Pure, no I/O.

Showcase and live both hold what a creator placed while its product is delisted or sold out
and judge a relisted version again (DESIGN.md §3, §4). They read the same four events and
must fold them alike, so the projection and its folding live here once, beside the offer's
(:mod:`vitrine.contract.offers`).
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, replace

from vitrine.contract.events.base import Source
from vitrine.contract.events.products import (
    ProductBackInStock,
    ProductDelisted,
    ProductListed,
    ProductSoldOut,
)

__all__ = ["CatalogEvent", "Product", "product_after"]

#: The ``catalog.products`` events a placing service follows (drafts and reviews are not its
#: business).
CatalogEvent = ProductListed | ProductDelisted | ProductSoldOut | ProductBackInStock


@dataclass(frozen=True)
class Product:
    """What catalog said about a product: who sells it, where from, whether it is on sale,
    whether its total stock is 0 (``product.sold_out`` until ``product.back_in_stock``)."""

    product_id: str
    merchant_id: str
    source: Source
    listed: bool
    _: KW_ONLY
    #: The live version (``None``: a document written before versions were kept).
    version: int | None = None
    sold_out: bool = False


def product_after(data: CatalogEvent, known: Product | None) -> Product | None:
    """The projection after one ``catalog.products`` event (``None``: nothing to keep).

    A listing brings the terms; stock moves only on its own events, so a relisting keeps the
    sold-out state. A delisting or a stock change of a product never listed keeps nothing:
    its listing brings the terms.
    """
    match data:
        case ProductListed():
            return Product(
                data.product_id,
                data.merchant_id,
                data.source,
                True,
                version=data.version,
                sold_out=known.sold_out if known else False,
            )
        case ProductDelisted():
            return None if known is None else replace(known, listed=False)
        case ProductSoldOut() | ProductBackInStock():
            sold_out = isinstance(data, ProductSoldOut)
            return None if known is None else replace(known, sold_out=sold_out)
