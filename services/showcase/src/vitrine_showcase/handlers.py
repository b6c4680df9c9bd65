"""Showcase's input handlers: thin folds of each batch through the domain, bulk reads and writes.

One rule of order everywhere: **decide in memory → emit → stage the outbox → write state**.
Staging the events before the state they describe means that even if a crash left the state
writes of an unfinished transaction visible (nx-27017 does exactly that on kill -9: the
open SQLite transaction stays open and later sessions read through it — see README), the
events for every written change are staged too, and a re-run emits the rest with the same
ids. The bulk sweeps (delisting, policies) derive each event's id from (cause, item) rather
than from a running counter, so a re-run that finds part of the work done still gives every
item the id it got the first time.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace
from typing import Any, Final

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    EnforcementReported,
    EventData,
    ItemAdded,
    ItemMoved,
    ItemRefused,
    ItemRemoved,
    ItemRestored,
    ItemSuspended,
    Reason,
    ReportPhase,
    Source,
)
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging import outbox
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_showcase import domain, repository
from vitrine_showcase.domain import (
    HOLD_DELISTED,
    Account,
    AddContext,
    Item,
    Offer,
    Policy,
    Product,
    Shop,
)

log = get_logger(__name__)
OUTPUT = "showcase.items"
REPORTS = "compliance.reports"
SERVICE: Final = "showcase"
#: Items per step of a bulk sweep: events staged and holds written together, then dropped.
SWEEP_CHUNK: Final = 5_000


# --- emitting --------------------------------------------------------------------------------


def emit_keyed(
    uow: UnitOfWork, topic: str, data: EventData, *, subject: str, cause: Event[Any], key: str
) -> None:
    """``uow.emit`` with ``key``: the id derives from (cause, ``key``) instead of the emission
    order, so it is stable whatever part of a sweep an earlier attempt already did."""
    uow.emit(topic, data, subject=subject, cause=cause, key=key)


async def stage_emitted(uow: UnitOfWork) -> None:
    """Stage what was emitted so far (in order) before writing the state it describes."""
    if uow.session is None or not uow.emitted:
        return
    await outbox.stage(uow.db, uow.session, list(uow.emitted))
    uow.emitted.clear()


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


async def apply_requests(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Creators' add / remove / move requests, folded per creator in order."""
    events = [e for e in events if _owns_showcase(e, uow)]
    if not events:
        return
    db, session = uow.db, uow.session
    before = await repository.load_showcases(db, (e.subject for e in events), session)
    adds = [e.data for e in events if e.type == "showcase.add_requested"]
    products: dict[str, Product] = {}
    offers: dict[str, Offer] = {}
    accounts: dict[str, Account] = {}
    policies: list[Policy] = []
    if adds:
        products = await repository.load_products(db, (a.product_id for a in adds), session)
        offers = await repository.load_offers(db, (a.offer_id for a in adds if a.offer_id), session)
        wanted = {a.creator_id for a in adds} | {p.merchant_id for p in products.values()}
        accounts = await repository.load_accounts(db, wanted, session)
        policies = await repository.load_policies_in_force(db, session)

    after = dict(before)
    for event in events:
        d = event.data
        showcase = after[d.creator_id]
        current = showcase.find(d.product_id)
        if event.type == "showcase.add_requested":
            if current is not None:
                log.info("showcase.add_ignored", why="already_in_showcase", **_ids(d))
                continue
            product = products.get(d.product_id)
            ctx = AddContext(
                product=product,
                creator=accounts.get(d.creator_id),
                merchant=accounts.get(product.merchant_id) if product else None,
                offer=offers.get(d.offer_id) if d.offer_id else None,
                policies=policies,
            )
            reasons = domain.refusal_reasons(showcase, d.product_id, d.offer_id, ctx)
            if reasons or product is None:
                uow.emit(
                    OUTPUT,
                    ItemRefused(
                        creator_id=d.creator_id,
                        product_id=d.product_id,
                        offer_id=d.offer_id,
                        reasons=reasons,
                    ),
                    subject=d.creator_id,
                    cause=event,
                )
                continue
            item = Item(
                creator_id=d.creator_id,
                product_id=d.product_id,
                merchant_id=product.merchant_id,
                source=product.source,
                position=len(showcase),
                offer_id=d.offer_id,
            )
            after[d.creator_id] = showcase.append(item)
            uow.emit(
                OUTPUT,
                ItemAdded(
                    creator_id=d.creator_id,
                    product_id=d.product_id,
                    offer_id=d.offer_id,
                    position=item.position,
                ),
                subject=d.creator_id,
                cause=event,
            )
        elif event.type == "showcase.remove_requested":
            if current is None:
                log.info("showcase.remove_ignored", why="not_in_showcase", **_ids(d))
                continue
            after[d.creator_id] = showcase.remove(d.product_id)
            uow.emit(
                OUTPUT,
                ItemRemoved(creator_id=d.creator_id, product_id=d.product_id, reason="requested"),
                subject=d.creator_id,
                cause=event,
            )
        elif event.type == "showcase.move_requested":
            if current is None:
                log.info("showcase.move_ignored", why="not_in_showcase", **_ids(d))
                continue
            moved, at = showcase.move(d.product_id, d.position)
            if at == current.position:
                continue  # already there: nothing changes, nothing to say
            after[d.creator_id] = moved
            uow.emit(
                OUTPUT,
                ItemMoved(creator_id=d.creator_id, product_id=d.product_id, position=at),
                subject=d.creator_id,
                cause=event,
            )
    await stage_emitted(uow)
    await repository.save_showcases(db, before, after, session)


def _ids(d: Any) -> dict[str, str]:
    return {"creator_id": d.creator_id, "product_id": d.product_id}


# --- catalog.products ------------------------------------------------------------------------

_CATALOG_TYPES = ("product.listed", "product.delisted")


async def apply_catalog(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Project listed products; delisting suspends their items everywhere, relisting restores
    them unless another hold remains."""
    relevant = [e for e in events if e.type in _CATALOG_TYPES]
    if not relevant:
        return
    db, session = uow.db, uow.session
    pids = {e.data.product_id for e in relevant}
    products = await repository.load_products(db, pids, session)
    by_product: dict[str, list[Item]] = defaultdict(list)
    for item in await repository.items_of_products(db, pids, session):
        by_product[item.product_id].append(item)
    before = {i.key: i.holds for items in by_product.values() for i in items}
    holds = dict(before)
    changed: set[str] = set()

    for event in relevant:
        d = event.data
        pid = d.product_id
        items = sorted(by_product.get(pid, []), key=lambda i: i.key)
        if event.type == "product.listed":
            products[pid] = Product(pid, d.merchant_id, d.source, True, d.version)
            changed.add(pid)
            for item in items:
                now = holds[item.key]
                if HOLD_DELISTED in now:
                    holds[item.key] = now - {HOLD_DELISTED}
                    if not holds[item.key]:
                        emit_keyed(
                            uow,
                            OUTPUT,
                            ItemRestored(
                                creator_id=item.creator_id,
                                product_id=pid,
                                reason=HOLD_DELISTED,
                            ),
                            subject=item.creator_id,
                            cause=event,
                            key=f"restored:{item.key}",
                        )
        else:
            known = products.get(pid)
            if known is not None:
                products[pid] = replace(known, listed=False)
                changed.add(pid)
            for item in items:
                now = holds[item.key]
                if HOLD_DELISTED not in now:
                    holds[item.key] = now | {HOLD_DELISTED}
                    emit_keyed(
                        uow,
                        OUTPUT,
                        ItemSuspended(
                            creator_id=item.creator_id, product_id=pid, reason=HOLD_DELISTED
                        ),
                        subject=item.creator_id,
                        cause=event,
                        key=f"suspended:{item.key}",
                    )

    await stage_emitted(uow)
    await repository.save_products(db, (products[p] for p in sorted(changed)), session)
    add = sorted(k for k, h in holds.items() if HOLD_DELISTED in h - before[k])
    pull = sorted(k for k, h in holds.items() if HOLD_DELISTED in before[k] - h)
    await repository.add_hold(db, add, HOLD_DELISTED, session)
    await repository.pull_hold(db, pull, HOLD_DELISTED, session)
    for pid in sorted(changed):  # a new version may come from another source
        p = products[pid]
        stale = [
            i.key
            for i in by_product.get(pid, [])
            if i.source != p.source or i.merchant_id != p.merchant_id
        ]
        if p.listed and stale:
            await repository.set_product_fields(db, stale, p.merchant_id, p.source, session)


# --- accounts.shops --------------------------------------------------------------------------


async def apply_shops(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Which shops each account holds (creators for ``require_shop``, merchants for the
    ``service_provider_built`` exemption)."""
    accounts = await repository.load_accounts(
        uow.db, (e.data.account_id for e in events), uow.session
    )
    changed: set[str] = set()
    for event in events:
        d = event.data
        account = accounts.get(d.account_id) or Account(d.account_id)
        if event.type == "shop.registered":
            account = account.register(Shop(d.shop_id, d.shop_kind, d.service_provider_built))
        else:
            account = account.close(d.shop_id)
        accounts[d.account_id] = account
        changed.add(d.account_id)
    await repository.save_accounts(uow.db, (accounts[a] for a in sorted(changed)), uow.session)


# --- distribution.offers ---------------------------------------------------------------------


async def apply_offers(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Which offers are active, for which product, on which plan and for which creators."""
    offers = await repository.load_offers(uow.db, (e.data.offer_id for e in events), uow.session)
    changed: set[str] = set()
    for event in events:
        d = event.data
        known = offers.get(d.offer_id)
        if event.type == "offer.activated":
            offers[d.offer_id] = Offer(
                offer_id=d.offer_id,
                product_id=d.product_id,
                merchant_id=d.merchant_id,
                plan=d.plan,
                creator_ids=frozenset(d.creator_ids),
                suspended=known.suspended if known else False,
            )
        elif event.type == "offer.withdrawn":
            offers[d.offer_id] = replace(
                known or Offer(d.offer_id, d.product_id, d.merchant_id, "general"), withdrawn=True
            )
        elif event.type == "offer.suspended" and known is not None:
            offers[d.offer_id] = replace(known, suspended=True)
        elif event.type == "offer.restored" and known is not None:
            offers[d.offer_id] = replace(known, suspended=False)
        else:  # offer.refused: nothing changed on the offer
            continue
        changed.add(d.offer_id)
    await repository.save_offers(uow.db, (offers[o] for o in sorted(changed)), uow.session)


# --- compliance.rulings ----------------------------------------------------------------------


async def apply_rulings(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Record rules in force; enforce them on existing items in bulk; lift them."""
    for event in events:
        if event.type == "policy.in_force":
            await _in_force(event, uow)
        elif event.type == "policy.lifted":
            await _lifted(event, uow)


async def _in_force(event: Event[Any], uow: UnitOfWork) -> None:
    d = event.data
    existing, _ = await repository.load_policy(uow.db, d.policy_id, uow.session)
    if existing is not None and existing.lifted:
        log.warning("policy.ruling_ignored", policy_id=d.policy_id, why="already_lifted")
        return
    policy = Policy(
        policy_id=d.policy_id,
        rules=tuple(d.rules),
        exemptions=d.exemptions,
        phases=(existing.phases if existing else frozenset()) | {d.phase},
    )
    if d.phase != "enforce_existing":  # block_new: additions are judged against it from now on
        await repository.save_policy(uow.db, policy, uow.session)
        return
    await enforce(policy, event, uow)


async def matching_items(policy: Policy, uow: UnitOfWork) -> list[Item]:
    """The items ``policy`` suspends (exemptions applied), in ``_id`` order.

    Candidates come from indexed finds (source kind/platform; creators lacking a required
    shop); the domain decides.
    """
    db, session = uow.db, uow.session
    candidates: dict[str, Item] = {}
    sources = [
        Source(kind=m.kind, platform=m.platform) for r in policy.source_rules() for m in r.sources
    ]
    for item in await repository.items_matching_sources(db, sources, session):
        candidates[item.key] = item
    creators: dict[str, Account] = {}
    if policy.shop_rules():
        with_items = await repository.creators_with_items(db, session)
        creators = await repository.load_accounts(db, with_items, session)
        lacking = [c for c in with_items if policy.missing_shop(creators.get(c), "")]
        for item in await repository.items_of_creators(db, lacking, session):
            candidates[item.key] = item
    merchants: dict[str, Account] = {}
    if policy.exemptions.service_provider_built and candidates:
        merchants = await repository.load_accounts(
            db, {i.merchant_id for i in candidates.values()}, session
        )
    return [
        item
        for _, item in sorted(candidates.items())
        if domain.violates(
            policy,
            source=item.source,
            merchant_id=item.merchant_id,
            creator=creators.get(item.creator_id),
            merchant=merchants.get(item.merchant_id),
        )
    ]


async def enforce(policy: Policy, cause: Event[Any], uow: UnitOfWork) -> int:
    """``enforce_existing``: hold every matching item, announce the newly held ones, report.

    Events are built, staged and the hold written one ``SWEEP_CHUNK`` of items at a time, so
    memory stays bounded by the chunk, not by the number of items (P4 in PERFORMANCE.md).
    """
    started = time.perf_counter()
    log.info("enforcement.started", policy_id=policy.policy_id)
    matched = await matching_items(policy, uow)
    found = time.perf_counter()
    hold = policy.hold
    newly = [i for i in matched if hold not in i.holds]
    await repository.save_policy(uow.db, policy, uow.session, enforced_count=len(matched))
    modified = 0
    for part in repository.chunks(newly, SWEEP_CHUNK):
        for item in part:
            emit_keyed(
                uow,
                OUTPUT,
                ItemSuspended(
                    creator_id=item.creator_id,
                    product_id=item.product_id,
                    reason="policy",
                    policy_id=policy.policy_id,
                ),
                subject=item.creator_id,
                cause=cause,
                key=f"suspended:{item.key}",
            )
        await stage_emitted(uow)
        log.info("enforcement.staged", policy_id=policy.policy_id, events=len(part))
        modified += await repository.add_hold(uow.db, [i.key for i in part], hold, uow.session)
    _report(uow, policy.policy_id, "enforce_existing", len(matched), cause)
    await stage_emitted(uow)
    log.info(
        "enforcement.applied",
        policy_id=policy.policy_id,
        matched=len(matched),
        newly_suspended=len(newly),
        modified=modified,
        seconds=round(time.perf_counter() - started, 3),
        find_seconds=round(found - started, 3),
        stage_and_update_seconds=round(time.perf_counter() - found, 3),
    )
    return len(matched)


async def _lifted(event: Event[Any], uow: UnitOfWork) -> None:
    """Release this policy's hold everywhere; items with no hold left come back."""
    d = event.data
    db, session = uow.db, uow.session
    started = time.perf_counter()
    existing, doc = await repository.load_policy(db, d.policy_id, session)
    policy = replace(existing or Policy(d.policy_id), lifted=True)
    hold = policy.hold
    held = await repository.items_held_by(db, hold, session)
    # A re-run of this same event after a crash reports what the first run counted.
    count = doc["lift_count"] if doc.get("lifted_by") == event.id else len(held)
    await repository.save_policy(db, policy, session, lifted_by=event.id, lift_count=count)
    for part in repository.chunks(held, SWEEP_CHUNK):  # bounded memory, as in ``enforce``
        for item in part:
            if item.holds == {hold}:
                emit_keyed(
                    uow,
                    OUTPUT,
                    ItemRestored(
                        creator_id=item.creator_id,
                        product_id=item.product_id,
                        reason="policy",
                        policy_id=d.policy_id,
                    ),
                    subject=item.creator_id,
                    cause=event,
                    key=f"restored:{item.key}",
                )
        await stage_emitted(uow)
        await repository.pull_hold(db, [i.key for i in part], hold, session)
    _report(uow, d.policy_id, "lifted", count, event)
    await stage_emitted(uow)
    log.info(
        "policy.lifted_applied",
        policy_id=d.policy_id,
        released=len(held),
        seconds=round(time.perf_counter() - started, 3),
    )


def _report(
    uow: UnitOfWork, policy_id: str, phase: ReportPhase, affected: int, cause: Event[Any]
) -> None:
    emit_keyed(
        uow,
        REPORTS,
        EnforcementReported(policy_id=policy_id, service=SERVICE, phase=phase, affected=affected),
        subject=policy_id,
        cause=cause,
        key=f"report:{phase}",
    )
