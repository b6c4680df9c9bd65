"""How a service keeps its projections of accounts and offers in MongoDB: one document per
account (its open shops) and per offer (its terms and whether it is withdrawn or suspended),
keyed by the account or offer id. Every service that stores them uses this one mapping, so a
document written by one version reads back the same in the next."""

from __future__ import annotations

from vitrine.contract.offers import Offer
from vitrine.contract.policy_kernel import Account, Shop
from vitrine.runtime.mongo import Document

__all__ = ["account_document", "account_from_document", "offer_document", "offer_from_document"]


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
