"""The dashboard's folding rules: orders, refunds and commissions into per-minute figures;
live sessions; policies and their enforcement. Pure: no I/O, no clock.

Figures are additive, so every input becomes a list of :class:`Delta` — "add these figures to
this scope's bucket for this minute" — that the repository applies with ``$inc`` in bulk. What
makes the numbers exact:

- **Deduped**: each input event is applied once (the pipeline's inbox); a second
  ``order.paid`` for an order already paid (a new event id for the same order) is ignored.
- **Event time**: a payment lands in the minute of its ``paid_at``; a refund and a commission
  movement in the minute of their event's own ``time`` (a refund counts on the day it is
  refunded, not the day of the payment). Minutes and days are Asia/Shanghai.
- **Out of order**: a refund, or a commission movement, that arrives before its order's
  payment cannot be placed in a live session or a product yet; it is *parked* on the order and
  released, in its own minute, when the payment arrives. Commission movements reach the
  creator's and merchant's figures at once (their event names both).
- Refunds are capped at what was paid and not yet refunded.

Commission figures follow the distribution ledger (``distribution.commissions``):
``commission_accrued_fen`` is the commission as it stands (accruals minus adjustments,
cancellations and clawbacks) and ``commission_settled_fen`` the settled commission net of
clawbacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from vitrine.contract.events import (
    CommissionAccrued,
    CommissionAdjusted,
    CommissionCancelled,
    CommissionSettled,
    EnforcementReported,
    OrderPaid,
    OrderRefunded,
    PolicyAccepted,
    PolicyEnforcementCompleted,
    PolicyImpactAssessed,
    PolicyInForce,
    PolicyLifted,
    PolicyRejected,
)
from vitrine.runtime.decision import Decision

#: The calendar of every minute and day the dashboard shows.
TZ = ZoneInfo("Asia/Shanghai")
Scope = Literal["creator", "merchant", "live", "product"]
SCOPES: tuple[Scope, ...] = ("creator", "merchant", "live", "product")
Commission = CommissionAccrued | CommissionAdjusted | CommissionCancelled | CommissionSettled


def minute_of(at: datetime) -> datetime:
    """The Asia/Shanghai minute ``at`` falls in (aware, seconds dropped)."""
    return at.astimezone(TZ).replace(second=0, microsecond=0)


def day_of(at: datetime) -> date:
    """The Asia/Shanghai calendar day of ``at``."""
    return at.astimezone(TZ).date()


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """``[00:00, next 00:00)`` of ``day`` in Asia/Shanghai."""
    start = datetime(day.year, day.month, day.day, tzinfo=TZ)
    return start, start + timedelta(days=1)


# --- figures -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """Additive numbers of one bucket (a minute, a day or a session)."""

    gmv_fen: int = 0
    orders: int = 0
    refunds_fen: int = 0
    commission_accrued_fen: int = 0
    commission_settled_fen: int = 0

    def __add__(self, other: Figures) -> Figures:
        return Figures(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def net_fen(self) -> int:
        """GMV less refunds."""
        return self.gmv_fen - self.refunds_fen

    def nonzero(self) -> dict[str, int]:
        """The figures that change something (the ``$inc`` of a bucket)."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name))}

    def as_dict(self) -> dict[str, int]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["net_fen"] = self.net_fen
        return out

    @staticmethod
    def of(doc: Mapping[str, object]) -> Figures:
        """Figures from a stored bucket (missing fields are 0)."""
        values = []
        for f in fields(Figures):
            v = doc.get(f.name, 0)
            values.append(v if isinstance(v, int) else 0)
        return Figures(*values)


FIGURES = tuple(f.name for f in fields(Figures))


@dataclass(frozen=True, slots=True)
class Delta:
    """Add ``figures`` to ``scope``/``key``'s bucket of ``minute`` (Asia/Shanghai)."""

    scope: Scope
    key: str
    minute: datetime
    figures: Figures


@dataclass(frozen=True, slots=True)
class Sale:
    """A product's tally within a live session (the session's top products)."""

    session_id: str
    product_id: str
    gmv_fen: int = 0
    orders: int = 0
    units: int = 0
    refunds_fen: int = 0


# --- orders ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an order's money shows: its creator, merchant, live session and product."""

    merchant_id: str
    product_id: str
    creator_id: str | None = None
    live_session_id: str | None = None

    def scopes(self, *, placement_only: bool = False) -> list[tuple[Scope, str]]:
        out: list[tuple[Scope, str]] = []
        if not placement_only:
            if self.creator_id:
                out.append(("creator", self.creator_id))
            out.append(("merchant", self.merchant_id))
        if self.live_session_id:
            out.append(("live", self.live_session_id))
        out.append(("product", self.product_id))
        return out


@dataclass(frozen=True, slots=True)
class Parked:
    """An effect that arrived before the order's payment, waiting for its placement.

    ``placement_only``: creator and merchant already have it (a commission movement names
    both); only the live session and the product are owed.
    """

    at: datetime
    figures: Figures
    placement_only: bool = False


@dataclass(frozen=True, slots=True)
class Order:
    """What the dashboard remembers of one order."""

    order_id: str
    placement: Placement | None = None
    paid_at: datetime | None = None
    amount_fen: int = 0
    refunded_fen: int = 0
    #: The commission as it stands after the last commission event (to undo on cancellation).
    commission_fen: int = 0
    parked: tuple[Parked, ...] = ()


@dataclass(frozen=True, slots=True)
class Folded:
    """An order after an input, with what to add to the buckets and session tallies."""

    order: Order
    deltas: tuple[Delta, ...] = ()
    sales: tuple[Sale, ...] = ()


def _place(
    placement: Placement, at: datetime, figures: Figures, *, placement_only: bool = False
) -> tuple[list[Delta], list[Sale]]:
    minute = minute_of(at)
    deltas = [
        Delta(s, k, minute, figures) for s, k in placement.scopes(placement_only=placement_only)
    ]
    sales: list[Sale] = []
    if placement.live_session_id and (figures.gmv_fen or figures.orders or figures.refunds_fen):
        sales.append(
            Sale(
                placement.live_session_id,
                placement.product_id,
                gmv_fen=figures.gmv_fen,
                orders=figures.orders,
                refunds_fen=figures.refunds_fen,
            )
        )
    return deltas, sales


def paid(order: Order | None, data: OrderPaid) -> Decision[Folded]:
    """A payment: GMV and one order in the minute of ``paid_at``, then what was parked."""
    current = order or Order(data.order_id)
    if current.placement is not None:
        return Decision.ignore(Folded(current), "order_already_paid")
    placement = Placement(data.merchant_id, data.product_id, data.creator_id, data.live_session_id)
    units = data.quantity or 1
    deltas, sales = _place(placement, data.paid_at, Figures(gmv_fen=data.amount_fen, orders=1))
    sales = [replace(s, units=units) for s in sales]
    refunded = 0
    for p in current.parked:  # in arrival order, each in its own minute
        figures = p.figures
        if figures.refunds_fen:
            capped = min(figures.refunds_fen, data.amount_fen - refunded)
            refunded += capped
            figures = replace(figures, refunds_fen=capped)
        more, more_sales = _place(placement, p.at, figures, placement_only=p.placement_only)
        deltas += more
        sales += more_sales
    new = replace(
        current,
        placement=placement,
        paid_at=data.paid_at,
        amount_fen=data.amount_fen,
        refunded_fen=current.refunded_fen + refunded,
        parked=(),
    )
    return Decision(Folded(new, tuple(d for d in deltas if d.figures.nonzero()), tuple(sales)))


def refunded(order: Order | None, data: OrderRefunded, at: datetime) -> Decision[Folded]:
    """A refund of ``refund_fen`` at ``at`` (its event's time), capped at what is left."""
    current = order or Order(data.order_id)
    if current.placement is None:
        parked = Parked(at, Figures(refunds_fen=data.refund_fen))
        return Decision(Folded(replace(current, parked=(*current.parked, parked))))
    amount = min(data.refund_fen, current.amount_fen - current.refunded_fen)
    if amount <= 0:
        return Decision.ignore(Folded(current), "nothing_left_to_refund")
    deltas, sales = _place(current.placement, at, Figures(refunds_fen=amount))
    new = replace(current, refunded_fen=current.refunded_fen + amount)
    return Decision(Folded(new, tuple(deltas), tuple(sales)))


def commission_moved(order: Order | None, data: Commission, at: datetime) -> Decision[Folded]:
    """A commission event: how accrued and settled commission moved, at ``at``."""
    current = order or Order(data.order_id)
    match data:
        case CommissionAccrued():
            figures = Figures(commission_accrued_fen=data.commission_fen - current.commission_fen)
        case CommissionAdjusted():
            settled = data.delta_fen if data.clawback else 0
            figures = Figures(commission_accrued_fen=data.delta_fen, commission_settled_fen=settled)
        case CommissionCancelled():
            figures = Figures(commission_accrued_fen=-current.commission_fen)
        case CommissionSettled():
            figures = Figures(commission_settled_fen=data.commission_fen)
    new = replace(current, commission_fen=data.commission_fen)
    if not figures.nonzero():
        return Decision(Folded(new))
    minute = minute_of(at)
    deltas = [
        Delta("creator", data.creator_id, minute, figures),
        Delta("merchant", data.merchant_id, minute, figures),
    ]
    if current.placement is None:
        parked = Parked(at, figures, placement_only=True)
        return Decision(Folded(replace(new, parked=(*new.parked, parked)), tuple(deltas)))
    more, _ = _place(current.placement, at, figures, placement_only=True)
    return Decision(Folded(new, tuple(deltas + more)))


# --- live sessions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    """A live session as live.rooms tells it; later events win by their own time."""

    session_id: str
    creator_id: str
    title: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    explaining: str | None = None
    #: The time of the event that set ``explaining`` (an older one never overrides it).
    explaining_at: datetime | None = None

    @property
    def status(self) -> str:
        if self.ended_at is not None:
            return "ended"
        return "live" if self.started_at is not None else "unknown"


def session_started(
    session: Session | None, session_id: str, creator_id: str, title: str, at: datetime
) -> Decision[Session | None]:
    current = session or Session(session_id, creator_id)
    return Decision(replace(current, creator_id=creator_id, title=title, started_at=at))


def explaining(
    session: Session | None, session_id: str, creator_id: str, product_id: str, at: datetime
) -> Decision[Session | None]:
    """The product presented now; an older presentation arriving late changes nothing."""
    current = session or Session(session_id, creator_id)
    if current.explaining_at is not None and at < current.explaining_at:
        return Decision.ignore(current, "stale")
    return Decision(replace(current, explaining=product_id, explaining_at=at))


def item_gone(session: Session | None, product_id: str, at: datetime) -> Decision[Session | None]:
    """The item left the cart (removed or suspended): no longer presented."""
    if session is None or session.explaining != product_id:
        return Decision.ignore(session, "not_presented")
    if session.explaining_at is not None and at < session.explaining_at:
        return Decision.ignore(session, "stale")
    return Decision(replace(session, explaining=None, explaining_at=at))


def session_ended(
    session: Session | None, session_id: str, creator_id: str, at: datetime
) -> Decision[Session | None]:
    current = session or Session(session_id, creator_id)
    return Decision(replace(current, ended_at=at, explaining=None, explaining_at=at))


# --- policies ----------------------------------------------------------------------------------

#: Which service enforces each surface (the operator view waits for their reports).
ENFORCERS = {"showcase": "showcase", "live": "live", "distribution": "distribution"}
PolicyStage = Literal["announced", "rejected", "in_force", "completed", "lifted"]


@dataclass(frozen=True, slots=True)
class Report:
    service: str
    phase: str
    affected: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Policy:
    """A policy as the operator sees it: where it is, and who has enforced it."""

    policy_id: str
    stage: PolicyStage = "announced"
    title: str | None = None
    effective_at: datetime | None = None
    enforce_existing_at: datetime | None = None
    surfaces: tuple[str, ...] = ()
    phase: str | None = None
    impact: Mapping[str, int] = field(default_factory=dict)
    reports: tuple[Report, ...] = ()
    completed_at: datetime | None = None
    completed_counts: Mapping[str, int] = field(default_factory=dict)
    lifted_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def enforcers(self) -> list[str]:
        """The services expected to report, from the rules' surfaces."""
        return [ENFORCERS[s] for s in ("showcase", "live", "distribution") if s in self.surfaces]


PolicyInput = (
    PolicyAccepted
    | PolicyRejected
    | PolicyImpactAssessed
    | PolicyInForce
    | PolicyLifted
    | PolicyEnforcementCompleted
    | EnforcementReported
)


def policy_event(policy: Policy | None, data: PolicyInput, at: datetime) -> Decision[Policy]:
    """Fold one ruling or report into the operator's view of the policy."""
    current = replace(policy or Policy(data.policy_id), updated_at=at)
    if current.stage == "lifted" and not isinstance(data, EnforcementReported):
        return Decision.ignore(policy or current, "lifted")
    match data:
        case PolicyAccepted():
            surfaces = sorted({s for r in data.rules for s in r.surfaces})
            return Decision(
                replace(
                    current,
                    title=data.title,
                    effective_at=data.effective_at,
                    enforce_existing_at=data.enforce_existing_at,
                    surfaces=tuple(surfaces),
                )
            )
        case PolicyRejected():
            return Decision(replace(current, stage="rejected"))
        case PolicyImpactAssessed():
            impact = {
                "items": data.items,
                "offers": data.offers,
                "creators": data.creators,
                "merchants": data.merchants,
            }
            return Decision(replace(current, impact=impact))
        case PolicyInForce():
            stage: PolicyStage = "completed" if current.stage == "completed" else "in_force"
            phase = data.phase
            if current.phase == "enforce_existing":  # a late block_new never steps back
                phase = "enforce_existing"
            return Decision(replace(current, stage=stage, phase=phase))
        case EnforcementReported():
            others = tuple(r for r in current.reports if r.service != data.service)
            report = Report(data.service, data.phase, data.affected, at)
            return Decision(replace(current, reports=(*others, report)))
        case PolicyEnforcementCompleted():
            if data.phase == "lifted":
                return Decision(current)
            return Decision(
                replace(current, stage="completed", completed_at=at, completed_counts=data.counts)
            )
        case PolicyLifted():
            return Decision(replace(current, stage="lifted", lifted_at=at))


def totals(buckets: Iterable[Figures]) -> Figures:
    """The sum of some buckets."""
    out = Figures()
    for b in buckets:
        out = out + b
    return out
