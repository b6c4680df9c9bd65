"""Review's case per product: the version it last saw, an escalation waiting for a person,
and the audit trail of every decision. Pure: no I/O; the caller passes the time.

``review_requested``, ``manual_decided`` and ``audit_cancelled`` take the current
:class:`Case` (or ``None``) and return a :class:`~vitrine.runtime.decision.Decision` about a
:class:`Reviewed` (the new case and the audit entries to keep): the verdicts to publish, or
why the input was ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from vitrine.contract.events import (
    CatalogAuditCancelled,
    EventData,
    ProductReviewRequested,
    Reason,
    ReviewApproved,
    ReviewEscalated,
    ReviewManualDecided,
    ReviewRejected,
)
from vitrine.runtime.decision import Decision, Emit
from vitrine_review import rules
from vitrine_review.config import ReviewConfig

#: Products remembered per title key in the duplicate index (enough to say "not alone").
MAX_PRODUCTS_PER_TITLE = 50

RULES = "rules"


@dataclass(frozen=True)
class Escalation:
    """A version waiting for a manual verdict."""

    version: int
    reasons: tuple[Reason, ...]
    escalated_at: datetime
    title: str | None = None
    title_key: str | None = None


@dataclass(frozen=True)
class Case:
    """What review keeps per product (one document, ``_id`` = product id)."""

    product_id: str
    merchant_id: str
    last_version: int = 0
    pending: Escalation | None = None
    #: Audit entries written so far; the next one is number ``entries + 1``.
    entries: int = 0
    #: The key under which this product sits in the duplicate index (its last approved title).
    title_key: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One decision (or withdrawal from the queue) with its reasons, kept forever."""

    product_id: str
    merchant_id: str
    version: int
    number: int
    outcome: str  # approved | rejected | escalated | cancelled | superseded
    reasons: tuple[Reason, ...]
    decided_by: str  # "rules", "reviewer:<id>", "merchant", "catalog"
    at: datetime
    cause_id: str | None = None

    @property
    def id(self) -> str:
        return f"{self.product_id}:{self.version}:{self.number}"


@dataclass(frozen=True)
class Reviewed:
    """A case after one input (unchanged when ignored) and the audit entries it wrote."""

    case: Case | None
    audit: tuple[AuditEntry, ...] = ()


#: What every function here returns.
CaseDecision = Decision[Reviewed]


def _decided(case: Case, event: EventData | None, audit: Sequence[AuditEntry]) -> CaseDecision:
    emits = [Emit(event, case.product_id)] if event is not None else []
    return Decision(Reviewed(case, tuple(audit)), emits)


def _entry(
    case: Case,
    version: int,
    outcome: str,
    reasons: Sequence[Reason],
    decided_by: str,
    now: datetime,
    cause_id: str | None,
) -> tuple[Case, AuditEntry]:
    number = case.entries + 1
    entry = AuditEntry(
        case.product_id,
        case.merchant_id,
        version,
        number,
        outcome,
        tuple(reasons),
        decided_by,
        now,
        cause_id,
    )
    return replace(case, entries=number), entry


def duplicates(titles: Mapping[str, Sequence[str]], key: str | None, product_id: str) -> list[str]:
    """The merchant's other products already under ``key`` in the duplicate index."""
    if key is None:
        return []
    return [pid for pid in titles.get(key, ()) if pid != product_id]


def review_requested(
    case: Case | None,
    req: ProductReviewRequested,
    config: ReviewConfig,
    titles: Mapping[str, Sequence[str]],
    now: datetime,
    cause_id: str | None = None,
) -> CaseDecision:
    """Run the automated rules on a new draft version.

    A version not newer than one already seen is stale. A newer draft supersedes a pending
    escalation (catalog replaced the draft, so a verdict on the old one means nothing).
    """
    if case is not None and req.version <= case.last_version:
        return Decision.ignore(Reviewed(case), "stale_request")
    current = case or Case(req.product_id, req.merchant_id)
    current = replace(current, merchant_id=req.merchant_id, last_version=req.version)
    audit: list[AuditEntry] = []
    if current.pending is not None:
        old = current.pending
        current, entry = _entry(
            replace(current, pending=None),
            old.version,
            "superseded",
            [
                Reason(
                    code="superseded",
                    message=f"version {req.version} was submitted before a verdict",
                )
            ],
            "catalog",
            now,
            cause_id,
        )
        audit.append(entry)

    key = rules.title_key(req.merchant_id, req.title)
    verdict = rules.evaluate(req, config, duplicate_of=duplicates(titles, key, req.product_id))
    current, entry = _entry(
        current, req.version, verdict.outcome, verdict.reasons, RULES, now, cause_id
    )
    audit.append(entry)
    reasons = list(verdict.reasons)
    event: EventData
    if verdict.outcome == "rejected":
        event = ReviewRejected(product_id=req.product_id, version=req.version, reasons=reasons)
    elif verdict.outcome == "escalated":
        pending = Escalation(req.version, verdict.reasons, now, req.title, key)
        current = replace(current, pending=pending)
        event = ReviewEscalated(product_id=req.product_id, version=req.version, reasons=reasons)
    else:
        current = replace(current, title_key=key)
        event = ReviewApproved(product_id=req.product_id, version=req.version, reasons=reasons)
    return _decided(current, event, audit)


#: Why a reviewer's verdict is held rather than decided: it names a version review has not
#: seen requested yet (a replay, or a lagging consumer, read ``review.manual`` first).
AWAITS_ESCALATION = "awaits_escalation"


def await_escalation(case: Case | None, version: int) -> CaseDecision | None:
    """Hold a reviewer's verdict on a version not requested yet (``None``: decide it now; a
    verdict on a version seen and not escalated is ignored at once)."""
    if case is None or version > case.last_version:
        return Decision.ignore(Reviewed(case), AWAITS_ESCALATION)
    return None


def manual_decided(
    case: Case | None,
    decision: ReviewManualDecided,
    now: datetime,
    cause_id: str | None = None,
) -> CaseDecision:
    """A reviewer's verdict, applied only to the version currently escalated."""
    if case is None or case.pending is None:
        return Decision.ignore(Reviewed(case), "not_escalated")
    if case.pending.version != decision.version:
        return Decision.ignore(Reviewed(case), "other_version")
    pending = case.pending
    by = f"reviewer:{decision.reviewer_id}"
    pid, version = case.product_id, decision.version
    event: EventData
    if decision.verdict == "approve":
        reasons = list(decision.reasons)
        new, entry = _entry(case, version, "approved", reasons, by, now, cause_id)
        new = replace(new, pending=None, title_key=pending.title_key)
        event = ReviewApproved(product_id=pid, version=version, reasons=reasons)
    else:
        reasons = list(decision.reasons) or [
            Reason(code="manual_reject", message=f"rejected by reviewer {decision.reviewer_id}")
        ]
        new, entry = _entry(case, version, "rejected", reasons, by, now, cause_id)
        new = replace(new, pending=None)
        event = ReviewRejected(product_id=pid, version=version, reasons=reasons)
    return _decided(new, event, [entry])


def audit_cancelled(
    case: Case | None,
    cancelled: CatalogAuditCancelled,
    now: datetime,
    cause_id: str | None = None,
) -> CaseDecision:
    """Catalog dropped the draft (merchant cancelled or withdrew): leave the queue."""
    if case is None or case.pending is None:
        return Decision.ignore(Reviewed(case), "nothing_pending")
    if cancelled.version is not None and cancelled.version != case.pending.version:
        return Decision.ignore(Reviewed(case), "other_version")
    version = case.pending.version
    new, entry = _entry(
        replace(case, pending=None),
        version,
        "cancelled",
        [Reason(code="audit_cancelled", message="the merchant cancelled the review")],
        "merchant",
        now,
        cause_id,
    )
    return _decided(new, None, [entry])


def move_title(
    titles: dict[str, list[str]], product_id: str, old: str | None, new: str | None
) -> set[str]:
    """Move ``product_id`` from ``old`` to ``new`` in the duplicate index; the keys changed."""
    if old == new:
        return set()
    changed: set[str] = set()
    if old is not None and product_id in titles.get(old, []):
        titles[old] = [p for p in titles[old] if p != product_id]
        changed.add(old)
    if new is not None:
        members = [p for p in titles.get(new, []) if p != product_id] + [product_id]
        titles[new] = members[-MAX_PRODUCTS_PER_TITLE:]
        changed.add(new)
    return changed
