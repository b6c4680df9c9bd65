"""Review's input handlers: load the batch's cases, fold the events in order, save, emit.

One bulk read and one bulk write per collection per batch, whatever its size (DESIGN.md §6).
Each case records the events it applied (``inbox.with_applied``), so a redelivered event is
recognised there and the pipeline writes no inbox entry for review's inputs; an event that
changes no case is not recorded (applying it again changes nothing).
The rules' configuration and the store are injected: :func:`make_handlers` closes over a
``ReviewConfig`` and a :class:`~vitrine_review.repository.Cases` factory.

A reviewer's verdict on a version not requested yet (a replay, or a lagging consumer, read
``review.manual`` first) is held, and decided right after that version's request is applied —
caused by its own envelope, so with the ids an in-order run mints — or given up as
``not_escalated`` once catalog's event time passes its ``time`` + ``manual_wait``
(``vitrine.runtime.held``; docs/DECISIONS.md "Event time").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Final

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    CatalogAuditCancelled,
    ProductReviewRequested,
    ReviewManualDecided,
)
from vitrine.runtime.decision import Decision
from vitrine.runtime.held import Waiting
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging import inbox
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_review import domain, rules
from vitrine_review.config import ReviewConfig
from vitrine_review.domain import AuditEntry, Case, CaseDecision, Reviewed
from vitrine_review.repository import Cases

log = get_logger(__name__)
MANUAL_IN: Final = "review.manual"

#: What review acts on: drafts to review, cancelled reviews, reviewers' verdicts.
Input = ProductReviewRequested | CatalogAuditCancelled | ReviewManualDecided

#: The catalog events review acts on (the service definition skips the others before the
#: transaction, so they cost no inbox entry).
CATALOG_TYPES = frozenset(m.event_type for m in (ProductReviewRequested, CatalogAuditCancelled))


def make_handlers(
    config: ReviewConfig, cases: Callable[[UnitOfWork], Cases]
) -> dict[str, BatchHandler]:
    """The handlers per input topic, with the rules configured by ``config``."""

    async def on_catalog(events: list[Event[Input]], uow: UnitOfWork) -> None:
        """Drafts to review (``product.review_requested``) and cancelled reviews."""
        wanted = [
            e for e in events if isinstance(e.data, ProductReviewRequested | CatalogAuditCancelled)
        ]
        await apply_events(wanted, uow, cases(uow), config)

    async def on_manual(events: list[Event[Input]], uow: UnitOfWork) -> None:
        """Reviewers' verdicts on escalated versions."""
        await apply_events(events, uow, cases(uow), config)

    return {"catalog.products": on_catalog, "review.manual": on_manual}


def decide(
    case: Case | None,
    event: Event[Input],
    config: ReviewConfig,
    titles: dict[str, list[str]],
    now: datetime,
) -> CaseDecision:
    """The domain function for this input."""
    match event.data:
        case ProductReviewRequested() as req:
            return domain.review_requested(case, req, config, titles, now, event.id)
        case ReviewManualDecided() as verdict:
            return domain.await_escalation(case, verdict.version) or domain.manual_decided(
                case, verdict, now, event.id
            )
        case CatalogAuditCancelled() as cancelled:
            return domain.audit_cancelled(case, cancelled, now, event.id)


async def apply_events(
    events: list[Event[Input]], uow: UnitOfWork, store: Cases, config: ReviewConfig
) -> None:
    """Fold the events through the domain per case; one bulk save."""
    if not events:
        return
    now = uow.now()
    loaded, applied = await store.load_cases(e.data.product_id for e in events)
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
        if isinstance(e.data, ProductReviewRequested)
        and (k := rules.title_key(e.data.merchant_id, e.data.title)) is not None
    }
    titles = await store.load_titles(title_keys)

    changed: set[str] = set()
    changed_titles: set[str] = set()
    audit: list[AuditEntry] = []
    waiting = await Waiting.open(
        store.held,
        config.manual_wait,
        (e.time for e in events if not isinstance(e.data, ReviewManualDecided)),
        (e.data.product_id for e in events if isinstance(e.data, ProductReviewRequested)),
    )
    queue = deque(events)
    while queue:
        event = queue.popleft()
        pid = event.data.product_id
        key = event.envelope.dedupe_key
        if key in done.get(pid, ()):
            uow.duplicates.append(event)
            continue
        before = cases.get(pid)
        decision = decide(before, event, config, titles, now)
        if decision.ignored == domain.AWAITS_ESCALATION:
            if await waiting.hold(event, MANUAL_IN, pid):
                log.info("review.verdict_held", product_id=pid, version=event.data.version)
                continue
            decision = Decision.ignore(Reviewed(before), "not_escalated")  # wait over
        after = decision.state.case
        if not decision.changed or after is None:
            log.info(
                "review.event_ignored",
                product_id=pid,
                type=event.type,
                version=event.data.version,
                why=decision.ignored,
            )
            continue
        cases[pid] = after
        applied[pid] = inbox.with_applied(applied.get(pid), key, now)
        done.setdefault(pid, set()).add(key)
        changed.add(pid)
        audit += decision.state.audit
        changed_titles |= domain.move_title(
            titles, pid, before.title_key if before else None, after.title_key
        )
        for data in decision.events:
            log.info(
                "review.decided",
                product_id=pid,
                type=data.event_type,
                version=getattr(data, "version", None),
                codes=[r.code for r in getattr(data, "reasons", [])],
            )
        decision.emit(uow, cause=event)
        if isinstance(event.data, ProductReviewRequested):
            # the verdicts held for this version (or an older one: stale now) are next
            queue.extendleft(reversed(waiting.release(pid, after.last_version)))
    for event in waiting.expired():  # their escalation never came within the wait
        log.info(
            "review.event_ignored",
            product_id=event.data.product_id,
            type=event.type,
            version=event.data.version,
            why="not_escalated",
        )
    await store.save(
        (c for pid in changed if (c := cases[pid]) is not None),
        audit,
        {k: titles.get(k, []) for k in changed_titles},
        applied=applied,
        queued=queued,
    )
    await waiting.close()
