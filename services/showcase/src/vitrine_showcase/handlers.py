"""Showcase's input handlers: load in bulk → fold each batch through the domain → stage the
events → save in bulk. Every decision (what to add, refuse, hold, release) is the domain's.

One rule of order everywhere: **decide in memory → emit → stage the outbox → write state**.
Staging the events before the state they describe means that even if a crash left the state
writes of an unfinished transaction visible (nx-27017 does exactly that on kill -9: the
open SQLite transaction stays open and later sessions read through it — see README), the
events for every written change are staged too, and a re-run emits the rest with the same
ids. Hold events are keyed by (cause, item, hold) rather than by a running counter, so a
re-run that finds part of a sweep done still gives every item the id it got the first time.

Handlers reach their state through a :class:`~vitrine_showcase.repository.ShowcaseStore`
(:func:`make_handlers`): MongoDB in the service, a dict in the handler tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Final, assert_never

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    ItemRefused,
    PolicyInForce,
    PolicyLifted,
    ProductBackInStock,
    ProductDelisted,
    ProductListed,
    ProductSoldOut,
    Reason,
    ShopClosed,
    ShopRegistered,
    ShowcaseAddRequested,
    ShowcaseMoveRequested,
    ShowcaseRemoveRequested,
)
from vitrine.contract.listings import CatalogEvent, product_after
from vitrine.contract.offers import OfferEvent, offer_after
from vitrine.contract.policy_kernel import account_after
from vitrine.runtime.decision import Decision
from vitrine.runtime.handlers import bind_table, report_enforcement, stage_emitted
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_showcase import domain, repository
from vitrine_showcase.domain import Account, AddContext, Item, Offer, Policy, Product
from vitrine_showcase.repository import ShowcaseStore

log = get_logger(__name__)
OUTPUT = "showcase.items"
SERVICE: Final = "showcase"
#: Items per step of a bulk sweep: events staged and holds written together, then dropped.
SWEEP_CHUNK: Final = 1_000


def make_handlers(store: Callable[[UnitOfWork], ShowcaseStore]) -> dict[str, BatchHandler]:
    """The handlers per input topic, reaching showcase's state through ``store(uow)``."""

    return bind_table(
        store,
        {
            "creators.showcase": apply_requests,
            "catalog.products": apply_catalog,
            "accounts.shops": apply_shops,
            "distribution.offers": apply_offers,
            "compliance.rulings": apply_rulings,
        },
    )


class _Holds:
    """The items a batch touches, folded through hold decisions in order."""

    def __init__(self, items: Iterable[Item]) -> None:
        self.before = {i.key: i for i in items}
        self.now = dict(self.before)

    def where(self, field: str, value: str) -> list[Item]:
        """The items (as they stand now) whose ``field`` is ``value``, in key order."""
        return [i for _, i in sorted(self.now.items()) if getattr(i, field) == value]

    def apply(self, decision: Decision[Item], uow: UnitOfWork, cause: Event[Any]) -> None:
        if decision.ignored is None:
            self.now[decision.state.key] = decision.state
            decision.emit(uow, cause=cause)

    def changes(self) -> list[tuple[Item, Item]]:
        return [(self.before[k], i) for k, i in sorted(self.now.items()) if i != self.before[k]]


# --- creators.showcase -----------------------------------------------------------------------


def _owns_showcase(event: Event[Any], uow: UnitOfWork) -> bool:
    """Ownership: a request keyed to creator A may change only A's showcase.

    A request naming another creator is refused (``not_showcase_owner``) and logged, on the
    requester's key, and changes nothing.
    """
    d = event.data
    if d.creator_id == event.subject:
        return True
    log.warning(
        "showcase.request_refused",
        code="not_showcase_owner",
        subject=event.subject,
        creator_id=d.creator_id,
        product_id=d.product_id,
        type=event.type,
    )
    uow.emit(
        OUTPUT,
        ItemRefused(
            creator_id=event.subject,
            product_id=d.product_id,
            reasons=[
                Reason(
                    code="not_showcase_owner",
                    field="creator_id",
                    message=f"a request keyed to {event.subject} may not change "
                    f"{d.creator_id}'s showcase",
                )
            ],
        ),
        subject=event.subject,
        cause=event,
    )
    return False


#: What creators send on ``creators.showcase``.
Request = ShowcaseAddRequested | ShowcaseRemoveRequested | ShowcaseMoveRequested


async def apply_requests(
    events: list[Event[Request]], uow: UnitOfWork, store: ShowcaseStore
) -> None:
    """Creators' add / remove / move requests, folded per creator in order."""
    events = [e for e in events if _owns_showcase(e, uow)]
    if not events:
        return
    before = await store.load_showcases(e.subject for e in events)
    adds = [e.data for e in events if isinstance(e.data, ShowcaseAddRequested)]
    products: dict[str, Product] = {}
    offers: dict[str, Offer] = {}
    accounts: dict[str, Account] = {}
    policies: list[Policy] = []
    if adds:
        products = await store.load_products(a.product_id for a in adds)
        offers = await store.load_offers(a.offer_id for a in adds if a.offer_id)
        accounts = await store.load_accounts(
            {a.creator_id for a in adds} | {p.merchant_id for p in products.values()}
        )
        policies = await store.load_policies_in_force()

    after = dict(before)
    for event in events:
        d = event.data
        showcase = after[d.creator_id]
        match d:
            case ShowcaseAddRequested():
                product = products.get(d.product_id)
                ctx = AddContext(
                    product=product,
                    creator=accounts.get(d.creator_id),
                    merchant=accounts.get(product.merchant_id) if product else None,
                    offer=offers.get(d.offer_id) if d.offer_id else None,
                    policies=policies,
                )
                decision = domain.add(showcase, d, ctx)
            case ShowcaseRemoveRequested():
                decision = domain.remove(showcase, d)
            case ShowcaseMoveRequested():
                decision = domain.move(showcase, d)
            case _:
                assert_never(d)
        if decision.ignored:
            log.info("showcase.request_ignored", why=decision.ignored, type=event.type, **_ids(d))
        decision.emit(uow, cause=event)
        after[d.creator_id] = decision.state
    await stage_emitted(uow)
    await store.save_showcases(before, after)


def _ids(d: Any) -> dict[str, str]:
    return {"creator_id": d.creator_id, "product_id": d.product_id}


# --- catalog.products ------------------------------------------------------------------------


async def apply_catalog(events: list[Event[Any]], uow: UnitOfWork, store: ShowcaseStore) -> None:
    """Project listed products; ``product.delisted`` holds their items everywhere,
    ``product.listed`` judges them again and releases the delisting; ``product.sold_out``
    holds them ``sold_out`` until ``product.back_in_stock``. The projection keeps the stock
    state so that an item added while the product is sold out is held at once."""
    relevant = [e for e in events if isinstance(e.data, CatalogEvent)]
    if not relevant:
        return
    pids = {e.data.product_id for e in relevant}
    products = await store.load_products(pids)
    holds = _Holds(await store.items_of_products(pids))
    policies = [p for p in await store.load_policies_in_force() if p.enforcing]
    accounts: dict[str, Account] = {}
    if policies and holds.now:  # the new version may come from a source a policy bars
        wanted = {i.creator_id for i in holds.now.values()}
        wanted |= {e.data.merchant_id for e in relevant if isinstance(e.data, ProductListed)}
        accounts = await store.load_accounts(wanted)
    changed: set[str] = set()
    for event in relevant:
        pid = event.data.product_id
        product = product_after(event.data, products.get(pid))
        match event.data:
            case ProductListed():
                assert product is not None  # a listing always brings the terms
                for item in holds.where("product_id", pid):
                    decision = domain.product_listed(
                        item,
                        product,
                        policies=policies,
                        creator=accounts.get(item.creator_id),
                        merchant=accounts.get(product.merchant_id),
                    )
                    holds.apply(decision, uow, event)
            case ProductDelisted():
                for item in holds.where("product_id", pid):
                    holds.apply(domain.product_delisted(item), uow, event)
            case ProductSoldOut() | ProductBackInStock() as d:
                sold_out = isinstance(d, ProductSoldOut)
                for item in holds.where("product_id", pid):
                    holds.apply(domain.stock_changed(item, sold_out=sold_out), uow, event)
        if product is not None:
            products[pid] = product
            changed.add(pid)
    await stage_emitted(uow)
    await store.save_products(products[p] for p in sorted(changed))
    await store.save_item_changes(holds.changes())


# --- accounts.shops --------------------------------------------------------------------------


async def apply_shops(
    events: list[Event[ShopRegistered | ShopClosed]], uow: UnitOfWork, store: ShowcaseStore
) -> None:
    """Which shops each account holds (creators for ``require_shop``, merchants for the
    ``service_provider_built`` exemption). A creator's items are judged again by the
    policies enforcing now: ``shop.closed`` may hold them, ``shop.registered`` release them."""
    ids = {e.data.account_id for e in events}
    accounts = await store.load_accounts(ids)
    policies = [p for p in await store.load_policies_in_force() if p.enforcing]
    holds = _Holds(await store.items_of_creators(sorted(ids)) if policies else [])
    if holds.now:
        merchants = {i.merchant_id for i in holds.now.values()} - set(accounts)
        accounts |= await store.load_accounts(merchants)
    changed: set[str] = set()
    for event in events:
        account_id = event.data.account_id
        account = account_after(accounts.get(account_id), event.data)
        accounts[account_id] = account
        changed.add(account_id)
        for item in holds.where("creator_id", account_id):
            decision = domain.rejudge(item, policies, account, accounts.get(item.merchant_id))
            holds.apply(decision, uow, event)
    await stage_emitted(uow)
    await store.save_accounts(accounts[a] for a in sorted(changed))
    await store.save_item_changes(holds.changes())


# --- distribution.offers ---------------------------------------------------------------------


async def apply_offers(
    events: list[Event[OfferEvent]], uow: UnitOfWork, store: ShowcaseStore
) -> None:
    """Project offers; the items taken through an offer are held ``offer_unavailable`` while
    it is withdrawn or suspended or does not name their creator, and released after."""
    ids = {e.data.offer_id for e in events}
    offers = await store.load_offers(ids)
    holds = _Holds(await store.items_of_offers(ids))
    changed: set[str] = set()
    for event in events:
        offer = offer_after(event.data, offers.get(event.data.offer_id))
        if offer is None:
            continue
        offers[offer.offer_id] = offer
        changed.add(offer.offer_id)
        for item in holds.where("offer_id", offer.offer_id):
            holds.apply(domain.offer_changed(item, offer), uow, event)
    await stage_emitted(uow)
    await store.save_offers(offers[o] for o in sorted(changed))
    await store.save_item_changes(holds.changes())


# --- compliance.rulings ----------------------------------------------------------------------


async def apply_rulings(events: list[Event[Any]], uow: UnitOfWork, store: ShowcaseStore) -> None:
    """Record rules in force; enforce them on existing items in bulk; lift them."""
    for event in events:
        match event.data:
            case PolicyInForce():
                await _in_force(event, uow, store)
            case PolicyLifted():
                await _lifted(event, uow, store)


async def _in_force(event: Event[Any], uow: UnitOfWork, store: ShowcaseStore) -> None:
    d = event.data
    existing, _ = await store.load_policy(d.policy_id)
    if existing is not None and existing.lifted:
        log.warning("policy.ruling_ignored", policy_id=d.policy_id, why="already_lifted")
        return
    policy = (existing or Policy(d.policy_id)).reached(d)
    if not policy.enforcing:  # block_new: additions are judged against it from now on
        await store.save_policy(policy)
        return
    await enforce(policy, event, uow, store)


async def _candidates(
    policy: Policy, store: ShowcaseStore
) -> tuple[list[Item], dict[str, Account]]:
    """Items the policy may bar, from indexed finds (their sources; creators lacking a
    required shop), and the accounts the domain judges them with."""
    candidates = {i.key: i for i in await store.items_matching_sources(policy.source_candidates())}
    accounts: dict[str, Account] = {}
    if policy.requires_shop():
        with_items = await store.creators_with_items()
        accounts = await store.load_accounts(with_items)
        lacking = [c for c in with_items if domain.lacks_required_shop(policy, accounts.get(c))]
        for item in await store.items_of_creators(lacking):
            candidates.setdefault(item.key, item)
    items = [i for _, i in sorted(candidates.items())]
    merchants = {i.merchant_id for i in items} - set(accounts)
    if merchants and policy.exemptions.service_provider_built:
        accounts |= await store.load_accounts(merchants)
    return items, accounts


async def enforce(policy: Policy, cause: Event[Any], uow: UnitOfWork, store: ShowcaseStore) -> int:
    """``enforce_existing``: hold every item the policy bars, announce the newly held, report.

    Events are built, staged and the holds written one ``SWEEP_CHUNK`` of items at a time, so
    memory stays bounded by the chunk, not by the number of items (P4 in PERFORMANCE.md).
    """
    started = time.perf_counter()
    log.info("enforcement.started", policy_id=policy.policy_id)
    items, accounts = await _candidates(policy, store)
    found = time.perf_counter()
    matched = newly_held = modified = 0
    # Decided a chunk at a time: only the chunk's decisions (new item states and their events)
    # are alive at once, next to the candidates themselves.
    for part in repository.chunks(items, SWEEP_CHUNK):
        decisions = [
            decision
            for item in part
            if (
                decision := domain.enforce(
                    policy, item, accounts.get(item.creator_id), accounts.get(item.merchant_id)
                )
            )
            is not None
        ]
        matched += len(decisions)
        before = {i.key: i for i in part}
        newly = [d for d in decisions if d.ignored is None]
        if not newly:
            continue
        newly_held += len(newly)
        for decision in newly:
            decision.emit(uow, cause=cause)
        await stage_emitted(uow)
        log.info("enforcement.staged", policy_id=policy.policy_id, events=len(newly))
        modified += await store.save_item_changes([(before[d.state.key], d.state) for d in newly])
    await store.save_policy(policy, enforced_count=matched)
    report_enforcement(uow, SERVICE, policy.policy_id, "enforce_existing", matched, cause)
    await stage_emitted(uow)
    log.info(
        "enforcement.applied",
        policy_id=policy.policy_id,
        matched=matched,
        newly_suspended=newly_held,
        modified=modified,
        seconds=round(time.perf_counter() - started, 3),
        find_seconds=round(found - started, 3),
        stage_and_update_seconds=round(time.perf_counter() - found, 3),
    )
    return matched


async def _lifted(event: Event[Any], uow: UnitOfWork, store: ShowcaseStore) -> None:
    """Release this policy's hold everywhere; items with no hold left come back."""
    d = event.data
    started = time.perf_counter()
    existing, doc = await store.load_policy(d.policy_id)
    policy = replace(existing or Policy(d.policy_id), lifted=True)
    held = await store.items_held_by(policy.hold)
    # A re-run of this same event after a crash reports what the first run counted.
    count = doc["lift_count"] if doc.get("lifted_by") == event.id else len(held)
    await store.save_policy(policy, lifted_by=event.id, lift_count=count)
    for part in repository.chunks(held, SWEEP_CHUNK):  # bounded memory, as in ``enforce``
        decisions = [domain.lift(d.policy_id, item) for item in part]
        for decision in decisions:
            decision.emit(uow, cause=event)
        await stage_emitted(uow)
        await store.save_item_changes(
            [(item, dec.state) for item, dec in zip(part, decisions, strict=True)]
        )
    report_enforcement(uow, SERVICE, d.policy_id, "lifted", count, event)
    await stage_emitted(uow)
    log.info(
        "policy.lifted_applied",
        policy_id=d.policy_id,
        released=len(held),
        seconds=round(time.perf_counter() - started, 3),
    )
