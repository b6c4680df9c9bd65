"""Review's input handlers: load the batch's cases, fold the events in order, save, emit.

One bulk read and one bulk write per collection per batch, whatever its size (DESIGN.md §6).
Each case records the events it applied (``inbox.with_applied``), so a redelivered event is
recognised there and the pipeline writes no inbox entry for review's inputs; an event that
changes no case is not recorded (applying it again changes nothing).
The rules' configuration is injected: :func:`make_handlers` closes over a ``ReviewConfig``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vitrine.contract.envelope import Event
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging import inbox
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_review import domain, repository, rules
from vitrine_review.config import ReviewConfig
from vitrine_review.domain import AuditEntry, Case, Outcome

log = get_logger(__name__)
OUTPUT = "review.decisions"

#: The catalog.products types review acts on; the rest (listed, rejected, …) are not its job.
#: The catalog events review acts on (the service definition skips the others before the
#: transaction, so they cost no inbox entry).
CATALOG_TYPES = frozenset({"product.review_requested", "product.audit_cancelled"})


def make_handlers(config: ReviewConfig) -> dict[str, BatchHandler]:
    """The handlers per input topic, with the rules configured by ``config``."""

    async def on_catalog(events: list[Event[Any]], uow: UnitOfWork) -> None:
        """Drafts to review (``product.review_requested``) and cancelled reviews."""
        wanted = [e for e in events if e.type in CATALOG_TYPES]
        await _apply(wanted, uow, config)

    async def on_manual(events: list[Event[Any]], uow: UnitOfWork) -> None:
        """Reviewers' verdicts on escalated versions."""
        await _apply(events, uow, config)

    return {"catalog.products": on_catalog, "review.manual": on_manual}


async def _apply(events: list[Event[Any]], uow: UnitOfWork, config: ReviewConfig) -> None:
    if not events:
        return
    now = uow.now()
    loaded, applied = await repository.load_cases(
        uow.db, (e.data.product_id for e in events), uow.session
    )
    cases: dict[str, Case | None] = dict(loaded)
    queued = {pid for pid, c in loaded.items() if c.pending is not None}
    done = {pid: inbox.applied_keys(keys) for pid, keys in applied.items()}
    # Every key this batch may touch: current titles, escalated titles, requested titles.
    title_keys = {
        key
        for c in cases.values()
        if c is not None
        for key in (c.title_key, c.pending.title_key if c.pending else None)
        if key is not None
    }
    title_keys |= {
        k
        for e in events
        if e.type == "product.review_requested"
        and (k := rules.title_key(e.data.merchant_id, e.data.title)) is not None
    }
    titles = await repository.load_titles(uow.db, title_keys, uow.session)

    deciders: dict[str, Callable[[Case | None, Event[Any]], Outcome]] = {
        "product.review_requested": lambda c, e: domain.review_requested(
            c, e.data, config, titles, now, e.id
        ),
        "review.manual_decided": lambda c, e: domain.manual_decided(c, e.data, now, e.id),
        "product.audit_cancelled": lambda c, e: domain.audit_cancelled(c, e.data, now, e.id),
    }
    changed: set[str] = set()
    changed_titles: set[str] = set()
    audit: list[AuditEntry] = []
    for event in events:
        pid = event.data.product_id
        key = event.envelope.dedupe_key
        if key in done.get(pid, ()):
            uow.duplicates.append(event)
            continue
        before = cases.get(pid)
        outcome = deciders[event.type](before, event)
        if outcome.ignored is not None or outcome.case is None:
            log.info(
                "review.event_ignored",
                product_id=pid,
                type=event.type,
                version=getattr(event.data, "version", None),
                why=outcome.ignored,
            )
            continue
        after = outcome.case
        cases[pid] = after
        applied[pid] = inbox.with_applied(applied.get(pid), key, now)
        done.setdefault(pid, set()).add(key)
        changed.add(pid)
        audit += outcome.audit
        changed_titles |= domain.move_title(
            titles, pid, before.title_key if before else None, after.title_key
        )
        for data in outcome.events:
            log.info(
                "review.decided",
                product_id=pid,
                type=data.event_type,
                version=getattr(data, "version", None),
                codes=[r.code for r in getattr(data, "reasons", [])],
            )
            uow.emit(OUTPUT, data, subject=pid, cause=event)
    await repository.save(
        uow.db,
        (c for pid in changed if (c := cases[pid]) is not None),
        audit,
        {k: titles.get(k, []) for k in changed_titles},
        uow.session,
        applied=applied,
        queued=queued,
    )
