"""Compliance's input handlers (thin): load in bulk, fold through the domain, save in bulk, emit.

- ``platform.policies``: announcements and retractions → rulings, schedules, impact.
- ``compliance.reports``: enforcement reports → progress, ``policy.enforcement_completed``.
- ``showcase.items``, ``distribution.offers``, ``catalog.products``, ``accounts.shops``:
  compliance's own projections, used only to assess a policy's impact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pymongo import DeleteOne, ReplaceOne

from vitrine.contract.envelope import Event
from vitrine.contract.events import PolicyImpactAssessed, PolicyRejected
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine.runtime.mongo import Document
from vitrine_compliance import domain, repository
from vitrine_compliance.domain import Cause, Decision, Policy, ScheduleOp

log = get_logger(__name__)
OUTPUT = "compliance.rulings"


# --- policies ----------------------------------------------------------------------------------


async def on_policies(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Announcements and retractions, in order, per policy.

    An accepted announcement is followed by its impact assessment, computed from the
    projections as they stand in this transaction.
    """
    policies: dict[str, Policy | None] = dict(
        await repository.load_policies(uow.db, (e.data.policy_id for e in events), uow.session)
    )
    schedules: list[tuple[str, ScheduleOp]] = []
    impacts: dict[str, dict[str, Any]] = {}
    changed: set[str] = set()
    for event in events:
        pid = event.data.policy_id
        now = uow.now()
        if event.type == "policy.announced":
            cause = Cause(event.id, event.envelope.source, event.correlationid)
            decision = domain.announce(policies.get(pid), event.data, now, cause)
        else:
            decision = domain.retract(policies.get(pid), event.data, now)
        if not _applied(decision, event):
            continue
        policy = decision.policy
        policies[pid] = policy
        changed.add(pid)
        schedules += [(pid, op) for op in decision.schedules]
        for data in decision.events:
            uow.emit(OUTPUT, data, subject=pid, cause=event)
        if decision.assess and policy is not None:
            impacts[pid] = impact = await _assess(uow, policy)
            uow.emit(
                OUTPUT,
                PolicyImpactAssessed(
                    policy_id=pid,
                    items=impact["items"],
                    offers=impact["offers"],
                    creators=impact["creators"],
                    merchants=impact["merchants"],
                    assessed_at=impact["assessed_at"],
                ),
                subject=pid,
                cause=event,
            )
        if policy is not None and any(isinstance(d, PolicyRejected) for d in decision.events):
            log.warning(
                "policy.rejected", policy_id=pid, codes=[r.code for r in policy.last_rejection]
            )
    await repository.write_schedules(uow.db, schedules, uow.now(), uow.session)
    await repository.save_policies(
        uow.db, (p for pid in changed if (p := policies[pid])), impacts, uow.session
    )


async def _assess(uow: UnitOfWork, policy: Policy) -> dict[str, Any]:
    assert policy.terms is not None
    terms = policy.terms
    items, offers, products, accounts = await repository.candidates(
        uow.db, terms.rules, uow.session
    )
    impact = domain.assess(terms.rules, terms.exemptions, items, offers, products, accounts)
    return {**impact.as_dict(), "assessed_at": uow.now(), "revision": policy.revision}


def _applied(decision: Decision, event: Event[Any]) -> bool:
    if decision.ignored is not None:
        log.info(
            "policy.event_ignored", type=event.type, subject=event.subject, why=decision.ignored
        )
        return False
    return True


async def on_reports(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Enforcement reports from showcase and distribution."""
    policies: dict[str, Policy | None] = dict(
        await repository.load_policies(uow.db, (e.data.policy_id for e in events), uow.session)
    )
    changed: set[str] = set()
    for event in events:
        pid = event.data.policy_id
        decision = domain.report(policies.get(pid), event.data, uow.now())
        if not _applied(decision, event):
            continue
        policies[pid] = decision.policy
        changed.add(pid)
        for data in decision.events:
            uow.emit(OUTPUT, data, subject=pid, cause=event)
    await repository.save_policies(
        uow.db, (p for pid in changed if (p := policies[pid])), {}, uow.session
    )


# --- projections -------------------------------------------------------------------------------

Fold = Callable[[Document | None, Event[Any]], Document | None]


async def _project(
    uow: UnitOfWork,
    collection: str,
    events: list[Event[Any]],
    key: Callable[[Event[Any]], str],
    fold: Fold,
) -> None:
    """Load the documents the batch names, fold the events in order, write once."""
    ids = {key(e) for e in events}
    cursor = uow.db[collection].find({"_id": {"$in": list(ids)}}, session=uow.session)
    docs: dict[str, Document | None] = {doc["_id"]: doc async for doc in cursor}
    touched: set[str] = set()
    for event in events:
        k = key(event)
        before = docs.get(k)
        after = fold(before, event)
        if after is before:
            continue
        if after is not None:
            after["_id"] = k
        docs[k] = after
        touched.add(k)
    ops: list[Any] = [
        ReplaceOne({"_id": k}, doc, upsert=True)
        if (doc := docs[k]) is not None
        else DeleteOne({"_id": k})
        for k in sorted(touched)
    ]
    if ops:
        await uow.db[collection].bulk_write(ops, ordered=False, session=uow.session)


def _fold_item(doc: Document | None, event: Event[Any]) -> Document | None:
    d = event.data
    match event.type:
        case "showcase.item_added":
            return {
                "creator_id": d.creator_id,
                "product_id": d.product_id,
                "offer_id": d.offer_id,
                "status": "active",
            }
        case "showcase.item_removed":
            return None
        case "showcase.item_suspended" if doc is not None:
            return {**doc, "status": "suspended", "suspended_reason": d.reason}
        case "showcase.item_restored" if doc is not None:
            return {**doc, "status": "active", "suspended_reason": None}
    return doc  # refused, moved, or about an item we never saw added


def _fold_offer(doc: Document | None, event: Event[Any]) -> Document | None:
    d = event.data
    match event.type:
        case "offer.activated":
            return {
                **(doc or {}),
                "product_id": d.product_id,
                "merchant_id": d.merchant_id,
                "status": "active" if doc is None else doc["status"],
            }
        case "offer.withdrawn":
            return None
        case "offer.suspended" if doc is not None:
            return {**doc, "status": "suspended", "suspended_reason": d.reason}
        case "offer.restored" if doc is not None:
            return {**doc, "status": "active", "suspended_reason": None}
    return doc


def _fold_product(doc: Document | None, event: Event[Any]) -> Document | None:
    d = event.data
    match event.type:
        case "product.listed":
            return {
                "merchant_id": d.merchant_id,
                "source": d.source.model_dump(mode="json", exclude_none=True),
                "listed": True,
                "version": d.version,
            }
        case "product.delisted" if doc is not None:
            return {**doc, "listed": False}
    return doc


def _fold_account(doc: Document | None, event: Event[Any]) -> Document | None:
    d = event.data
    shops = [s for s in (doc or {}).get("shops", []) if s["shop_id"] != d.shop_id]
    if event.type == "shop.registered":
        shops.append(
            {
                "shop_id": d.shop_id,
                "shop_kind": d.shop_kind,
                "service_provider_built": d.service_provider_built,
            }
        )
    elif doc is None:
        return None
    return {"shops": shops}


async def on_items(events: list[Event[Any]], uow: UnitOfWork) -> None:
    await _project(
        uow,
        repository.ITEMS,
        events,
        lambda e: repository.item_id(e.data.creator_id, e.data.product_id),
        _fold_item,
    )


async def on_offers(events: list[Event[Any]], uow: UnitOfWork) -> None:
    await _project(uow, repository.OFFERS, events, lambda e: e.data.offer_id, _fold_offer)


async def on_products(events: list[Event[Any]], uow: UnitOfWork) -> None:
    await _project(uow, repository.PRODUCTS, events, lambda e: e.data.product_id, _fold_product)


async def on_shops(events: list[Event[Any]], uow: UnitOfWork) -> None:
    await _project(uow, repository.ACCOUNTS, events, lambda e: e.data.account_id, _fold_account)
