"""The ``data`` models of every event in docs/CONTRACT.md, and which types each topic carries.

``EVENT_TYPES_BY_TOPIC[topic]`` is what :func:`vitrine.contract.envelope.decode` takes as
``data_models``: a type not listed for a topic is dead-lettered as ``unknown_type``.
"""

from __future__ import annotations

from vitrine.contract.events.accounts import ShopClosed, ShopRegistered
from vitrine.contract.events.base import (
    Bps,
    EventData,
    Fen,
    Id,
    Reason,
    ShopKind,
    ShortText,
    Source,
    SourceKind,
    Surface,
    Text,
    dump,
    reasons,
)
from vitrine.contract.events.commissions import (
    CommissionAccrued,
    CommissionAdjusted,
    CommissionCancelled,
    CommissionRefused,
    CommissionSettled,
)
from vitrine.contract.events.common import Code, Count, Position, ReasonList, SignedFen, Version
from vitrine.contract.events.live import (
    LiveAddRequested,
    LiveEndRequested,
    LiveExplainRequested,
    LiveItemAdded,
    LiveItemExplaining,
    LiveItemRefused,
    LiveItemRemoved,
    LiveItemRestored,
    LiveItemSuspended,
    LiveRemoveRequested,
    LiveSessionEnded,
    LiveSessionRefused,
    LiveSessionStarted,
    LiveStartRequested,
)
from vitrine.contract.events.offers import (
    OfferActivated,
    OfferPublished,
    OfferRefused,
    OfferRestored,
    OfferSuspended,
    OfferWithdrawn,
    OfferWithdrawRequested,
    Plan,
)
from vitrine.contract.events.orders import OrderCompleted, OrderPaid, OrderRefunded
from vitrine.contract.events.policies import (
    MAX_RULES,
    RULE_KINDS,
    DisallowSource,
    EnforcementReported,
    Exemptions,
    Phase,
    PolicyAccepted,
    PolicyAnnounced,
    PolicyEnforcementCompleted,
    PolicyImpactAssessed,
    PolicyInForce,
    PolicyLifted,
    PolicyRejected,
    PolicyRetracted,
    ReportPhase,
    RequireShop,
    Rule,
    SourceMatch,
    parse_rules,
)
from vitrine.contract.events.products import (
    DEFAULT_SKU,
    MAX_SKUS,
    CatalogAuditCancelled,
    ListedSku,
    PlatformDelistReason,
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
    Sku,
    SkuPrice,
    TotalStock,
)
from vitrine.contract.events.review import (
    ReviewApproved,
    ReviewEscalated,
    ReviewManualDecided,
    ReviewRejected,
    Verdict,
)
from vitrine.contract.events.showcase import (
    ItemAdded,
    ItemMoved,
    ItemRefused,
    ItemRemoved,
    ItemRestored,
    ItemSuspended,
    ShowcaseAddRequested,
    ShowcaseMoveRequested,
    ShowcaseRemoveRequested,
)


def _by_type(*models: type[EventData]) -> dict[str, type[EventData]]:
    table: dict[str, type[EventData]] = {}
    for model in models:
        if not model.event_type or model.event_type in table:
            raise ValueError(f"{model.__name__}: missing or duplicate event_type")
        table[model.event_type] = model
    return table


#: Topics upstream systems publish to (docs/CONTRACT.md).
INPUT_TOPICS: dict[str, dict[str, type[EventData]]] = {
    "accounts.shops": _by_type(ShopRegistered, ShopClosed),
    "merchants.products": _by_type(
        ProductSubmitted, ProductStockUpdated, ProductWithdrawn, ProductAuditCancelled
    ),
    "review.manual": _by_type(ReviewManualDecided),
    "creators.showcase": _by_type(
        ShowcaseAddRequested, ShowcaseRemoveRequested, ShowcaseMoveRequested
    ),
    "merchants.offers": _by_type(OfferPublished, OfferWithdrawRequested),
    "creators.live": _by_type(
        LiveStartRequested,
        LiveAddRequested,
        LiveRemoveRequested,
        LiveExplainRequested,
        LiveEndRequested,
    ),
    "orders.lifecycle": _by_type(OrderPaid, OrderCompleted, OrderRefunded),
    "platform.policies": _by_type(PolicyAnnounced, PolicyRetracted),
    "platform.actions": _by_type(ProductPlatformDelisted, ProductPlatformReinstated),
}

#: Topics the services publish to (docs/CONTRACT.md).
OUTPUT_TOPICS: dict[str, dict[str, type[EventData]]] = {
    "catalog.products": _by_type(
        ProductReviewRequested,
        ProductListed,
        ProductRejected,
        ProductDelisted,
        CatalogAuditCancelled,
        ProductStockChanged,
        ProductSoldOut,
        ProductBackInStock,
        ProductRefused,
    ),
    "review.decisions": _by_type(ReviewApproved, ReviewRejected, ReviewEscalated),
    "showcase.items": _by_type(
        ItemAdded, ItemRefused, ItemRemoved, ItemSuspended, ItemRestored, ItemMoved
    ),
    "live.rooms": _by_type(
        LiveSessionStarted,
        LiveSessionRefused,
        LiveItemAdded,
        LiveItemRefused,
        LiveItemRemoved,
        LiveItemExplaining,
        LiveItemSuspended,
        LiveItemRestored,
        LiveSessionEnded,
    ),
    "distribution.offers": _by_type(
        OfferActivated, OfferRefused, OfferSuspended, OfferRestored, OfferWithdrawn
    ),
    "distribution.commissions": _by_type(
        CommissionAccrued,
        CommissionSettled,
        CommissionAdjusted,
        CommissionCancelled,
        CommissionRefused,
    ),
    "compliance.rulings": _by_type(
        PolicyAccepted,
        PolicyRejected,
        PolicyImpactAssessed,
        PolicyInForce,
        PolicyLifted,
        PolicyEnforcementCompleted,
    ),
    "compliance.reports": _by_type(EnforcementReported),
}

#: Every topic → {CloudEvents ``type`` → ``data`` model}.
EVENT_TYPES_BY_TOPIC: dict[str, dict[str, type[EventData]]] = {**INPUT_TOPICS, **OUTPUT_TOPICS}


def models_for(topic: str) -> dict[str, type[EventData]]:
    """The types allowed on ``topic`` (``KeyError`` for a topic not in the contract)."""
    return EVENT_TYPES_BY_TOPIC[topic]


__all__ = [
    "DEFAULT_SKU",
    "EVENT_TYPES_BY_TOPIC",
    "INPUT_TOPICS",
    "MAX_RULES",
    "MAX_SKUS",
    "OUTPUT_TOPICS",
    "RULE_KINDS",
    "Bps",
    "CatalogAuditCancelled",
    "Code",
    "CommissionAccrued",
    "CommissionAdjusted",
    "CommissionCancelled",
    "CommissionRefused",
    "CommissionSettled",
    "Count",
    "DisallowSource",
    "EnforcementReported",
    "EventData",
    "Exemptions",
    "Fen",
    "Id",
    "ItemAdded",
    "ItemMoved",
    "ItemRefused",
    "ItemRemoved",
    "ItemRestored",
    "ItemSuspended",
    "ListedSku",
    "LiveAddRequested",
    "LiveEndRequested",
    "LiveExplainRequested",
    "LiveItemAdded",
    "LiveItemExplaining",
    "LiveItemRefused",
    "LiveItemRemoved",
    "LiveItemRestored",
    "LiveItemSuspended",
    "LiveRemoveRequested",
    "LiveSessionEnded",
    "LiveSessionRefused",
    "LiveSessionStarted",
    "LiveStartRequested",
    "OfferActivated",
    "OfferPublished",
    "OfferRefused",
    "OfferRestored",
    "OfferSuspended",
    "OfferWithdrawRequested",
    "OfferWithdrawn",
    "OrderCompleted",
    "OrderPaid",
    "OrderRefunded",
    "Phase",
    "Plan",
    "PlatformDelistReason",
    "PolicyAccepted",
    "PolicyAnnounced",
    "PolicyEnforcementCompleted",
    "PolicyImpactAssessed",
    "PolicyInForce",
    "PolicyLifted",
    "PolicyRejected",
    "PolicyRetracted",
    "Position",
    "ProductAuditCancelled",
    "ProductBackInStock",
    "ProductDelisted",
    "ProductListed",
    "ProductPlatformDelisted",
    "ProductPlatformReinstated",
    "ProductRefused",
    "ProductRejected",
    "ProductReviewRequested",
    "ProductSoldOut",
    "ProductStockChanged",
    "ProductStockUpdated",
    "ProductSubmitted",
    "ProductWithdrawn",
    "Reason",
    "ReasonList",
    "ReportPhase",
    "RequireShop",
    "ReviewApproved",
    "ReviewEscalated",
    "ReviewManualDecided",
    "ReviewRejected",
    "Rule",
    "ShopClosed",
    "ShopKind",
    "ShopRegistered",
    "ShortText",
    "ShowcaseAddRequested",
    "ShowcaseMoveRequested",
    "ShowcaseRemoveRequested",
    "SignedFen",
    "Sku",
    "SkuPrice",
    "Source",
    "SourceKind",
    "SourceMatch",
    "Surface",
    "Text",
    "TotalStock",
    "Verdict",
    "Version",
    "dump",
    "models_for",
    "parse_rules",
    "reasons",
]
