"""Commissions: one per order, as an exact integer-fen ledger.

Pure: no I/O. One :class:`Order` per ``order_id`` holds everything: the payment, the
commission as it stands, the refunds, and the ledger entries it produced. Money is integer fen
and rates integer basis points everywhere; the only rounding is :func:`commission_for`
(round half up, in integer arithmetic).

Lifecycle (DESIGN.md §4):

- ``order.paid`` with an ``offer_id`` → ``commission.accrued`` at the rate in force at
  ``paid_at``, if the offer was active then and the creator eligible; otherwise
  ``commission.refused`` (``offer_inactive`` — also for an offer for another product or
  merchant than the order's; ``creator_not_eligible`` — also when the order names no
  creator). A paid order without ``offer_id`` earns nothing and emits nothing.
- **Held**: an ``order.paid`` naming an offer distribution has not consumed yet (inputs arrive
  on different topics) is *held* (:func:`pay` → status ``held``) and judged by :func:`judge`
  when the offer arrives — exactly as if it had arrived first, since the offer's history is
  dated by event time. Only when the bounded wait is over (measured in event time by the
  handler, see the service README) is it judged without one: ``offer_unknown``.
  ``order.completed``/``order.refunded`` of a held order wait with it (:func:`drain`).
- ``order.completed`` → ``commission.settled`` (commission as it stands).
- ``order.refunded`` before settlement → ``commission.adjusted`` (partial: the commission is
  recomputed on what remains, ``round_half_up((amount − refunded) × bps / 10000)``, and
  ``delta_fen`` ≤ 0 is the change) or ``commission.cancelled`` (refunds reach the amount).
- **Clawback** — ``order.refunded`` after settlement: the settled commission is recomputed the
  same way and the difference is owed back by the creator. It is published as
  ``commission.adjusted`` with ``clawback: true`` and ``clawback_fen`` (the amount payable
  back, = −``delta_fen``), and booked as a ``clawback`` ledger entry: it lowers the settled
  total and raises the clawback (payable-back) total. A settled commission is never
  "cancelled" — a full refund after settlement is a clawback down to 0.

Exactly one accrual per order: the order document is keyed by ``order_id``; a second
``order.paid`` (even with a new event id) is ignored; and the document records which input
events it applied (the handler re-emits, never re-applies, one it already holds).
``order.completed`` or ``order.refunded`` arriving *before* ``order.paid`` (or while it is
held) is kept as pending and applied, in arrival order, once the payment is judged — each as
its own decision, so its events are caused by its own input whatever the interleaving.
Refunds are capped at the amount paid. Every time here is an event's own: accruals are dated
``paid_at``, settlements and refunds by their events' ``time`` (``settled_at`` too).

Ledger buckets (:class:`Totals`, all ≥ 0, ``accrued − cancelled = settled + pending``):
``accrued_fen`` gross accrued; ``cancelled_fen`` every reduction (adjustments, cancellations,
clawbacks); ``settled_fen`` settled commission net of clawbacks; ``pending_fen`` accrued, not yet
settled, as it stands; ``clawback_fen`` the reductions that hit settled commission (payable back).
Whatever order an order's events arrive in, accrued, cancelled, settled and pending end the same
(only the split of a reduction into clawback or not depends on whether settlement came first).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar, Literal, TypedDict

from vitrine.contract.events import (
    CommissionAccrued,
    CommissionAdjusted,
    CommissionCancelled,
    CommissionRefused,
    CommissionSettled,
    EventData,
    Fen,
    OrderPaid,
    Reason,
)
from vitrine.runtime.decision import Decision, Emit
from vitrine_distribution.domain.offers import Offer
from vitrine_distribution.domain.rates import to_ms

OrderStatus = Literal[
    "awaiting_payment", "held", "no_offer", "refused", "accrued", "settled", "cancelled"
]
COMMISSIONS: Literal["distribution.commissions"] = "distribution.commissions"
#: Statuses in which later order events wait (pending) for the payment to be judged.
WAITING: frozenset[str] = frozenset({"awaiting_payment", "held"})
EntryKind = Literal["accrual", "adjustment", "cancellation", "settlement", "clawback"]


def commission_for(amount_fen: int, bps: int) -> int:
    """``round_half_up(amount_fen × bps / 10000)`` in integer arithmetic (never floats)."""
    if amount_fen < 0 or bps < 0:
        raise ValueError("amount and rate must be non-negative")
    return (amount_fen * bps * 2 + 10_000) // 20_000


class CommissionClawback(CommissionAdjusted):  # type: ignore[misc]  # vitrine lacks py.typed
    """``commission.adjusted`` for a refund after settlement: ``clawback_fen`` is owed back.

    Additive fields on the contract's ``commission.adjusted`` (unknown fields are ignored by
    consumers, DESIGN.md §2).
    """

    event_type: ClassVar[str] = "commission.adjusted"

    clawback: bool = True
    clawback_fen: Fen


def output_models() -> dict[str, type[EventData]]:
    """Every event this module publishes, by model name (to rebuild stored outputs exactly)."""
    models: tuple[type[EventData], ...] = (
        CommissionAccrued,
        CommissionSettled,
        CommissionAdjusted,
        CommissionCancelled,
        CommissionRefused,
        CommissionClawback,
    )
    return {m.__name__: m for m in models}


@dataclass(frozen=True)
class Totals:
    """Ledger totals in fen; see the module docstring for what each bucket means."""

    accrued_fen: int = 0
    cancelled_fen: int = 0
    settled_fen: int = 0
    pending_fen: int = 0
    clawback_fen: int = 0

    def __add__(self, other: Totals) -> Totals:
        return Totals(
            self.accrued_fen + other.accrued_fen,
            self.cancelled_fen + other.cancelled_fen,
            self.settled_fen + other.settled_fen,
            self.pending_fen + other.pending_fen,
            self.clawback_fen + other.clawback_fen,
        )

    @property
    def net_fen(self) -> int:
        """Commission as it stands (accrued minus every reduction)."""
        return self.accrued_fen - self.cancelled_fen

    def as_dict(self) -> dict[str, int]:
        return {
            "accrued_fen": self.accrued_fen,
            "cancelled_fen": self.cancelled_fen,
            "settled_fen": self.settled_fen,
            "pending_fen": self.pending_fen,
            "clawback_fen": self.clawback_fen,
        }


@dataclass(frozen=True)
class Entry:
    """One ledger movement of an order. ``amount_fen`` ≥ 0 is the amount moved."""

    seq: int
    kind: EntryKind
    amount_fen: int
    commission_fen: int
    at: datetime
    refund_fen: int | None = None

    @property
    def effect(self) -> Totals:
        a = self.amount_fen
        if self.kind == "accrual":
            return Totals(accrued_fen=a, pending_fen=a)
        if self.kind in ("adjustment", "cancellation"):
            return Totals(cancelled_fen=a, pending_fen=-a)
        if self.kind == "settlement":
            return Totals(settled_fen=a, pending_fen=-a)
        return Totals(cancelled_fen=a, settled_fen=-a, clawback_fen=a)  # clawback

    @property
    def delta_fen(self) -> int:
        """The change to the commission (settlement moves money, not the commission)."""
        if self.kind == "accrual":
            return self.amount_fen
        return 0 if self.kind == "settlement" else -self.amount_fen


def totals(entries: Iterable[Entry]) -> Totals:
    """The ledger totals of these entries."""
    result = Totals()
    for entry in entries:
        result = result + entry.effect
    return result


@dataclass(frozen=True)
class Pending:
    """An ``order.completed``/``order.refunded`` waiting for the payment to be judged.

    ``event_id`` names the input (its dedupe key), so its events are caused by it; ``at`` is
    its event time."""

    kind: Literal["completed", "refunded"]
    event_id: str
    at: datetime
    refund_fen: int = 0


@dataclass(frozen=True)
class Order:
    order_id: str
    status: OrderStatus = "awaiting_payment"
    product_id: str | None = None
    merchant_id: str | None = None
    creator_id: str | None = None
    offer_id: str | None = None
    amount_fen: int = 0
    paid_at: datetime | None = None
    commission_bps: int = 0
    commission_fen: int = 0
    refunded_fen: int = 0
    completed: bool = False
    pending: tuple[Pending, ...] = ()
    entries: tuple[Entry, ...] = ()
    reasons: tuple[Reason, ...] = ()

    @property
    def totals(self) -> Totals:
        return totals(self.entries)


#: What a commission decision returns: the order after it.
OrderDecision = Decision[Order]


def _emit(order_id: str, data: EventData) -> Emit:
    # explicit topic: the additive subclass CommissionClawback is not in the registry
    return Emit(data, order_id, COMMISSIONS)


def _book(
    order: Order,
    kind: EntryKind,
    amount: int,
    commission: int,
    now: datetime,
    refund: int | None = None,
) -> tuple[Order, Entry]:
    entry = Entry(len(order.entries), kind, amount, commission, now, refund)
    return replace(order, entries=(*order.entries, entry), commission_fen=commission), entry


class _Ids(TypedDict):
    """The ids every commission event carries (only orders with a commission have them all)."""

    order_id: str
    offer_id: str
    creator_id: str
    merchant_id: str


def _ids(order: Order) -> _Ids:
    if not (order.offer_id and order.creator_id and order.merchant_id):
        raise ValueError(f"order {order.order_id} has no commission")
    return _Ids(
        order_id=order.order_id,
        offer_id=order.offer_id,
        creator_id=order.creator_id,
        merchant_id=order.merchant_id,
    )


def _refusals(order: Order, offer: Offer | None) -> list[Reason]:
    paid_at = order.paid_at
    assert paid_at is not None
    if offer is None:
        return [
            Reason(
                code="offer_unknown",
                message=f"offer {order.offer_id} never arrived within the wait",
                field="offer_id",
            )
        ]
    reasons: list[Reason] = []
    if offer.product_id != order.product_id or offer.merchant_id != order.merchant_id:
        return [
            Reason(
                code="offer_inactive",
                message=f"offer {offer.offer_id} is for product {offer.product_id} of merchant "
                f"{offer.merchant_id}, not this order's",
                field="product_id",
            )
        ]
    if not offer.active_at(paid_at) or offer.rate_at(paid_at) is None:
        reasons.append(
            Reason(
                code="offer_inactive",
                message=f"offer {offer.offer_id} was not active at paid_at",
                field="offer_id",
            )
        )
    if order.creator_id is None:
        reasons.append(
            Reason(
                code="creator_not_eligible",
                message="the order names no creator",
                field="creator_id",
            )
        )
    elif not offer.eligible_at(order.creator_id, paid_at):
        reasons.append(
            Reason(
                code="creator_not_eligible",
                message=f"creator {order.creator_id} is not in offer {offer.offer_id}'s plan",
                field="creator_id",
            )
        )
    return reasons


def pay(
    order: Order | None, cmd: OrderPaid, offer: Offer | None, *, wait_over: bool = False
) -> OrderDecision:
    """``order.paid``: accrue or refuse at ``paid_at``; hold it while its offer is unknown.

    ``offer`` is the offer it names as distribution knows it (``None``: not consumed yet);
    ``wait_over`` says the bounded wait for it is over (then an unknown offer is refused
    ``offer_unknown``). Whatever arrived before the payment stays pending: :func:`drain`.
    """
    current = order or Order(cmd.order_id)
    if current.status != "awaiting_payment":
        return Decision.ignore(current, "already_paid")
    base = replace(
        current,
        product_id=cmd.product_id,
        merchant_id=cmd.merchant_id,
        creator_id=cmd.creator_id,
        offer_id=cmd.offer_id,
        amount_fen=cmd.amount_fen,
        paid_at=to_ms(cmd.paid_at),
    )
    if cmd.offer_id is None:
        return Decision(replace(base, status="no_offer"))
    held = replace(base, status="held")
    if offer is None and not wait_over:
        return Decision(held)
    return judge(held, offer)


def judge(order: Order, offer: Offer | None) -> OrderDecision:
    """A held order, judged with its offer (``None``: the wait is over, ``offer_unknown``)."""
    if order.status != "held":
        return Decision.ignore(order, f"not_held:{order.status}")
    assert order.offer_id is not None and order.merchant_id is not None
    assert order.paid_at is not None
    reasons = _refusals(order, offer)
    if reasons:
        refused = CommissionRefused(
            order_id=order.order_id,
            offer_id=order.offer_id,
            creator_id=order.creator_id,
            merchant_id=order.merchant_id,
            reasons=reasons,
        )
        new = replace(order, status="refused", reasons=tuple(reasons))
        # a refused *commission* is a state change of the order (it is judged), not a
        # refused command: it is saved and its event published
        return Decision(new, [_emit(order.order_id, refused)])
    assert offer is not None
    bps = offer.rate_at(order.paid_at)
    assert bps is not None
    amount = commission_for(order.amount_fen, bps)
    new, _ = _book(
        replace(order, status="accrued", commission_bps=bps),
        "accrual",
        amount,
        amount,
        order.paid_at,
    )
    ids = _ids(new)
    accrued = CommissionAccrued(
        **ids,
        commission_fen=amount,
        amount_fen=order.amount_fen,
        commission_bps=bps,
    )
    return Decision(new, [_emit(order.order_id, accrued)])


def drain(order: Order) -> list[tuple[Pending, OrderDecision]]:
    """Apply what waited for the payment, in arrival order, once it is judged: each pending
    input's own decision (the last one's state is the order with nothing pending)."""
    if order.status in WAITING or not order.pending:
        return []
    current = replace(order, pending=())
    out: list[tuple[Pending, OrderDecision]] = []
    for item in order.pending:
        decision = (
            complete(current, item.event_id, item.at)
            if item.kind == "completed"
            else refund(current, item.event_id, item.refund_fen, item.at)
        )
        current = decision.state
        out.append((item, decision))
    return out


def complete(order: Order, event_id: str, at: datetime) -> OrderDecision:
    """``order.completed`` (``at``: its time): settle the commission as it stands (once)."""
    now = to_ms(at)
    current = order
    if current.status in WAITING:
        if any(p.kind == "completed" for p in current.pending):
            return Decision.ignore(current, "already_completed")
        item = Pending("completed", event_id, now)
        return Decision(replace(current, pending=(*current.pending, item)))  # waits
    if current.completed:
        return Decision.ignore(current, "already_completed")
    if current.status != "accrued":
        return Decision(replace(current, completed=True))  # nothing to settle
    ids = _ids(current)
    new, _ = _book(
        replace(current, status="settled", completed=True),
        "settlement",
        current.commission_fen,
        current.commission_fen,
        now,
    )
    settled = CommissionSettled(
        **ids,
        commission_fen=new.commission_fen,
        settled_at=now,
    )
    return Decision(new, [_emit(ids["order_id"], settled)])


def refund(order: Order, event_id: str, refund_fen: int, at: datetime) -> OrderDecision:
    """``order.refunded`` (``at``: its time): adjust or cancel before settlement; claw back
    after it."""
    now = to_ms(at)
    current = order
    if current.status in WAITING:
        item = Pending("refunded", event_id, now, refund_fen)
        return Decision(replace(current, pending=(*current.pending, item)))  # waits
    refunded = min(current.amount_fen, current.refunded_fen + refund_fen)
    if refund_fen == 0 or refunded == current.refunded_fen:
        return Decision.ignore(current, "nothing_refunded")
    current = replace(current, refunded_fen=refunded)
    if current.status not in ("accrued", "settled"):
        return Decision(current)  # no commission to change; the refund is recorded
    full = refunded >= current.amount_fen
    after = 0 if full else commission_for(current.amount_fen - refunded, current.commission_bps)
    before = current.commission_fen
    change = before - after  # ≥ 0: a refund never raises the commission
    ids = _ids(current)
    if current.status == "settled":
        new, _ = _book(current, "clawback", change, after, now, refund_fen)
        event: EventData = CommissionClawback(
            **ids,
            commission_fen=after,
            delta_fen=-change,
            refund_fen=refund_fen,
            clawback_fen=change,
        )
    elif full:
        new, _ = _book(
            replace(current, status="cancelled"), "cancellation", change, 0, now, refund_fen
        )
        event = CommissionCancelled(
            **ids,
            commission_fen=0,
            reason="refunded",
        )
    else:
        new, _ = _book(current, "adjustment", change, after, now, refund_fen)
        event = CommissionAdjusted(
            **ids,
            commission_fen=after,
            delta_fen=-change,
            refund_fen=refund_fen,
        )
    return Decision(new, [_emit(ids["order_id"], event)])
