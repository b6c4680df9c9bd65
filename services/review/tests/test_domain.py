"""Review's case state machine: automated verdicts, the manual queue, the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vitrine.contract.events import (
    CatalogAuditCancelled,
    ProductReviewRequested,
    ReviewApproved,
    ReviewEscalated,
    ReviewManualDecided,
    ReviewRejected,
)
from vitrine.tools.testing.handlers import review_requested
from vitrine_review import domain, rules
from vitrine_review.config import ReviewConfig
from vitrine_review.domain import Case

CONFIG = ReviewConfig()
NOW = datetime(2022, 7, 21, 10, 0, tzinfo=UTC)


def request(version: int = 1, pid: str = "p-1", **over: Any) -> ProductReviewRequested:
    return review_requested(pid, version, **over)


def manual(version: int, verdict: str = "approve", **over: Any) -> ReviewManualDecided:
    data: dict[str, Any] = {
        "product_id": "p-1",
        "version": version,
        "reviewer_id": "r-9",
        "verdict": verdict,
    }
    data.update(over)
    return ReviewManualDecided.model_validate(data)


def escalated_case() -> Case:
    first = domain.review_requested(None, request(1), CONFIG, {}, NOW)
    jump = request(2, price_fen=5000, live_version=1, live_price_fen=1000)
    out = domain.review_requested(first.state.case, jump, CONFIG, {}, NOW, "ev-2")
    assert out.state.case is not None and out.state.case.pending is not None
    return out.state.case


def test_clean_draft_approved_and_audited() -> None:
    out = domain.review_requested(None, request(), CONFIG, {}, NOW, "ev-1")
    assert out.events == [ReviewApproved(product_id="p-1", version=1)]
    assert out.state.case is not None
    assert out.state.case.last_version == 1 and out.state.case.pending is None
    assert out.state.case.title_key == rules.title_key("m-1", "Tea cup")
    [entry] = out.state.audit
    assert (entry.id, entry.outcome, entry.decided_by, entry.cause_id) == (
        "p-1:1:1",
        "approved",
        "rules",
        "ev-1",
    )


def test_bad_draft_rejected_with_every_code() -> None:
    out = domain.review_requested(None, request(title="最佳" * 40, price_fen=-1), CONFIG, {}, NOW)
    [event] = out.events
    assert isinstance(event, ReviewRejected)
    assert [r.code for r in event.reasons] == ["title_too_long", "invalid_price", "banned_term"]
    assert out.state.case is not None and out.state.case.title_key is None
    assert out.state.audit[0].outcome == "rejected"


def test_price_jump_escalates_and_waits() -> None:
    case = escalated_case()
    assert case.pending is not None
    assert case.pending.version == 2
    assert [r.code for r in case.pending.reasons] == ["price_jump"]
    assert case.pending.escalated_at == NOW
    assert case.entries == 2


def test_escalation_event_carries_version_and_reasons() -> None:
    first = domain.review_requested(None, request(1), CONFIG, {}, NOW)
    jump = request(2, price_fen=5000, live_version=1, live_price_fen=1000)
    out = domain.review_requested(first.state.case, jump, CONFIG, {}, NOW)
    [event] = out.events
    assert isinstance(event, ReviewEscalated)
    assert event.version == 2 and [r.code for r in event.reasons] == ["price_jump"]


def test_duplicate_title_of_another_product_escalates() -> None:
    key = rules.title_key("m-1", "tea  CUP")
    assert key is not None
    titles = {key: ["p-0"]}
    out = domain.review_requested(None, request(), CONFIG, titles, NOW)
    assert isinstance(out.events[0], ReviewEscalated)
    assert [r.code for r in out.events[0].reasons] == ["possible_duplicate"]


def test_own_title_is_not_a_duplicate() -> None:
    key = rules.title_key("m-1", "Tea cup")
    assert key is not None
    first = domain.review_requested(None, request(1), CONFIG, {}, NOW)
    out = domain.review_requested(first.state.case, request(2), CONFIG, {key: ["p-1"]}, NOW)
    assert isinstance(out.events[0], ReviewApproved)


def test_stale_request_ignored() -> None:
    first = domain.review_requested(None, request(2), CONFIG, {}, NOW)
    out = domain.review_requested(first.state.case, request(2), CONFIG, {}, NOW)
    assert (
        out.ignored == "stale_request" and out.events == [] and out.state.case == first.state.case
    )
    out = domain.review_requested(first.state.case, request(1), CONFIG, {}, NOW)
    assert out.ignored == "stale_request"


def test_manual_approve_of_escalated_version() -> None:
    case = escalated_case()
    out = domain.manual_decided(case, manual(2), NOW, "ev-m")
    assert out.events == [ReviewApproved(product_id="p-1", version=2)]
    assert out.state.case is not None and out.state.case.pending is None
    assert out.state.case.title_key == rules.title_key("m-1", "Tea cup")
    [entry] = out.state.audit
    assert (entry.id, entry.outcome, entry.decided_by) == ("p-1:2:3", "approved", "reviewer:r-9")


def test_manual_reject_uses_reviewer_reasons_or_a_default() -> None:
    case = escalated_case()
    out = domain.manual_decided(case, manual(2, "reject"), NOW)
    [event] = out.events
    assert isinstance(event, ReviewRejected)
    assert [r.code for r in event.reasons] == ["manual_reject"]
    given = manual(2, "reject", reasons=[{"code": "counterfeit", "message": "fake brand"}])
    out = domain.manual_decided(case, given, NOW)
    assert [r.code for r in out.events[0].reasons] == ["counterfeit"]  # type: ignore[attr-defined]
    assert out.state.audit[0].outcome == "rejected"


def test_manual_decision_for_another_version_ignored() -> None:
    case = escalated_case()
    for decision in (manual(1), manual(3)):
        out = domain.manual_decided(case, decision, NOW)
        assert out.ignored == "other_version" and out.events == [] and out.state.case == case


def test_manual_decision_without_escalation_ignored() -> None:
    approved = domain.review_requested(None, request(1), CONFIG, {}, NOW).state.case
    assert domain.manual_decided(approved, manual(1), NOW).ignored == "not_escalated"
    assert domain.manual_decided(None, manual(1), NOW).ignored == "not_escalated"


def test_manual_decision_applies_once() -> None:
    case = escalated_case()
    out = domain.manual_decided(case, manual(2), NOW)
    again = domain.manual_decided(out.state.case, manual(2, "reject"), NOW)
    assert again.ignored == "not_escalated"


def test_audit_cancelled_drops_the_escalation() -> None:
    case = escalated_case()
    cancelled = CatalogAuditCancelled(product_id="p-1", merchant_id="m-1", version=2)
    out = domain.audit_cancelled(case, cancelled, NOW)
    assert out.state.case is not None and out.state.case.pending is None
    assert out.events == []
    assert out.state.audit[0].outcome == "cancelled" and out.state.audit[0].version == 2
    assert domain.manual_decided(out.state.case, manual(2), NOW).ignored == "not_escalated"


def test_audit_cancelled_for_other_version_or_nothing_pending_ignored() -> None:
    case = escalated_case()
    other = CatalogAuditCancelled(product_id="p-1", version=1)
    assert domain.audit_cancelled(case, other, NOW).ignored == "other_version"
    approved = domain.review_requested(None, request(1), CONFIG, {}, NOW).state.case
    any_version = CatalogAuditCancelled(product_id="p-1")
    assert domain.audit_cancelled(approved, any_version, NOW).ignored == "nothing_pending"


def test_newer_draft_supersedes_the_escalation() -> None:
    case = escalated_case()
    out = domain.review_requested(case, request(3), CONFIG, {}, NOW)
    assert [e.outcome for e in out.state.audit] == ["superseded", "approved"]
    assert [e.version for e in out.state.audit] == [2, 3]
    assert out.state.case is not None and out.state.case.pending is None
    assert domain.manual_decided(out.state.case, manual(2), NOW).ignored == "not_escalated"


def test_move_title_keeps_the_index_in_step() -> None:
    titles: dict[str, list[str]] = {"k1": ["p-0", "p-1"]}
    assert domain.move_title(titles, "p-1", "k1", "k2") == {"k1", "k2"}
    assert titles == {"k1": ["p-0"], "k2": ["p-1"]}
    assert domain.move_title(titles, "p-1", "k2", "k2") == set()
    domain.move_title(titles, "p-0", "k1", None)
    assert titles["k1"] == []
    for i in range(domain.MAX_PRODUCTS_PER_TITLE + 5):
        domain.move_title(titles, f"q-{i}", None, "k3")
    assert len(titles["k3"]) == domain.MAX_PRODUCTS_PER_TITLE
    assert titles["k3"][-1] == f"q-{domain.MAX_PRODUCTS_PER_TITLE + 4}"
