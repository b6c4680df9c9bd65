"""The dashboard's input handlers: load what the batch touches, fold it in order through the
domain, then write state and figures in bulk (one round trip per collection per batch).

The pipeline's inbox dedupes by event id in the same transaction as the ``$inc`` writes, so
a redelivered batch adds nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    CommissionAccrued,
    CommissionAdjusted,
    CommissionCancelled,
    CommissionRefused,
    CommissionSettled,
    LiveItemExplaining,
    LiveItemRemoved,
    LiveItemSuspended,
    LiveSessionEnded,
    LiveSessionStarted,
    OrderCompleted,
    OrderPaid,
    OrderRefunded,
)
from vitrine.runtime.decision import Decision
from vitrine.runtime.logging import get_logger
from vitrine.runtime.messaging.pipeline import BatchHandler
from vitrine.runtime.messaging.unit_of_work import UnitOfWork
from vitrine_dashboard import domain
from vitrine_dashboard.domain import Delta, Folded, Order, Policy, PolicyInput, Sale, Session
from vitrine_dashboard.repository import Board

log = get_logger(__name__)

OrderInput = OrderPaid | OrderRefunded | OrderCompleted
CommissionInput = (
    CommissionAccrued
    | CommissionAdjusted
    | CommissionCancelled
    | CommissionSettled
    | CommissionRefused
)

LiveInput = (
    LiveSessionStarted | LiveItemExplaining | LiveItemRemoved | LiveItemSuspended | LiveSessionEnded
)

#: The types the dashboard acts on, per topic (the rest are acknowledged without a write).
ACTS_ON: dict[str, frozenset[str]] = {
    "orders.lifecycle": frozenset(m.event_type for m in (OrderPaid, OrderRefunded)),
    "distribution.commissions": frozenset(
        m.event_type
        for m in (CommissionAccrued, CommissionAdjusted, CommissionCancelled, CommissionSettled)
    ),
    "live.rooms": frozenset(
        m.event_type
        for m in (
            LiveSessionStarted,
            LiveItemExplaining,
            LiveItemRemoved,
            LiveItemSuspended,
            LiveSessionEnded,
        )
    ),
}


def fold_order(order: Order | None, event: Event[OrderInput | CommissionInput]) -> Folded | None:
    """The domain function for this input (``None``: nothing for the dashboard)."""
    data = event.data
    match data:
        case OrderPaid():
            decision = domain.paid(order, data)
        case OrderRefunded():
            decision = domain.refunded(order, data, event.time)
        case (
            CommissionAccrued() | CommissionAdjusted() | CommissionCancelled() | CommissionSettled()
        ):
            decision = domain.commission_moved(order, data, event.time)
        case _:
            return None
    if decision.ignored is not None:
        log.info(
            "order.event_ignored", order_id=data.order_id, type=event.type, why=decision.ignored
        )
        return None
    return decision.state


async def apply_orders(events: list[Event[OrderInput | CommissionInput]], board: Board) -> None:
    """Orders, refunds and commission movements into the buckets, in order per order."""
    orders: dict[str, Order | None] = dict(await board.load_orders(e.data.order_id for e in events))
    changed: set[str] = set()
    deltas: list[Delta] = []
    sales: list[Sale] = []
    for event in events:
        oid = event.data.order_id
        folded = fold_order(orders.get(oid), event)
        if folded is None:
            continue
        orders[oid] = folded.order
        changed.add(oid)
        deltas += folded.deltas
        sales += folded.sales
    await board.save_orders(o for oid in changed if (o := orders[oid]) is not None)
    await board.add(deltas, sales)


def fold_session(session: Session | None, event: Event[LiveInput]) -> Decision[Session | None]:
    """The domain function for a live.rooms event, at the event's own time."""
    data, at = event.data, event.time
    match data:
        case LiveSessionStarted():
            return domain.session_started(session, data.session_id, data.creator_id, data.title, at)
        case LiveItemExplaining():
            return domain.explaining(session, data.session_id, data.creator_id, data.product_id, at)
        case LiveItemRemoved() | LiveItemSuspended():
            return domain.item_gone(session, data.product_id, at)
        case LiveSessionEnded():
            return domain.session_ended(session, data.session_id, data.creator_id, at)


async def apply_sessions(events: list[Event[LiveInput]], board: Board) -> None:
    """Live sessions: started, presenting, ended (the live view's header)."""
    sessions: dict[str, Session | None] = dict(
        await board.load_sessions(e.data.session_id for e in events)
    )
    changed: set[str] = set()
    for event in events:
        sid = event.data.session_id
        decision = fold_session(sessions.get(sid), event)
        if decision.changed:
            sessions[sid] = decision.state
            changed.add(sid)
    await board.save_sessions(s for sid in changed if (s := sessions[sid]) is not None)


async def apply_policies(events: list[Event[PolicyInput]], board: Board) -> None:
    """Rulings and enforcement reports into the operator's view of each policy."""
    policies: dict[str, Policy | None] = dict(
        await board.load_policies(e.data.policy_id for e in events)
    )
    changed: set[str] = set()
    for event in events:
        pid = event.data.policy_id
        decision = domain.policy_event(policies.get(pid), event.data, event.time)
        if decision.changed:
            policies[pid] = decision.state
            changed.add(pid)
    await board.save_policies(p for pid in changed if (p := policies[pid]) is not None)


def make_handlers(board: Callable[[UnitOfWork], Board]) -> dict[str, BatchHandler]:
    """The handlers per input topic, reaching the dashboard's data through ``board(uow)``."""

    async def on_orders(events: list[Event[OrderInput | CommissionInput]], uow: UnitOfWork) -> None:
        await apply_orders(events, board(uow))

    async def on_policies(events: list[Event[PolicyInput]], uow: UnitOfWork) -> None:
        await apply_policies(events, board(uow))

    async def on_live(events: list[Event[LiveInput]], uow: UnitOfWork) -> None:
        await apply_sessions(events, board(uow))

    return {
        "orders.lifecycle": on_orders,
        "live.rooms": on_live,
        "distribution.commissions": on_orders,
        "compliance.rulings": on_policies,
        "compliance.reports": on_policies,
    }
