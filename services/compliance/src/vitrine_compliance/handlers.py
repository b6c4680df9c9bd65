"""Compliance's input handlers (thin): load in bulk, fold through the domain, save in bulk, emit.

- ``platform.policies``: announcements and retractions → rulings, schedules, impact.
- ``compliance.reports``: enforcement reports → progress, ``policy.enforcement_completed``.
- ``showcase.items``, ``live.rooms``, ``distribution.offers``, ``catalog.products``,
  ``accounts.shops``: compliance's own projections, used only to assess a policy's impact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    EnforcementReported,
    EventData,
    ItemAdded,
    ItemRemoved,
    ItemRestored,
    ItemSuspended,
    LiveItemAdded,
    LiveItemRemoved,
    LiveItemRestored,
    LiveItemSuspended,
    LiveSessionEnded,
    OfferActivated,
    OfferRestored,
    OfferSuspended,
    OfferWithdrawn,
    PolicyAnnounced,
    PolicyImpactAssessed,
    PolicyRejected,
    PolicyRetracted,
    ProductDelisted,
    ProductListed,
    ShopClosed,
    ShopRegistered,
)
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.mongo import Document
from vitrine_compliance import domain, repository
from vitrine_compliance.domain import Cause, Policy, PolicyDecision, ScheduleOp
from vitrine_compliance.repository import Store

log = get_logger(__name__)
OUTPUT = "compliance.rulings"

#: The events of the projections' topics (each topic carries more types; only these fold).
ItemEvent = ItemAdded | ItemRemoved | ItemSuspended | ItemRestored
OfferEvent = OfferActivated | OfferWithdrawn | OfferSuspended | OfferRestored
ProductEvent = ProductListed | ProductDelisted
ShopEvent = ShopRegistered | ShopClosed
CartEvent = LiveItemAdded | LiveItemRemoved | LiveItemSuspended | LiveItemRestored


def make_handlers(store: Callable[[UnitOfWork], Store]) -> dict[str, BatchHandler]:
    """The handlers per input topic, reaching state through ``store(uow)``."""

    def bind(handler: Callable[[list[Event[Any]], UnitOfWork, Store], Any]) -> BatchHandler:
        async def handle(events: list[Event[Any]], uow: UnitOfWork) -> None:
            await handler(events, uow, store(uow))

        return handle

    return {
        "platform.policies": bind(on_policies),
        "compliance.reports": bind(on_reports),
        "showcase.items": bind(on_items),
        "live.rooms": bind(on_live),
        "distribution.offers": bind(on_offers),
        "catalog.products": bind(on_products),
        "accounts.shops": bind(on_shops),
    }


# --- policies ----------------------------------------------------------------------------------


def decide(
    policy: Policy | None, event: Event[PolicyAnnounced | PolicyRetracted], uow: UnitOfWork
) -> PolicyDecision:
    """The domain function for this input."""
    match event.data:
        case PolicyAnnounced() as ann:
            cause = Cause(event.id, event.envelope.source, event.correlationid)
            return domain.announce(policy, ann, uow.now(), cause)
        case PolicyRetracted() as cmd:
            return domain.retract(policy, cmd, uow.now())


async def on_policies(
    events: list[Event[PolicyAnnounced | PolicyRetracted]], uow: UnitOfWork, store: Store
) -> None:
    """Announcements and retractions, in order, per policy.

    An accepted announcement is followed by its impact assessment, computed from the
    projections as they stand in this transaction.
    """
    policies: dict[str, Policy | None] = dict(
        await store.load_policies(e.data.policy_id for e in events)
    )
    schedules: list[tuple[str, ScheduleOp]] = []
    impacts: dict[str, dict[str, Any]] = {}
    changed: set[str] = set()
    for event in events:
        pid = event.data.policy_id
        decision = decide(policies.get(pid), event, uow)
        if not _applied(decision, event):
            continue
        policy = decision.state.policy
        policies[pid] = policy
        changed.add(pid)
        schedules += [(pid, op) for op in decision.state.schedules]
        decision.emit(uow, cause=event)
        if decision.state.assess and policy is not None:
            impacts[pid] = impact = await _assess(uow, store, policy)
            uow.emit(
                OUTPUT,
                PolicyImpactAssessed(
                    policy_id=pid,
                    items=impact["items"],
                    offers=impact["offers"],
                    creators=impact["creators"],
                    merchants=impact["merchants"],
                    assessed_at=impact["assessed_at"],
                    cart_items=impact["cart_items"],
                ),
                subject=pid,
                cause=event,
            )
        if policy is not None and any(isinstance(d, PolicyRejected) for d in decision.events):
            log.warning(
                "policy.rejected", policy_id=pid, codes=[r.code for r in policy.last_rejection]
            )
    await store.write_schedules(schedules, uow.now())
    await store.save_policies((p for pid in changed if (p := policies[pid])), impacts)


async def _assess(uow: UnitOfWork, store: Store, policy: Policy) -> dict[str, Any]:
    assert policy.terms is not None
    terms = policy.terms
    items, offers, products, accounts = await store.candidates(terms.rules)
    impact = domain.assess(terms.rules, terms.exemptions, items, offers, products, accounts)
    return {**impact.as_dict(), "assessed_at": uow.now(), "revision": policy.revision}


def _applied(decision: PolicyDecision, event: Event[Any]) -> bool:
    if decision.ignored is not None:
        log.info(
            "policy.event_ignored", type=event.type, subject=event.subject, why=decision.ignored
        )
        return False
    return True


async def on_reports(
    events: list[Event[EnforcementReported]], uow: UnitOfWork, store: Store
) -> None:
    """Enforcement reports from showcase and distribution."""
    policies: dict[str, Policy | None] = dict(
        await store.load_policies(e.data.policy_id for e in events)
    )
    changed: set[str] = set()
    for event in events:
        pid = event.data.policy_id
        decision = domain.report(policies.get(pid), event.data, uow.now())
        if not _applied(decision, event):
            continue
        policies[pid] = decision.state.policy
        changed.add(pid)
        decision.emit(uow, cause=event)
    await store.save_policies((p for pid in changed if (p := policies[pid])), {})


# --- projections -------------------------------------------------------------------------------

E = TypeVar("E", bound=EventData)


async def _project(
    store: Store,
    collection: str,
    events: list[Event[Any]],
    model: type[E] | Any,
    key: Callable[[E], str],
    fold: Callable[[Document | None, E], Document | None],
) -> None:
    """Load the documents the batch names, fold the events of ``model`` in order, write once."""
    wanted: list[E] = [e.data for e in events if isinstance(e.data, model)]
    docs: dict[str, Document | None] = dict(
        await store.load_projection(collection, {key(d) for d in wanted})
    )
    touched: set[str] = set()
    for data in wanted:
        k = key(data)
        before = docs.get(k)
        after = fold(before, data)
        if after is before:
            continue
        docs[k] = after
        touched.add(k)
    await store.write_projection(collection, {k: docs[k] for k in touched})


def _fold_item(doc: Document | None, d: ItemEvent) -> Document | None:
    match d:
        case ItemAdded():
            return {
                "creator_id": d.creator_id,
                "product_id": d.product_id,
                "offer_id": d.offer_id,
                "status": "active",
            }
        case ItemRemoved():
            return None
        case ItemSuspended() if doc is not None:
            return {**doc, "status": "suspended", "suspended_reason": d.reason}
        case ItemRestored() if doc is not None:
            return {**doc, "status": "active", "suspended_reason": None}
    return doc  # about an item we never saw added


def _fold_offer(doc: Document | None, d: OfferEvent) -> Document | None:
    match d:
        case OfferActivated():
            return {
                **(doc or {}),
                "product_id": d.product_id,
                "merchant_id": d.merchant_id,
                "status": "active" if doc is None else doc["status"],
            }
        case OfferWithdrawn():
            return None
        case OfferSuspended() if doc is not None:
            return {**doc, "status": "suspended", "suspended_reason": d.reason}
        case OfferRestored() if doc is not None:
            return {**doc, "status": "active", "suspended_reason": None}
    return doc


def _fold_product(doc: Document | None, d: ProductEvent) -> Document | None:
    match d:
        case ProductListed():
            return {
                "merchant_id": d.merchant_id,
                "source": d.source.model_dump(mode="json", exclude_none=True),
                "listed": True,
                "version": d.version,
            }
        case ProductDelisted() if doc is not None:
            return {**doc, "listed": False}
    return doc


def _fold_account(doc: Document | None, d: ShopEvent) -> Document | None:
    shops = [s for s in (doc or {}).get("shops", []) if s["shop_id"] != d.shop_id]
    match d:
        case ShopRegistered():
            shops.append(
                {
                    "shop_id": d.shop_id,
                    "shop_kind": d.shop_kind,
                    "service_provider_built": d.service_provider_built,
                }
            )
        case ShopClosed() if doc is None:
            return None
    return {"shops": shops}


async def on_items(events: list[Event[Any]], uow: UnitOfWork, store: Store) -> None:
    """``showcase.items``: which creators show which products, active or suspended."""
    await _project(
        store,
        repository.ITEMS,
        events,
        ItemEvent,
        lambda d: repository.item_id(d.creator_id, d.product_id),
        _fold_item,
    )


async def on_live(events: list[Event[Any]], uow: UnitOfWork, store: Store) -> None:
    """``live.rooms``: the items of open live carts, active or suspended; an ended session's
    items leave the projection (only open carts are enforced)."""
    relevant = [e.data for e in events if isinstance(e.data, CartEvent | LiveSessionEnded)]
    if not relevant:
        return
    sessions: dict[str, Document | None] = dict(
        await store.load_projection(repository.LIVE_SESSIONS, {d.session_id for d in relevant})
    )
    ids = {
        repository.cart_item_id(d.session_id, p)
        for d in relevant
        for p in (
            [d.product_id]
            if isinstance(d, CartEvent)
            else (sessions.get(d.session_id) or {}).get("product_ids", [])
        )
    }
    items: dict[str, Document | None] = dict(
        await store.load_projection(repository.CART_ITEMS, ids)
    )
    for d in relevant:
        session = sessions.get(d.session_id) or {"product_ids": []}
        products = list(session["product_ids"])
        if isinstance(d, LiveSessionEnded):
            for pid in products:
                items[repository.cart_item_id(d.session_id, pid)] = None
            sessions[d.session_id] = None
            continue
        key = repository.cart_item_id(d.session_id, d.product_id)
        doc = items.get(key)
        match d:
            case LiveItemAdded():
                doc = {
                    "creator_id": d.creator_id,
                    "product_id": d.product_id,
                    "offer_id": d.offer_id,
                    "session_id": d.session_id,
                    "surface": "live",
                    "status": "active",
                }
                products = sorted({*products, d.product_id})
            case LiveItemRemoved():
                doc = None
                products = [p for p in products if p != d.product_id]
            case LiveItemSuspended() if doc is not None:
                doc = {**doc, "status": "suspended"}
            case LiveItemRestored() if doc is not None:
                doc = {**doc, "status": "active"}
        items[key] = doc
        sessions[d.session_id] = {"product_ids": products}
    await store.write_projection(repository.CART_ITEMS, items)
    await store.write_projection(repository.LIVE_SESSIONS, sessions)


async def on_offers(events: list[Event[Any]], uow: UnitOfWork, store: Store) -> None:
    """``distribution.offers``: which merchants distribute which products."""
    await _project(store, repository.OFFERS, events, OfferEvent, lambda d: d.offer_id, _fold_offer)


async def on_products(events: list[Event[Any]], uow: UnitOfWork, store: Store) -> None:
    """``catalog.products``: listed products' owners and sources."""
    await _project(
        store, repository.PRODUCTS, events, ProductEvent, lambda d: d.product_id, _fold_product
    )


async def on_shops(events: list[Event[Any]], uow: UnitOfWork, store: Store) -> None:
    """``accounts.shops``: which shops each account holds."""
    await _project(
        store, repository.ACCOUNTS, events, ShopEvent, lambda d: d.account_id, _fold_account
    )
