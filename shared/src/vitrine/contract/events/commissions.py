"""``distribution.commissions``: a commission per order, as it stands after each event."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from vitrine.contract.events.base import Bps, EventData, Fen, Id
from vitrine.contract.events.common import Code, ReasonList, SignedFen


class _Commission(EventData):
    order_id: Id
    offer_id: Id
    creator_id: Id
    merchant_id: Id
    #: The commission after this event.
    commission_fen: Fen


class CommissionAccrued(_Commission):
    """``commission_fen = round_half_up(amount_fen × commission_bps / 10000)``."""

    event_type: ClassVar[str] = "commission.accrued"

    amount_fen: Fen
    commission_bps: Bps


class CommissionSettled(_Commission):
    event_type: ClassVar[str] = "commission.settled"

    settled_at: AwareDatetime | None = None


class CommissionAdjusted(_Commission):
    """A partial refund before settlement; ``delta_fen`` is the change (negative for a cut).

    A refund after settlement is a clawback: ``clawback`` is true and ``clawback_fen`` is what
    the creator owes back (the settled commission recomputed on the amount left).
    """

    event_type: ClassVar[str] = "commission.adjusted"

    delta_fen: SignedFen
    refund_fen: Fen
    clawback: bool = False
    clawback_fen: Fen | None = None


class CommissionCancelled(_Commission):
    """A full refund before settlement: the commission is 0."""

    event_type: ClassVar[str] = "commission.cancelled"

    commission_fen: Literal[0] = 0
    reason: Code


class CommissionRefused(EventData):
    """No commission for a paid order; ``offer_id``/``creator_id`` may be what was missing."""

    event_type: ClassVar[str] = "commission.refused"

    order_id: Id
    offer_id: Id | None = None
    creator_id: Id | None = None
    merchant_id: Id
    commission_fen: Literal[0] = 0
    reasons: ReasonList = Field(default_factory=list)
