"""Catalog's input handlers: load the batch's products, fold the events in order, save, emit.

One bulk read and one bulk write per batch, whatever its size (DESIGN.md §6 bulk paths).
Each product document records the events it applied (``inbox.with_applied``), so a
redelivered event is recognised there and the pipeline writes no inbox entry for catalog's
inputs. An event that changes no product (refused, ignored) is not recorded: applying it
again changes nothing and re-emits a refusal with the same id, which consumers dedupe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vitrine.contract.envelope import Event
from vitrine.contract.events import ProductRefused
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging import inbox
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_catalog import domain, repository
from vitrine_catalog.domain import Outcome, Product

log = get_logger(__name__)
OUTPUT = "catalog.products"

_DECIDERS: dict[str, Callable[[Product | None, Any], Outcome]] = {
    "product.submitted": domain.submit,
    "product.withdrawn": domain.withdraw,
    "product.audit_cancelled": domain.cancel_audit,
    "review.approved": domain.approve,
    "review.rejected": domain.reject,
}


async def apply_events(events: list[Event[Any]], uow: UnitOfWork) -> None:
    """Apply merchants' commands and review's decisions to the products they name."""
    loaded, applied = await repository.load(
        uow.db, (e.data.product_id for e in events), uow.session
    )
    products: dict[str, Product | None] = dict(loaded)
    done = {pid: inbox.applied_keys(keys) for pid, keys in applied.items()}
    changed: set[str] = set()
    for event in events:
        decide = _DECIDERS.get(event.type)
        if decide is None:  # e.g. review.escalated: the draft simply stays pending
            continue
        pid = event.data.product_id
        key = event.envelope.dedupe_key
        if key in done.get(pid, ()):
            uow.duplicates.append(event)
            continue
        outcome = decide(products.get(pid), event.data)
        if outcome.refused is not None:
            log.warning(
                "product.command_refused",
                product_id=pid,
                type=event.type,
                code=outcome.refused.code,
                merchant_id=event.data.merchant_id,
            )
            uow.emit(
                OUTPUT,
                ProductRefused(
                    product_id=pid,
                    merchant_id=event.data.merchant_id,
                    command=event.type,
                    reasons=[outcome.refused],
                ),
                subject=pid,
                cause=event,
            )
            continue
        if outcome.ignored is not None:
            log.info("product.event_ignored", product_id=pid, type=event.type, why=outcome.ignored)
            continue
        products[pid] = outcome.product
        applied[pid] = inbox.with_applied(applied.get(pid), key, uow.now())
        done.setdefault(pid, set()).add(key)
        changed.add(pid)
        for data in outcome.events:
            uow.emit(OUTPUT, data, subject=pid, cause=event)
    await repository.save(
        uow.db, (p for pid in changed if (p := products[pid])), applied, uow.session
    )
