"""Distribution's input handlers: bulk-load what a batch touches, fold its events in order
through the pure domain, bulk-save, emit (DESIGN.md §6 bulk paths).

One handler per input topic; all of a batch's handlers run in ONE MongoDB transaction, so a
later handler in the batch reads what an earlier one wrote (through ``uow.session``).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Final

from vitrine.contract.envelope import Event
from vitrine.contract.events import DisallowSource, EnforcementReported, RequireShop
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_distribution import domain, repository
from vitrine_distribution.domain import (
    Offer,
    OfferCommandRefused,
    Order,
    PolicyView,
    ProductView,
)

log = get_logger(__name__)
OFFERS_OUT = "distribution.offers"
COMMISSIONS_OUT = "distribution.commissions"
REPORTS_OUT = "compliance.reports"
SERVICE: Final = "distribution"


# --- merchants.offers -----------------------------------------------------------------------------


async def apply_offer_commands(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """``offer.published`` (activate or change terms) and ``offer.withdrawn`` (by its merchant)."""
    db, session = uow.db, uow.session
    now = domain.to_ms(uow.now())
    offers = await repository.load_offers(db, (e.data.offer_id for e in events), session)
    product_ids = {e.data.product_id for e in events if e.type == "offer.published"}
    product_ids |= {o.product_id for o in offers.values()}
    products = await repository.load_products(db, product_ids, session)
    # every offer of these products: "is there a live general plan?" for targeted plans
    offers = {**await repository.offers_for_products(db, product_ids, session), **offers}
    policies = await repository.policies_in_force(db, session)
    merchants = await repository.merchant_accounts(
        db, {p.merchant_id for p in products.values()}, session
    )
    changed: set[str] = set()
    for event in events:
        data = event.data
        current = offers.get(data.offer_id)
        if event.type == "offer.published":
            product = products.get(data.product_id)
            outcome = domain.publish(
                current,
                data,
                now,
                product=product,
                policies=policies,
                merchant=merchants.get(product.merchant_id) if product else None,
                general_live=domain.general_live(offers.values(), data.product_id, data.offer_id),
            )
            product_id: str | None = data.product_id
        else:
            outcome = domain.withdraw(current, data, now)
            product_id = current.product_id if current else None
        if outcome.refused:
            log.info(
                "offer.refused",
                offer_id=data.offer_id,
                command=event.type,
                codes=[r.code for r in outcome.refused],
            )
            uow.emit(
                OFFERS_OUT,
                OfferCommandRefused(
                    offer_id=data.offer_id,
                    product_id=product_id,
                    merchant_id=data.merchant_id,
                    reasons=outcome.refused,
                    command=event.type,
                ),
                subject=data.offer_id,
                cause=event,
            )
            continue
        if outcome.ignored is not None or outcome.offer is None:
            log.info("offer.command_ignored", offer_id=data.offer_id, why=outcome.ignored)
            continue
        offers[data.offer_id] = outcome.offer
        changed.add(data.offer_id)
        for out in outcome.events:
            uow.emit(OFFERS_OUT, out, subject=data.offer_id, cause=event)
    await repository.save_offers(db, (offers[i] for i in sorted(changed)), session)


# --- catalog.products -----------------------------------------------------------------------------


async def apply_catalog(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Project listed products (owner, source) and make offers follow their product."""
    relevant = [e for e in events if e.type in ("product.listed", "product.delisted")]
    if not relevant:
        return
    db, session = uow.db, uow.session
    now = domain.to_ms(uow.now())
    product_ids = {e.data.product_id for e in relevant}
    products = await repository.load_products(db, product_ids, session)
    offers = await repository.offers_for_products(db, product_ids, session, live_only=True)
    by_product: dict[str, list[str]] = defaultdict(list)
    for offer in sorted(offers.values(), key=lambda o: o.offer_id):
        by_product[offer.product_id].append(offer.offer_id)
    policies = [p for p in await repository.policies_in_force(db, session) if p.enforcing]
    merchants = await repository.merchant_accounts(
        db, {o.merchant_id for o in offers.values()}, session
    )
    changed_products: set[str] = set()
    changed_offers: set[str] = set()
    for event in relevant:
        data = event.data
        pid = data.product_id
        if event.type == "product.listed":
            product = ProductView(
                product_id=pid,
                merchant_id=data.merchant_id,
                listed=True,
                source=data.source,
                version=data.version,
            )
            products[pid] = product
        else:
            known = products.get(pid)
            if known is None:
                log.info("product.delisted_unknown", product_id=pid)
                continue
            product = ProductView(pid, known.merchant_id, False, known.source, known.version)
            products[pid] = product
        changed_products.add(pid)
        for offer_id in by_product.get(pid, []):
            offer = offers[offer_id]
            if product.listed:
                outcome = domain.product_listed(
                    offer,
                    product,
                    now,
                    policies=policies,
                    merchant=merchants.get(offer.merchant_id),
                )
            else:
                outcome = domain.product_delisted(offer, now)
            if outcome.offer is None or outcome.offer is offer:
                continue
            offers[offer_id] = outcome.offer
            changed_offers.add(offer_id)
            for out in outcome.events:
                uow.emit(OFFERS_OUT, out, subject=offer_id, cause=event)
    await repository.save_products(db, (products[p] for p in sorted(changed_products)), session)
    await repository.save_offers(db, (offers[o] for o in sorted(changed_offers)), session)


# --- accounts.shops -------------------------------------------------------------------------------


async def apply_shops(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Project which accounts hold a provider-built shop (the §5 ``service_provider_built``
    exemption: a merchant's ``account_id`` is its ``merchant_id``)."""
    db, session = uow.db, uow.session
    accounts = await repository.load_accounts(db, (e.data.account_id for e in events), session)
    changed: set[str] = set()
    for event in events:
        data = event.data
        shops = accounts.setdefault(data.account_id, {})
        if event.type == "shop.registered":
            shops[data.shop_id] = {
                "shop_id": data.shop_id,
                "shop_kind": data.shop_kind,
                "service_provider_built": data.service_provider_built,
            }
        else:
            shops.pop(data.shop_id, None)
        changed.add(data.account_id)
    await repository.save_accounts(db, {a: accounts[a] for a in sorted(changed)}, session)


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


async def apply_rulings(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """``policy.in_force`` (record; ``enforce_existing`` suspends in bulk) and ``policy.lifted``.

    Rulings are rare and may touch many offers: each one is applied with bulk reads and ONE
    bulk write of the offers it changes, then reported once on ``compliance.reports``.
    """
    db, session = uow.db, uow.session
    now = domain.to_ms(uow.now())
    for event in events:
        data = event.data
        if event.type not in ("policy.in_force", "policy.lifted"):
            continue
        known = (await repository.load_policies(db, [data.policy_id], session)).get(data.policy_id)
        if event.type == "policy.lifted":
            policy = known or PolicyView(data.policy_id, phase="block_new")
            await repository.save_policy(
                db,
                PolicyView(policy.policy_id, policy.phase, policy.rules, policy.exemptions, True),
                session,
            )
            held = await repository.offers_held_by(db, domain.policy_hold(data.policy_id), session)
            result = domain.lift(data.policy_id, held.values(), now)
            phase = "lifted"
        else:
            if known is not None and known.lifted:
                log.info("policy.ruling_after_lift_ignored", policy_id=data.policy_id)
                continue
            policy = PolicyView(
                data.policy_id, data.phase, tuple(data.rules), data.exemptions, lifted=False
            )
            if data.phase != "enforce_existing":
                await repository.save_policy(db, policy, session)
                continue  # block_new: new publishes are judged against it; nothing to report
            products = await repository.products_with_source_kinds(
                db, _distribution_source_kinds(policy), session
            )
            if _requires_shop(policy):  # any merchant may lack the shop: judge every offer
                offers = await repository.live_offers(db, session)
                products = {
                    **await repository.load_products(
                        db, {o.product_id for o in offers.values()}, session
                    ),
                    **products,
                }
            else:
                offers = await repository.offers_for_products(db, products, session, live_only=True)
            merchants = await repository.merchant_accounts(
                db, {o.merchant_id for o in offers.values()}, session
            )
            result = domain.enforce(policy, offers.values(), products, merchants, now)
            await repository.save_policy(db, policy, session, affected=result.affected)
            phase = "enforce_existing"
        await repository.save_offers(db, result.offers.values(), session)
        for offer_id, out in result.events:
            uow.emit(OFFERS_OUT, out, subject=offer_id, cause=event)
        uow.emit(
            REPORTS_OUT,
            EnforcementReported(
                policy_id=data.policy_id, service=SERVICE, phase=phase, affected=result.affected
            ),
            subject=data.policy_id,
            cause=event,
        )
        log.info(
            "policy.enforced",
            policy_id=data.policy_id,
            phase=phase,
            affected=result.affected,
            events=len(result.events),
        )


# --- orders.lifecycle -----------------------------------------------------------------------------


async def apply_orders(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Accrue, settle, adjust, cancel, claw back — exactly one accrual per order.

    Each order document records the input events it applied and what each produced; an event
    it already holds is not applied again, its events are re-emitted (same ids, so consumers
    dedupe them). The inbox normally stops redeliveries before this; this guard makes the
    order itself the unit of exactly-once, whatever the store's transaction isolation.
    """
    db, session = uow.db, uow.session
    now = domain.to_ms(uow.now())
    records = await repository.load_orders(db, (e.data.order_id for e in events), session)
    offer_ids = {e.data.offer_id for e in events if e.type == "order.paid" and e.data.offer_id}
    offers: dict[str, Offer] = await repository.load_offers(db, offer_ids, session)
    changed: set[str] = set()
    for event in events:
        data = event.data
        oid = data.order_id
        record = records.get(oid) or repository.OrderRecord(Order(oid))
        key = event.envelope.dedupe_key
        already = record.outputs(key)
        if already is not None:
            log.info("order.event_already_applied", order_id=oid, type=event.type, id=event.id)
            for stored in already:
                uow.emit(COMMISSIONS_OUT, repository.rebuild(stored), subject=oid, cause=event)
            continue
        order = record.order
        if event.type == "order.paid":
            offer = offers.get(data.offer_id) if data.offer_id else None
            outcome = domain.pay(order, data, offer, now)
        elif event.type == "order.completed":
            outcome = domain.complete(order, event.id, now)
        else:
            outcome = domain.refund(order, event.id, data.refund_fen, now)
        if outcome.ignored is not None:
            log.info("order.event_noop", order_id=oid, type=event.type, why=outcome.ignored)
        records[oid] = record.applying(key, outcome.order, outcome.events)
        changed.add(oid)
        for out in outcome.events:
            uow.emit(COMMISSIONS_OUT, out, subject=oid, cause=event)
    await repository.save_orders(db, (records[o] for o in sorted(changed)), session)
