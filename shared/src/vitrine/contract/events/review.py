"""Review: ``review.decisions`` (review's outputs) and ``review.manual`` (a reviewer's verdict)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from vitrine.contract.events.base import EventData, Id
from vitrine.contract.events.common import ReasonList, Version

Verdict = Literal["approve", "reject"]


class _Decision(EventData):
    product_id: Id
    version: Version
    reasons: ReasonList = Field(default_factory=list)


class ReviewApproved(_Decision):
    event_type: ClassVar[str] = "review.approved"


class ReviewRejected(_Decision):
    event_type: ClassVar[str] = "review.rejected"


class ReviewEscalated(_Decision):
    """Soft rules fired (``price_jump``, ``possible_duplicate``): waits for a manual verdict."""

    event_type: ClassVar[str] = "review.escalated"


class ReviewManualDecided(EventData):
    """A reviewer's verdict on an escalated version (input on ``review.manual``)."""

    event_type: ClassVar[str] = "review.manual_decided"

    product_id: Id
    version: Version
    reviewer_id: Id
    verdict: Verdict
    reasons: ReasonList = Field(default_factory=list)
