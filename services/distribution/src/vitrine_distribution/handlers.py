"""Distribution's input handlers: bulk-load what a batch touches, fold its events in order
through the pure domain, bulk-save, emit (DESIGN.md §6 bulk paths).

One handler per input topic (:func:`make_handlers`); all of a batch's handlers run in ONE
MongoDB transaction, so a later handler in the batch reads what an earlier one wrote. Every
decision is dated by its input's own time (``event.time``, ``paid_at``), never by
``uow.now()``: a lagging consumer or a replay decides exactly as a prompt one (§6 event time).

Held orders (an ``order.paid`` consumed before the offer it names) are judged here when that
offer is accepted, or refused ``offer_unknown`` when the offers topic's event-time watermark
passes ``paid_at`` + the wait (README "Event time"). Likewise an offer command consumed before
the product it names waits for the product's ``product.listed`` (or for the catalog topic's
watermark to pass its time + the wait, then it is judged as it stands). Their events are caused
by the waiting inputs themselves, so their ids do not depend on which topic was consumed first.
An offer consumed after its product's later listing changes is judged as of its own time and
then follows those changes, each caused by its own catalog event (the product's history).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    DisallowSource,
    EnforcementReported,
    OfferPublished,
    OfferWithdrawRequested,
    OrderCompleted,
    OrderPaid,
    OrderRefunded,
    PolicyInForce,
    PolicyLifted,
    ProductDelisted,
    ProductListed,
    ReportPhase,
    RequireShop,
    ShopClosed,
    ShopRegistered,
)
from vitrine.contract.policy_kernel import account_after
from vitrine.runtime.decision import Decision
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_distribution import domain
from vitrine_distribution.domain import ListingChange, Offer, Order, PolicyView, ProductView
from vitrine_distribution.domain.commissions import COMMISSIONS, WAITING
from vitrine_distribution.repository import OrderRecord, Store, rebuild, waiting_document

log = get_logger(__name__)
REPORTS_OUT = "compliance.reports"
SERVICE: Final = "distribution"
OFFERS_IN: Final = "merchants.offers"
CATALOG_IN: Final = "catalog.products"
#: How long an order waits for its offer by default (DESIGN.md §4: 24 h).
DEFAULT_OFFER_WAIT: Final = timedelta(hours=24)

OfferCommand = OfferPublished | OfferWithdrawRequested
OrderEvent = OrderPaid | OrderCompleted | OrderRefunded
#: The catalog and compliance types distribution acts on (the pipeline skips the rest).
CATALOG_TYPES = frozenset(m.event_type for m in (ProductListed, ProductDelisted))
RULING_TYPES = frozenset(m.event_type for m in (PolicyInForce, PolicyLifted))


def make_handlers(
    store: Callable[[UnitOfWork], Store],
    *,
    offer_wait: timedelta = DEFAULT_OFFER_WAIT,
    product_wait: timedelta = timedelta(0),
) -> dict[str, BatchHandler]:
    """The handlers per input topic, reaching distribution's state through ``store(uow)``;
    ``offer_wait`` bounds how long (in event time) an order waits for its offer,
    ``product_wait`` an offer command for its product (0: refused at once, as before)."""

    async def offers(events: list[Event[Any]], uow: UnitOfWork) -> None:
        await apply_offer_commands(events, uow, store(uow), offer_wait, product_wait=product_wait)

    async def catalog(events: list[Event[Any]], uow: UnitOfWork) -> None:
        await apply_catalog(events, uow, store(uow), offer_wait, product_wait)

    async def shops(events: list[Event[Any]], uow: UnitOfWork) -> None:
        await apply_shops(events, uow, store(uow))

    async def rulings(events: list[Event[Any]], uow: UnitOfWork) -> None:
        await apply_rulings(events, uow, store(uow))

    async def orders(events: list[Event[Any]], uow: UnitOfWork) -> None:
        await apply_orders(events, uow, store(uow), offer_wait)

    return {
        OFFERS_IN: offers,
        CATALOG_IN: catalog,
        "accounts.shops": shops,
        "compliance.rulings": rulings,
        "orders.lifecycle": orders,
    }


def _emit(decision: Decision[Any], uow: UnitOfWork, cause: Event[Any]) -> None:
    decision.emit(uow, cause=cause)


# --- merchants.offers -----------------------------------------------------------------------------


async def apply_offer_commands(
    events: list[Event[OfferCommand]],
    uow: UnitOfWork,
    store: Store,
    offer_wait: timedelta,
    *,
    released: bool = False,
    product_wait: timedelta = timedelta(0),
) -> None:
    """``offer.published`` (activate or change terms) and ``offer.withdrawn`` (by its merchant);
    then the held orders these offers (or the passing of time) decide.

    A command naming a product distribution has not seen yet — and every later command of an
    offer that waits — is kept until the product arrives (``released``: they are applied now).
    """
    offers = await store.load_offers(e.data.offer_id for e in events)
    product_ids = {e.data.product_id for e in events if isinstance(e.data, OfferPublished)}
    product_ids |= {o.product_id for o in offers.values()}
    products = await store.load_products(product_ids)
    waiting = set() if released else await store.waiting_offers(e.data.offer_id for e in events)
    kept: list[dict[str, Any]] = []
    # every offer of these products: "is there a live general plan?" for targeted plans
    offers = {**await store.offers_for_products(product_ids), **offers}
    policies = await store.policies_in_force()
    merchants = await store.load_accounts({p.merchant_id for p in products.values()})
    changed: set[str] = set()
    for event in events:
        data = event.data
        current = offers.get(data.offer_id)
        unknown_product = (
            isinstance(data, OfferPublished) and current is None and data.product_id not in products
        )
        if not released and (data.offer_id in waiting or (unknown_product and product_wait)):
            product_id = data.product_id if isinstance(data, OfferPublished) else ""
            kept.append(waiting_document(event, product_id, time.time_ns() + len(kept)))
            waiting.add(data.offer_id)
            log.info("offer.waits_for_product", offer_id=data.offer_id, product_id=product_id)
            continue
        decision: Decision[Offer | None]
        fresh: ProductView | None = None  # the product a new or revived offer is to follow
        match data:
            case OfferPublished():
                product = products.get(data.product_id)
                since = domain.effective_time(current, event.time)
                if product is not None and (current is None or current.withdrawn):
                    # it did not follow the product's listing changes: judged against the
                    # product as it was at its own time, then it re-applies the later ones
                    fresh, product = product, product.as_of(since)
                decision = domain.publish(
                    current,
                    data,
                    event.time,
                    product=product,
                    policies=policies,
                    merchant=merchants.get(product.merchant_id) if product else None,
                    general_live=domain.general_live(
                        offers.values(), data.product_id, data.offer_id
                    ),
                )
            case OfferWithdrawRequested():
                decision = domain.withdraw(current, data, event.time)
        _emit(decision, uow, event)
        if decision.refused:
            log.info(
                "offer.refused",
                offer_id=data.offer_id,
                command=event.type,
                codes=[r.code for r in decision.refused],
            )
            continue
        if decision.ignored is not None or decision.state is None:
            log.info("offer.command_ignored", offer_id=data.offer_id, why=decision.ignored)
            continue
        offers[data.offer_id] = decision.state
        changed.add(data.offer_id)
        if fresh is not None:
            later = domain.follow_listing(
                offers[data.offer_id],
                fresh,
                since,
                policies=policies,
                merchant=merchants.get(fresh.merchant_id),
            )
            for change, followed in later:
                followed.emit(uow, cause=change.cause)
                offers[data.offer_id] = followed.state
            if later:
                log.info("offer.followed_listing", offer_id=data.offer_id, changes=len(later))
    await store.save_offers(offers[i] for i in sorted(changed))
    await store.keep_waiting(kept)
    watermark = await _advance_watermark(store, OFFERS_IN, (e.time for e in events))
    await _judge_held(uow, store, {i: offers[i] for i in changed}, watermark, offer_wait)


async def _advance_watermark(store: Store, topic: str, times: Iterable[datetime]) -> datetime:
    """The latest event time consumed from ``topic``, including these; saved when it moves."""
    before = await store.load_watermark(topic)
    latest = max(times)
    if before is not None and before >= latest:
        return before
    await store.save_watermark(topic, domain.to_ms(latest))
    return domain.to_ms(latest)


async def _judge_held(
    uow: UnitOfWork,
    store: Store,
    arrived: dict[str, Offer],
    watermark: datetime,
    offer_wait: timedelta,
) -> None:
    """Judge the held orders whose offer arrived, then refuse ``offer_unknown`` the ones whose
    wait is over (``paid_at`` + wait before the offers' watermark)."""
    records = await store.held_orders(arrived) if arrived else {}
    expired = await store.held_since(watermark - offer_wait)
    judged: dict[str, OrderRecord] = {}
    for oid in sorted(records.keys() | expired.keys()):
        record = records.get(oid) or expired[oid]
        offer = arrived.get(record.order.offer_id or "")
        if offer is None and oid not in expired:
            continue
        judged[oid] = _judge(uow, record, offer)
        log.info(
            "order.held_judged",
            order_id=oid,
            offer_id=record.order.offer_id,
            status=judged[oid].order.status,
        )
    await store.save_orders(judged[o] for o in sorted(judged))


def _judge(uow: UnitOfWork, record: OrderRecord, offer: Offer | None) -> OrderRecord:
    """A held order's judgement and what waited with it, each caused by its own input."""
    assert record.paid_key is not None
    decision = domain.judge(record.order, offer)
    decision.emit(uow, cause=record.cause(record.paid_key))
    record = record.adding(record.paid_key, decision.state, decision.events)
    return _drain(uow, record)


def _drain(uow: UnitOfWork, record: OrderRecord) -> OrderRecord:
    """Apply the completions/refunds that waited for the payment's judgement."""
    for item, decision in domain.drain(record.order):
        decision.emit(uow, cause=record.cause(item.event_id))
        record = record.adding(item.event_id, decision.state, decision.events)
    if record.order.status not in WAITING and record.causes:
        record = OrderRecord(record.order, record.applied, {}, None)
    return record


# --- catalog.products -----------------------------------------------------------------------------


async def apply_catalog(
    events: list[Event[Any]],
    uow: UnitOfWork,
    store: Store,
    offer_wait: timedelta,
    product_wait: timedelta = timedelta(0),
) -> None:
    """Project listed products (owner, source), make offers follow their product, then apply
    the offer commands that waited for these products (or whose wait is over)."""
    relevant: list[Event[ProductListed | ProductDelisted]] = [
        e for e in events if isinstance(e.data, ProductListed | ProductDelisted)
    ]
    if not relevant:
        return
    listing = {e.data.product_id for e in relevant if isinstance(e.data, ProductListed)}
    if len(relevant) > 1 and listing and await store.waiting_for(listing):
        # offers wait for one of these listings: apply it (and release them) before the
        # product's next event, as if the offers had been consumed in time
        for event in relevant:
            await apply_catalog([event], uow, store, offer_wait, product_wait)
        return
    product_ids = {e.data.product_id for e in relevant}
    products = await store.load_products(product_ids)
    offers = await store.offers_for_products(product_ids, live_only=True)
    by_product: dict[str, list[str]] = defaultdict(list)
    for offer in sorted(offers.values(), key=lambda o: o.offer_id):
        by_product[offer.product_id].append(offer.offer_id)
    policies = [p for p in await store.policies_in_force() if p.enforcing]
    merchants = await store.load_accounts({o.merchant_id for o in offers.values()})
    changed_products: set[str] = set()
    changed_offers: set[str] = set()
    for event in relevant:
        data = event.data
        pid = data.product_id
        known = products.get(pid)
        at = domain.to_ms(event.time)
        match data:
            case ProductListed():
                change = ListingChange(at, True, data.source, data.version, event.envelope)
                before = known or ProductView(pid, data.merchant_id, listed=False)
                product = replace(before, merchant_id=data.merchant_id).changed(change)
            case ProductDelisted():
                if known is None:
                    log.info("product.delisted_unknown", product_id=pid)
                    continue
                change = ListingChange(at, False, known.source, known.version, event.envelope)
                product = known.changed(change)
        products[pid] = product
        changed_products.add(pid)
        for offer_id in by_product.get(pid, []):
            offer = offers[offer_id]
            if product.listed:
                decision = domain.product_listed(
                    offer,
                    product,
                    event.time,
                    policies=policies,
                    merchant=merchants.get(offer.merchant_id),
                )
            else:
                decision = domain.product_delisted(offer, event.time)
            if decision.state is offer:
                continue
            _emit(decision, uow, event)
            offers[offer_id] = decision.state
            changed_offers.add(offer_id)
    await store.save_products(products[p] for p in sorted(changed_products))
    await store.save_offers(offers[o] for o in sorted(changed_offers))
    watermark = await _advance_watermark(store, CATALOG_IN, (e.time for e in relevant))
    listed_now = {e.data.product_id for e in relevant if isinstance(e.data, ProductListed)}
    released = await store.release_waiting(listed_now, watermark - product_wait)
    if released:
        await apply_offer_commands(released, uow, store, offer_wait, released=True)


# --- accounts.shops -------------------------------------------------------------------------------


async def apply_shops(
    events: list[Event[ShopRegistered | ShopClosed]], uow: UnitOfWork, store: Store
) -> None:
    """Project which accounts hold a provider-built shop (the §5 ``service_provider_built``
    exemption: a merchant's ``account_id`` is its ``merchant_id``)."""
    accounts = await store.load_accounts(e.data.account_id for e in events)
    for event in events:
        aid = event.data.account_id
        accounts[aid] = account_after(accounts.get(aid), event.data)
    await store.save_accounts(accounts[a] for a in sorted({e.data.account_id for e in events}))


# --- compliance.rulings ---------------------------------------------------------------------------


def _distribution_source_kinds(policy: PolicyView) -> set[str]:
    return {
        match.kind
        for rule in policy.rules
        if isinstance(rule, DisallowSource) and rule.applies_to("distribution")
        for match in rule.sources
    }


def _requires_shop(policy: PolicyView) -> bool:
    return any(isinstance(r, RequireShop) and r.applies_to("distribution") for r in policy.rules)


async def apply_rulings(events: list[Event[Any]], uow: UnitOfWork, store: Store) -> None:
    """``policy.in_force`` (record; ``enforce_existing`` suspends in bulk) and ``policy.lifted``.

    Rulings are rare and may touch many offers: each one is applied with bulk reads and ONE
    bulk write of the offers it changes, then reported once on ``compliance.reports``.
    """
    for event in events:
        data = event.data
        if not isinstance(data, PolicyInForce | PolicyLifted):
            continue
        known = (await store.load_policies([data.policy_id])).get(data.policy_id)
        phase: ReportPhase
        match data:
            case PolicyLifted():
                policy = known or PolicyView(data.policy_id, phase="block_new")
                await store.save_policy(
                    PolicyView(
                        policy.policy_id, policy.phase, policy.rules, policy.exemptions, True
                    )
                )
                held = await store.offers_held_by(domain.policy_hold(data.policy_id))
                result = domain.lift(data.policy_id, held.values(), event.time)
                phase = "lifted"
            case PolicyInForce():
                if known is not None and known.lifted:
                    log.info("policy.ruling_after_lift_ignored", policy_id=data.policy_id)
                    continue
                policy = PolicyView(
                    data.policy_id, data.phase, tuple(data.rules), data.exemptions, lifted=False
                )
                if data.phase != "enforce_existing":
                    await store.save_policy(policy)
                    continue  # block_new: new publishes are judged against it; nothing to report
                result = await _enforce(store, policy, event.time)
                await store.save_policy(policy, affected=result.state.affected)
                phase = "enforce_existing"
        await store.save_offers(result.state.offers.values())
        _emit(result, uow, event)
        uow.emit(
            REPORTS_OUT,
            EnforcementReported(
                policy_id=data.policy_id,
                service=SERVICE,
                phase=phase,
                affected=result.state.affected,
            ),
            subject=data.policy_id,
            cause=event,
        )
        log.info(
            "policy.enforced",
            policy_id=data.policy_id,
            phase=phase,
            affected=result.state.affected,
            events=len(result.emits),
        )


async def _enforce(store: Store, policy: PolicyView, at: datetime) -> Decision[domain.Enforcement]:
    """Load what ``policy`` may bar (in bulk) and hold it."""
    products = await store.products_with_source_kinds(_distribution_source_kinds(policy))
    if _requires_shop(policy):  # any merchant may lack the shop: judge every offer
        offers = await store.live_offers()
        products = {
            **await store.load_products({o.product_id for o in offers.values()}),
            **products,
        }
    else:
        offers = await store.offers_for_products(products, live_only=True)
    merchants = await store.load_accounts({o.merchant_id for o in offers.values()})
    return domain.enforce(policy, offers.values(), products, merchants, at)


# --- orders.lifecycle -----------------------------------------------------------------------------


async def apply_orders(
    events: list[Event[OrderEvent]], uow: UnitOfWork, store: Store, offer_wait: timedelta
) -> None:
    """Accrue, settle, adjust, cancel, claw back — exactly one accrual per order.

    Each order document records the input events it applied and what each produced; an event
    it already holds is not applied again, its events are re-emitted (same ids, so consumers
    dedupe them). The inbox normally stops redeliveries before this; this guard makes the
    order itself the unit of exactly-once, whatever the store's transaction isolation.
    An ``order.paid`` whose offer distribution has not consumed is held (module docstring).
    """
    records = await store.load_orders(e.data.order_id for e in events)
    offer_ids = {e.data.offer_id for e in events if isinstance(e.data, OrderPaid)}
    offers = await store.load_offers(i for i in offer_ids if i)
    watermark = await store.load_watermark(OFFERS_IN)
    changed: set[str] = set()
    for event in events:
        data = event.data
        oid = data.order_id
        record = records.get(oid) or OrderRecord(Order(oid))
        key = event.envelope.dedupe_key
        already = record.outputs(key)
        if already is not None:
            log.info("order.event_already_applied", order_id=oid, type=event.type, id=event.id)
            for stored in already:
                uow.emit(COMMISSIONS, rebuild(stored), subject=oid, cause=event)
            continue
        decision: Decision[Order]
        match data:
            case OrderPaid():
                offer = offers.get(data.offer_id) if data.offer_id else None
                wait_over = watermark is not None and watermark - offer_wait > data.paid_at
                decision = domain.pay(record.order, data, offer, wait_over=wait_over)
            case OrderCompleted():
                decision = domain.complete(record.order, key, event.time)
            case OrderRefunded():
                decision = domain.refund(record.order, key, data.refund_fen, event.time)
        if decision.ignored is not None:
            log.info("order.event_noop", order_id=oid, type=event.type, why=decision.ignored)
        _emit(decision, uow, event)
        waits = decision.changed and decision.state.status in WAITING
        record = record.applying(key, decision.state, decision.events, event if waits else None)
        if waits and decision.state.status == "held" and isinstance(data, OrderPaid):
            # only the payment that made it held: a later one is ignored ("already_paid"),
            # its envelope is not kept, and it must not replace the held payment's key
            record.paid_key = key
            log.info("order.held", order_id=oid, offer_id=data.offer_id)
        records[oid] = _drain(uow, record)
        changed.add(oid)
    await store.save_orders(records[o] for o in sorted(changed))
