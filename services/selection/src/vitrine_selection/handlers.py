"""Selection's input handlers: fold each fact into its projection, then rebuild the listings of
every offer it touches (bulk reads, bulk writes; DESIGN.md §6 bulk paths).

The pipeline dedupes redelivered events (inbox); the domain ignores stale ones; and since a
listing is rebuilt from all the facts each time, inputs from different topics may arrive in
any order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    DisallowSource,
    EventData,
    OfferActivated,
    OfferRestored,
    OfferSuspended,
    OfferWithdrawn,
    OrderPaid,
    OrderRefunded,
    PolicyAccepted,
    PolicyInForce,
    PolicyLifted,
    ProductBackInStock,
    ProductDelisted,
    ProductListed,
    ProductSoldOut,
    ShopClosed,
    ShopRegistered,
)
from vitrine.contract.policy_kernel import account_after
from vitrine.runtime.decision import Decision
from vitrine.runtime.handlers import bind_table
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_selection import domain
from vitrine_selection.domain import Offer, Order, Policy, Product, SalesDelta
from vitrine_selection.repository import Store

log = get_logger(__name__)
E = TypeVar("E", bound=EventData)
T = TypeVar("T")

ProductInput = ProductListed | ProductDelisted | ProductSoldOut | ProductBackInStock
OfferInput = OfferActivated | OfferSuspended | OfferRestored | OfferWithdrawn
OrderInput = OrderPaid | OrderRefunded
ShopInput = ShopRegistered | ShopClosed
RulingInput = PolicyAccepted | PolicyInForce | PolicyLifted

#: Per input topic, the only types selection acts on (the rest are acknowledged untouched).
ACTS_ON: dict[str, frozenset[str]] = {
    "catalog.products": frozenset(
        m.event_type for m in (ProductListed, ProductDelisted, ProductSoldOut, ProductBackInStock)
    ),
    "distribution.offers": frozenset(
        m.event_type for m in (OfferActivated, OfferSuspended, OfferRestored, OfferWithdrawn)
    ),
    "orders.lifecycle": frozenset(m.event_type for m in (OrderPaid, OrderRefunded)),
    "accounts.shops": frozenset(m.event_type for m in (ShopRegistered, ShopClosed)),
    "compliance.rulings": frozenset(
        m.event_type for m in (PolicyAccepted, PolicyInForce, PolicyLifted)
    ),
}


def _ignored(event: Event[Any], why: str) -> None:
    log.info("selection.event_ignored", type=event.type, subject=event.subject, why=why)


async def rebuild(
    store: Store, offer_ids: Iterable[str], now: datetime, known: dict[str, Offer] | None = None
) -> int:
    """Recompute and save the listing of each offer (``known``: offers already in memory, newer
    than what is stored). Returns how many were written."""
    ids = set(offer_ids)
    if not ids:
        return 0
    offers = dict(known or {})
    missing = ids - offers.keys()
    if missing:
        offers.update(await store.offers(missing))
    chosen = [offers[i] for i in sorted(ids) if i in offers]
    products = await store.products({o.product_id for o in chosen if o.product_id})
    merchants = await store.accounts({o.merchant_id for o in chosen if o.merchant_id})
    policies = list((await store.policies()).values())
    rows: list[tuple[Offer, dict[str, Any]]] = []
    for offer in chosen:
        offer = domain.prune_sales(offer, now)
        product = products.get(offer.product_id) if offer.product_id else None
        merchant = merchants.get(offer.merchant_id) if offer.merchant_id else None
        rows.append((offer, domain.listing(offer, product, merchant, policies, now)))
    await store.save_offers(rows)
    return len(rows)


def _fold(
    events: Iterable[Event[E]],
    known: dict[str, T],
    key: Callable[[E], str],
    apply: Callable[[T | None, Event[E]], Decision[T]],
) -> set[str]:
    """Fold each event into ``known`` (keyed by ``key(data)``) through the domain's ``apply``,
    logging the ones it ignores; the keys that changed."""
    changed: set[str] = set()
    for event in events:
        k = key(event.data)
        decision = apply(known.get(k), event)
        if not decision.changed:
            _ignored(event, decision.ignored or "")
            continue
        known[k] = decision.state
        changed.add(k)
    return changed


async def on_products(events: list[Event[ProductInput]], uow: UnitOfWork, store: Store) -> None:
    products: dict[str, Product] = await store.products(e.data.product_id for e in events)
    changed = _fold(
        events,
        products,
        lambda d: d.product_id,
        lambda p, e: domain.apply_product(p, e.data, e.time),
    )
    await store.save_products(products[p] for p in changed)
    await rebuild(store, await store.offer_ids(product_ids=changed), uow.now())


async def on_offers(events: list[Event[OfferInput]], uow: UnitOfWork, store: Store) -> None:
    offers = await store.offers(e.data.offer_id for e in events)
    changed = _fold(
        events, offers, lambda d: d.offer_id, lambda o, e: domain.apply_offer(o, e.data, e.time)
    )
    await rebuild(store, changed, uow.now(), offers)


async def on_orders(events: list[Event[OrderInput]], uow: UnitOfWork, store: Store) -> None:
    orders: dict[str, Order] = await store.orders(e.data.order_id for e in events)
    changed: set[str] = set()
    deltas: list[SalesDelta] = []
    for event in events:
        oid = event.data.order_id
        decision, moved = domain.apply_order(orders.get(oid), event.data)
        if not decision.changed:
            _ignored(event, decision.ignored or "")
            continue
        orders[oid] = decision.state
        changed.add(oid)
        deltas += moved
    await store.save_orders(orders[o] for o in changed)
    by_offer: dict[str, list[SalesDelta]] = {}
    for d in deltas:
        by_offer.setdefault(d.offer_id, []).append(d)
    offers = await store.offers(by_offer)
    updated = {oid: domain.add_sales(offers.get(oid), oid, ds) for oid, ds in by_offer.items()}
    await rebuild(store, updated, uow.now(), updated)


async def on_shops(events: list[Event[ShopInput]], uow: UnitOfWork, store: Store) -> None:
    accounts = await store.accounts(e.data.account_id for e in events)
    for event in events:
        aid = event.data.account_id
        accounts[aid] = account_after(accounts.get(aid), event.data)
    await store.save_accounts(accounts.values())
    # A merchant's shops decide the service_provider_built exemption of its offers; a
    # creator's are read per query.
    await rebuild(store, await store.offer_ids(merchant_ids=accounts), uow.now())


def _reach(policy: Policy) -> tuple[set[str], set[str]]:
    """The source kinds and merchants a policy can change the listing of."""
    kinds: set[str] = {
        m.kind for r in policy.rules if isinstance(r, DisallowSource) for m in r.sources
    }
    return kinds, set(policy.exemptions.merchant_ids)


async def on_rulings(events: list[Event[RulingInput]], uow: UnitOfWork, store: Store) -> None:
    policies = await store.policies()
    before = {pid: p.in_force for pid, p in policies.items()}
    folded = _fold(
        events, policies, lambda d: d.policy_id, lambda p, e: domain.apply_ruling(p, e.data)
    )
    changed = {pid: policies[pid] for pid in folded}
    await store.save_policies(changed.values())
    touched: set[str] = set()
    for pid, policy in changed.items():
        if policy.in_force or before.get(pid):
            kinds, merchants = _reach(policy)
            touched |= await store.offer_ids(
                source_kinds=kinds, merchant_ids=merchants, policy_id=pid
            )
    written = await rebuild(store, touched, uow.now())
    if changed:
        log.info("selection.policies_applied", policies=sorted(changed), offers=written)


def make_handlers(store: Callable[[UnitOfWork], Store]) -> dict[str, BatchHandler]:
    """The handlers per input topic, reaching the projections through ``store(uow)``."""

    return bind_table(
        store,
        {
            "catalog.products": on_products,
            "distribution.offers": on_offers,
            "orders.lifecycle": on_orders,
            "accounts.shops": on_shops,
            "compliance.rulings": on_rulings,
        },
    )
