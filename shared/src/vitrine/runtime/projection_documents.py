"""How a service keeps its projections of accounts, offers and listed products in MongoDB:
one document per account (its open shops), per offer (its terms, whether it is withdrawn or
suspended) and per product (seller, source, listed, sold out), keyed by their id. Every
service that stores them uses this one mapping, so a document written by one version reads
back the same in the next."""

from __future__ import annotations

import functools

from vitrine.contract.events.base import Source, dump
from vitrine.contract.listings import Product
from vitrine.contract.offers import Offer
from vitrine.contract.policy_kernel import Account, Shop
from vitrine.runtime.mongo import Document

__all__ = [
    "account_document",
    "account_from_document",
    "offer_document",
    "offer_from_document",
    "product_document",
    "product_from_document",
]


def account_document(account: Account) -> Document:
    """The account's document: ``_id`` and its ``shops``."""
    return {
        "_id": account.account_id,
        "shops": [
            {
                "shop_id": s.shop_id,
                "shop_kind": s.shop_kind,
                "service_provider_built": s.service_provider_built,
            }
            for s in account.shops
        ],
    }


def account_from_document(doc: Document) -> Account:
    """The account of a document :func:`account_document` wrote."""
    return Account(
        doc["_id"],
        tuple(
            Shop(s["shop_id"], s["shop_kind"], bool(s.get("service_provider_built")))
            for s in doc.get("shops") or ()
        ),
    )


def offer_document(offer: Offer) -> Document:
    """The offer's document: ``_id``, its terms and its two flags."""
    return {
        "_id": offer.offer_id,
        "product_id": offer.product_id,
        "merchant_id": offer.merchant_id,
        "plan": offer.plan,
        "creator_ids": sorted(offer.creator_ids),
        "withdrawn": offer.withdrawn,
        "suspended": offer.suspended,
    }


def offer_from_document(doc: Document) -> Offer:
    """The offer of a document :func:`offer_document` wrote."""
    return Offer(
        doc["_id"],
        doc["product_id"],
        doc["merchant_id"],
        doc["plan"],
        frozenset(doc.get("creator_ids") or ()),
        bool(doc.get("withdrawn")),
        bool(doc.get("suspended")),
    )


def product_document(product: Product) -> Document:
    """The product's document: ``_id``, its seller and source, and its two states."""
    return {
        "_id": product.product_id,
        "merchant_id": product.merchant_id,
        "source": dump(product.source),
        "listed": product.listed,
        "version": product.version,
        "sold_out": product.sold_out,
    }


def product_from_document(doc: Document) -> Product:
    """The product of a document :func:`product_document` wrote (``version`` and
    ``sold_out`` absent in documents written before they were kept)."""
    source = doc["source"]
    return Product(
        doc["_id"],
        doc["merchant_id"],
        _source(source["kind"], source.get("platform")),
        bool(doc["listed"]),
        version=doc.get("version"),
        sold_out=bool(doc.get("sold_out")),
    )


@functools.lru_cache(maxsize=1024)
def _source(kind: str, platform: str | None) -> Source:
    """Sources repeat (a handful of kinds and platforms): validated once each."""
    return Source.model_validate({"kind": kind, "platform": platform}, strict=False)
