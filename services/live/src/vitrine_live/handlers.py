"""Live's input handlers: load in bulk → fold each batch through the domain → stage the
events → save in bulk. Every decision (open, add, refuse, hold, release) is the domain's.

As in showcase, the events a batch decided are staged in the outbox before the state they
describe is written, and hold events are keyed by (session, product, cause), so a re-run of a
sweep after a crash gives every event the id it got the first time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Final

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    ItemAdded,
    ItemRemoved,
    ItemRestored,
    ItemSuspended,
    LiveAddRequested,
    LiveEndRequested,
    LiveExplainRequested,
    LiveRemoveRequested,
    LiveStartRequested,
    PolicyInForce,
    PolicyLifted,
    ProductBackInStock,
    ProductDelisted,
    ProductListed,
    ProductSoldOut,
    ShopClosed,
    ShopRegistered,
)
from vitrine.contract.listings import CatalogEvent, product_after
from vitrine.contract.offers import OfferEvent, offer_after
from vitrine.contract.policy_kernel import account_after
from vitrine.runtime.decision import Decision
from vitrine.runtime.handlers import bind_table, report_enforcement, stage_emitted
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_live import domain
from vitrine_live.domain import Account, AddContext, Offer, Policy, Product, Session
from vitrine_live.repository import LiveStore, chunks

log = get_logger(__name__)
SERVICE: Final = "live"
#: Sessions per step of a bulk sweep: events staged and sessions written together.
SWEEP_CHUNK: Final = 1_000


def make_handlers(store: Callable[[UnitOfWork], LiveStore]) -> dict[str, BatchHandler]:
    """The handlers per input topic, reaching live's state through ``store(uow)``."""

    return bind_table(
        store,
        {
            "creators.live": apply_requests,
            "catalog.products": apply_catalog,
            "showcase.items": apply_showcase,
            "distribution.offers": apply_offers,
            "accounts.shops": apply_shops,
            "compliance.rulings": apply_rulings,
        },
    )


class _Sessions:
    """The sessions a batch touches, folded through decisions in order."""

    def __init__(self, sessions: Iterable[Session]) -> None:
        self.now = {s.session_id: s for s in sessions}
        self.changed: set[str] = set()

    def apply(self, decision: Decision[Session], uow: UnitOfWork, cause: Event[Any]) -> None:
        decision.emit(uow, cause=cause)
        if decision.changed:
            self.now[decision.state.session_id] = decision.state
            self.changed.add(decision.state.session_id)

    def with_product(self, product_id: str) -> list[Session]:
        return [s for _, s in sorted(self.now.items()) if s.open and s.find(product_id)]

    def saved(self) -> list[Session]:
        return [self.now[s] for s in sorted(self.changed)]


# --- creators.live -----------------------------------------------------------------------------


async def apply_requests(
    events: list[Event[domain.Request]], uow: UnitOfWork, store: LiveStore
) -> None:
    """Creators' start / add / remove / explain / end requests, in order."""
    sessions = await store.load_sessions({e.data.session_id for e in events})
    open_of = await store.open_sessions_of({e.subject for e in events})
    sessions |= {s.session_id: s for s in open_of.values()}
    adds = [e.data for e in events if isinstance(e.data, LiveAddRequested)]
    products: dict[str, Product] = {}
    offers: dict[str, Offer] = {}
    accounts: dict[str, Account] = {}
    in_showcase: set[str] = set()
    policies: list[Policy] = []
    if adds:
        products = await store.load_products(a.product_id for a in adds)
        offers = await store.load_offers(a.offer_id for a in adds if a.offer_id)
        accounts = await store.load_accounts(
            {a.creator_id for a in adds} | {p.merchant_id for p in products.values()}
        )
        in_showcase = await store.showcase_active(
            domain.showcase_key(a.creator_id, a.product_id) for a in adds
        )
        policies = [p for p in (await store.load_policies()).values() if p.in_force]
    state = _Sessions(sessions.values())
    for event in events:
        d = event.data
        session = state.now.get(d.session_id)
        decision: Decision[Session | None]
        if domain.access(event.subject, d, session):
            decision = domain.refuse_foreign(event.subject, d, session)
        elif isinstance(d, LiveStartRequested):
            decision = domain.start(session, open_of.get(d.creator_id), d, event.time)
        else:
            assert session is not None  # access() let it through: open and the creator's
            match d:
                case LiveAddRequested():
                    product = products.get(d.product_id)
                    ctx = AddContext(
                        product=product,
                        creator=accounts.get(d.creator_id),
                        merchant=accounts.get(product.merchant_id) if product else None,
                        offer=offers.get(d.offer_id) if d.offer_id else None,
                        in_showcase=domain.showcase_key(d.creator_id, d.product_id) in in_showcase,
                        policies=policies,
                    )
                    decision = domain.add(session, d, ctx)
                case LiveRemoveRequested():
                    decision = domain.remove(session, d)
                case LiveExplainRequested():
                    decision = domain.explain(session, d)
                case LiveEndRequested():
                    decision = domain.end(session, d, event.time)
        if decision.ignored or decision.refused:
            log.info(
                "live.request_not_applied",
                why=decision.ignored or [r.code for r in decision.refused],
                type=event.type,
                subject=event.subject,
                session_id=d.session_id,
            )
        decision.emit(uow, cause=event)
        new = decision.state
        if decision.changed and new is not None:
            state.now[new.session_id] = new
            state.changed.add(new.session_id)
            if new.open:
                open_of[new.creator_id] = new
            elif open_of.get(new.creator_id) is not None:
                del open_of[new.creator_id]
    await stage_emitted(uow)
    await store.save_sessions(state.saved())


# --- showcase.items: which products are active in each creator's showcase ----------------------

_SHOWCASE = (ItemAdded, ItemRemoved, ItemSuspended, ItemRestored)


async def apply_showcase(events: list[Event[Any]], uow: UnitOfWork, store: LiveStore) -> None:
    """Project the showcase: added/restored → active, suspended → not, removed → gone."""
    changes: dict[str, bool | None] = {}
    for event in events:
        d = event.data
        if not isinstance(d, _SHOWCASE):
            continue  # refusals and moves change nothing live needs
        key = domain.showcase_key(d.creator_id, d.product_id)
        match d:
            case ItemRemoved():
                changes[key] = None
            case ItemSuspended():
                changes[key] = False
            case _:
                changes[key] = True
    await store.save_showcase(changes)


# --- catalog.products --------------------------------------------------------------------------


async def apply_catalog(events: list[Event[Any]], uow: UnitOfWork, store: LiveStore) -> None:
    """Project products; cart items of open sessions follow delisting, relisting, sold out
    and back in stock."""
    relevant = [e for e in events if isinstance(e.data, CatalogEvent)]
    if not relevant:
        return
    pids = {e.data.product_id for e in relevant}
    products = await store.load_products(pids)
    state = _Sessions(await store.open_sessions_with_products(pids))
    policies = [p for p in (await store.load_policies()).values() if p.enforcing]
    accounts: dict[str, Account] = {}
    if policies and state.now:  # the new version may come from a source a policy bars
        wanted = {s.creator_id for s in state.now.values()}
        wanted |= {e.data.merchant_id for e in relevant if isinstance(e.data, ProductListed)}
        accounts = await store.load_accounts(wanted)
    changed: set[str] = set()
    for event in relevant:
        pid = event.data.product_id
        product = product_after(event.data, products.get(pid))
        match event.data:
            case ProductListed() as d:
                assert product is not None  # a listing always brings the terms
                for session in state.with_product(pid):
                    decision = domain.product_listed(
                        session,
                        product,
                        policies=policies,
                        creator=accounts.get(session.creator_id),
                        merchant=accounts.get(d.merchant_id),
                    )
                    state.apply(decision, uow, event)
            case ProductDelisted():
                for session in state.with_product(pid):
                    state.apply(domain.product_delisted(session, pid), uow, event)
            case ProductSoldOut() | ProductBackInStock() as d:
                sold_out = isinstance(d, ProductSoldOut)
                for session in state.with_product(pid):
                    state.apply(domain.stock_changed(session, pid, sold_out=sold_out), uow, event)
        if product is not None:
            products[pid] = product
            changed.add(pid)
    await stage_emitted(uow)
    await store.save_products(products[p] for p in sorted(changed))
    await store.save_sessions(state.saved())


# --- distribution.offers -----------------------------------------------------------------------


async def apply_offers(events: list[Event[OfferEvent]], uow: UnitOfWork, store: LiveStore) -> None:
    """Project offers; cart items taken through an offer are held ``offer_unavailable`` while
    it is withdrawn or suspended or does not name their creator."""
    ids = {e.data.offer_id for e in events}
    offers = await store.load_offers(ids)
    state = _Sessions(await store.open_sessions_with_offers(ids))
    changed: set[str] = set()
    for event in events:
        offer = offer_after(event.data, offers.get(event.data.offer_id))
        if offer is None:
            continue
        offers[offer.offer_id] = offer
        changed.add(offer.offer_id)
        for _, session in sorted(state.now.items()):
            state.apply(domain.offer_changed(session, offer), uow, event)
    await stage_emitted(uow)
    await store.save_offers(offers[o] for o in sorted(changed))
    await store.save_sessions(state.saved())


# --- accounts.shops ----------------------------------------------------------------------------


async def apply_shops(
    events: list[Event[ShopRegistered | ShopClosed]], uow: UnitOfWork, store: LiveStore
) -> None:
    """Which shops each account holds; a creator's open cart is judged again by the policies
    enforcing now (``shop.closed`` may hold items for ``require_shop``)."""
    ids = {e.data.account_id for e in events}
    accounts = await store.load_accounts(ids)
    policies = [p for p in (await store.load_policies()).values() if p.enforcing]
    open_of = await store.open_sessions_of(ids) if policies else {}
    state = _Sessions(open_of.values())
    if open_of:
        merchants = {i.merchant_id for s in open_of.values() for i in s.items} - set(accounts)
        accounts |= await store.load_accounts(merchants)
    for event in events:
        d = event.data
        account = account_after(accounts.get(d.account_id), d)
        accounts[d.account_id] = account
        session = open_of.get(d.account_id)
        if session is not None:
            session = state.now[session.session_id]
            state.apply(domain.rejudge(session, policies, account, accounts), uow, event)
    await stage_emitted(uow)
    await store.save_accounts(accounts[a] for a in sorted(ids))
    await store.save_sessions(state.saved())


# --- compliance.rulings ------------------------------------------------------------------------


async def apply_rulings(events: list[Event[Any]], uow: UnitOfWork, store: LiveStore) -> None:
    """Record rulings; enforce them on open carts in bulk; lift them; report for ``live``."""
    for event in events:
        match event.data:
            case PolicyInForce() as d:
                policies = await store.load_policies()
                existing = policies.get(d.policy_id)
                if existing is not None and existing.lifted:
                    log.warning("policy.ruling_ignored", policy_id=d.policy_id, why="lifted")
                    continue
                policy = (existing or Policy(d.policy_id)).reached(d)
                await store.save_policy(policy)
                if d.phase == "enforce_existing":
                    await enforce(policy, event, uow, store)
            case PolicyLifted() as d:
                await lift(d.policy_id, event, uow, store)


async def _sweep(
    sessions: list[Session],
    decide: Callable[[Session, dict[str, Account]], Decision[Session]],
    accounts_for: Callable[[list[Session]], Any],
    cause: Event[Any],
    uow: UnitOfWork,
    store: LiveStore,
) -> None:
    """Fold every open session through ``decide``, ``SWEEP_CHUNK`` sessions at a time (events
    staged, then the sessions written in one bulk call per chunk)."""
    for part in chunks(sessions, SWEEP_CHUNK):
        accounts: dict[str, Account] = await accounts_for(list(part))
        state = _Sessions(part)
        for session in part:
            state.apply(decide(session, accounts), uow, cause)
        await stage_emitted(uow)
        await store.save_sessions(state.saved())


async def enforce(policy: Policy, cause: Event[Any], uow: UnitOfWork, store: LiveStore) -> int:
    """``enforce_existing``: hold every open cart item the policy bars; report the count
    (held now or before) when a rule names ``live``."""
    started = time.perf_counter()
    barred = 0

    async def accounts_for(part: list[Session]) -> dict[str, Account]:
        ids = {s.creator_id for s in part} | {i.merchant_id for s in part for i in s.items}
        return await store.load_accounts(ids)

    def decide(session: Session, accounts: dict[str, Account]) -> Decision[Session]:
        nonlocal barred
        decision, count = domain.enforce(
            policy, session, accounts.get(session.creator_id), accounts
        )
        barred += count
        return decision

    if policy.names_live:
        await _sweep(await store.open_sessions(), decide, accounts_for, cause, uow, store)
        report_enforcement(uow, SERVICE, policy.policy_id, "enforce_existing", barred, cause)
        await stage_emitted(uow)
    log.info(
        "enforcement.applied",
        policy_id=policy.policy_id,
        barred=barred,
        seconds=round(time.perf_counter() - started, 3),
    )
    return barred


async def lift(policy_id: str, cause: Event[Any], uow: UnitOfWork, store: LiveStore) -> int:
    """Release this policy's hold on every open cart item; items with none left come back."""
    policies = await store.load_policies()
    policy = replace(policies.get(policy_id) or Policy(policy_id), lifted=True)
    await store.save_policy(policy)
    held = [s for s in await store.open_sessions() if any(policy.hold in i.holds for i in s.items)]
    released = sum(1 for s in held for i in s.items if policy.hold in i.holds)

    async def no_accounts(part: list[Session]) -> dict[str, Account]:
        return {}

    await _sweep(held, lambda s, _: domain.lift(policy_id, s), no_accounts, cause, uow, store)
    if policy.names_live:
        report_enforcement(uow, SERVICE, policy_id, "lifted", released, cause)
        await stage_emitted(uow)
    return released
