"""Catalog's input handlers: load the batch's products, fold the events in order, save, emit.

One bulk read and one bulk write per batch, whatever its size (DESIGN.md §6 bulk paths).
Each product document records the events it applied (``inbox.with_applied``), so a
redelivered event is recognised there and the pipeline writes no inbox entry for catalog's
inputs. An event that changes no product (refused, ignored) is not recorded: applying it
again changes nothing and re-emits a refusal with the same id, which consumers dedupe.

A review verdict on a version not submitted yet (a replay, or a lagging consumer, read
``review.decisions`` first) is held, and decided right after its submission is applied —
caused by its own envelope, so with the ids an in-order run mints — or given up as
``stale_decision`` once the submissions topic's event time passes its ``time`` + the wait
(``vitrine.runtime.held``; docs/DECISIONS.md "Event time").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Final

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    ProductAuditCancelled,
    ProductPlatformDelisted,
    ProductPlatformReinstated,
    ProductStockUpdated,
    ProductSubmitted,
    ProductWithdrawn,
    ReviewApproved,
    ReviewEscalated,
    ReviewRejected,
)
from vitrine.runtime.decision import Decision
from vitrine.runtime.held import Waiting
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging import inbox
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_catalog import domain
from vitrine_catalog.domain import Command, Product, ProductDecision
from vitrine_catalog.repository import Products

log = get_logger(__name__)
#: How long a verdict waits for its submission by default (event time of the submissions).
DEFAULT_VERDICT_WAIT: Final = timedelta(hours=24)
VERDICTS_IN: Final = "review.decisions"

#: Everything catalog consumes: merchants' commands, review's decisions, platform actions.
Input = (
    ProductSubmitted
    | ProductStockUpdated
    | ProductWithdrawn
    | ProductAuditCancelled
    | ReviewApproved
    | ReviewRejected
    | ReviewEscalated
    | ProductPlatformDelisted
    | ProductPlatformReinstated
)


def decide(product: Product | None, data: Input) -> ProductDecision | None:
    """The domain function for this input (``None``: not catalog's business)."""
    match data:
        case ProductSubmitted():
            return domain.submit(product, data)
        case ProductStockUpdated():
            return domain.update_stock(product, data)
        case ProductWithdrawn():
            return domain.withdraw(product, data)
        case ProductAuditCancelled():
            return domain.cancel_audit(product, data)
        case ReviewApproved():
            return domain.await_submission(product, data.version) or domain.approve(product, data)
        case ReviewRejected():
            return domain.await_submission(product, data.version) or domain.reject(product, data)
        case ReviewEscalated():  # the draft simply stays pending
            return None
        case ProductPlatformDelisted():
            return domain.platform_delist(product, data)
        case ProductPlatformReinstated():
            return domain.platform_reinstate(product, data)


async def apply_events(
    events: list[Event[Input]],
    uow: UnitOfWork,
    products: Products,
    verdict_wait: timedelta = DEFAULT_VERDICT_WAIT,
) -> None:
    """Apply merchants' commands, review's decisions and platform actions to the products
    they name (and the verdicts held for the submissions among them)."""
    loaded, applied = await products.load(e.data.product_id for e in events)
    state: dict[str, Product | None] = dict(loaded)
    done = {pid: inbox.applied_keys(keys) for pid, keys in applied.items()}
    changed: set[str] = set()
    waiting = await Waiting.open(
        products.held,
        verdict_wait,
        (e.time for e in events if isinstance(e.data, Command)),
        (e.data.product_id for e in events if isinstance(e.data, ProductSubmitted)),
    )
    queue = deque(events)
    while queue:
        event = queue.popleft()
        pid = event.data.product_id
        key = event.envelope.dedupe_key
        if key in done.get(pid, ()):
            uow.duplicates.append(event)
            continue
        decision = decide(state.get(pid), event.data)
        if decision is None:
            continue
        decision.emit(uow, cause=event)
        if decision.refused:
            log.warning(
                "product.command_refused",
                product_id=pid,
                type=event.type,
                code=decision.refused[0].code,
                merchant_id=event.data.merchant_id if isinstance(event.data, Command) else None,
            )
            continue
        if decision.ignored == domain.AWAITS_SUBMISSION:
            if await waiting.hold(event, VERDICTS_IN, pid):
                log.info("review.verdict_held", product_id=pid, type=event.type, id=event.id)
                continue
            decision = Decision.ignore(decision.state, "stale_decision")  # wait over
        if decision.ignored is not None:
            log.info("product.event_ignored", product_id=pid, type=event.type, why=decision.ignored)
            continue
        state[pid] = decision.state
        applied[pid] = inbox.with_applied(applied.get(pid), key, uow.now())
        done.setdefault(pid, set()).add(key)
        changed.add(pid)
        if isinstance(event.data, ProductSubmitted) and (product := decision.state) is not None:
            # the verdicts held for this version (or an older one: stale now) are next
            queue.extendleft(reversed(waiting.release(pid, product.last_version)))
    for event in waiting.expired():  # their submission never came within the wait
        log.info(
            "product.event_ignored",
            product_id=event.data.product_id,
            type=event.type,
            why="stale_decision",
        )
    await products.save((p for pid in changed if (p := state[pid])), applied)
    await waiting.close()


def make_handlers(
    products: Callable[[UnitOfWork], Products], *, verdict_wait: timedelta = DEFAULT_VERDICT_WAIT
) -> dict[str, BatchHandler]:
    """The handlers per input topic, reaching products through ``products(uow)``;
    ``verdict_wait`` bounds (in event time) how long a verdict waits for its submission."""

    async def on_events(events: list[Event[Input]], uow: UnitOfWork) -> None:
        await apply_events(events, uow, products(uow), verdict_wait)

    return {
        "merchants.products": on_events,
        "review.decisions": on_events,
        "platform.actions": on_events,
    }
