"""The dashboard's handlers over the in-memory board: dispatch, batches folded in order, what
is added to the buckets; no Kafka, no MongoDB."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    CommissionAccrued,
    EventData,
    LiveItemExplaining,
    LiveItemRemoved,
    LiveSessionEnded,
    LiveSessionStarted,
    OrderPaid,
    OrderRefunded,
    PolicyAccepted,
)
from vitrine.runtime.messaging.unit_of_work import InMemoryUnitOfWork, incoming
from vitrine_dashboard.domain import TZ, Figures
from vitrine_dashboard.handlers import ACTS_ON, make_handlers
from vitrine_dashboard.repository import InMemoryBoard

pytestmark = pytest.mark.handlers
NOON = datetime(2022, 7, 1, 12, 0, 30, tzinfo=TZ)


def at(event: Event[Any], when: datetime) -> Event[Any]:
    """The event stamped ``when`` (its CloudEvents ``time``)."""
    return Event(event.envelope.model_copy(update={"time": when}), event.data)


def paid(order: str, amount: int, product: str = "p-1", when: datetime = NOON) -> OrderPaid:
    return OrderPaid(
        order_id=order,
        product_id=product,
        merchant_id="m-1",
        creator_id="c-1",
        amount_fen=amount,
        paid_at=when,
        live_session_id="s-1",
    )


async def run(board: InMemoryBoard, topic: str, *events: Event[Any]) -> InMemoryUnitOfWork:
    uow = InMemoryUnitOfWork(service="dashboard")
    await make_handlers(lambda _: board)[topic](list(events), uow)
    return uow


def ev(data: EventData, subject: str) -> Event[Any]:
    return incoming(data, subject)


async def test_a_batch_of_payments_and_a_refund_lands_exactly() -> None:
    board = InMemoryBoard()
    refund_time = datetime(2022, 7, 2, 0, 0, 1, tzinfo=TZ)  # just after midnight: the next day
    uow = await run(
        board,
        "orders.lifecycle",
        ev(paid("o-1", 1000), "o-1"),
        ev(paid("o-2", 500, product="p-2"), "o-2"),
        at(ev(OrderRefunded(order_id="o-1", refund_fen=250), "o-1"), refund_time),
    )
    assert uow.emitted == []  # a read model publishes nothing
    assert board.day("live", "s-1", "2022-07-01") == Figures(gmv_fen=1500, orders=2)
    assert board.day("creator", "c-1", "2022-07-02") == Figures(refunds_fen=250)
    assert board.sales["s-1", "p-1"] == {
        "gmv_fen": 1000,
        "orders": 1,
        "units": 1,
        "refunds_fen": 250,
    }


async def test_a_second_payment_for_the_same_order_adds_nothing() -> None:
    board = InMemoryBoard()
    await run(board, "orders.lifecycle", ev(paid("o-1", 1000), "o-1"))
    # A new event id for the same order (upstream resent it): the order is already paid.
    await run(board, "orders.lifecycle", ev(paid("o-1", 1000), "o-1"))
    assert board.day("merchant", "m-1", "2022-07-01") == Figures(gmv_fen=1000, orders=1)


async def test_refund_and_commission_before_the_payment_in_later_batches() -> None:
    board = InMemoryBoard()
    t = datetime(2022, 7, 1, 12, 5, tzinfo=TZ)
    accrued = CommissionAccrued(
        order_id="o-1",
        offer_id="of-1",
        creator_id="c-1",
        merchant_id="m-1",
        commission_fen=100,
        amount_fen=1000,
        commission_bps=1000,
    )
    await run(board, "distribution.commissions", at(ev(accrued, "o-1"), t))
    await run(
        board, "orders.lifecycle", at(ev(OrderRefunded(order_id="o-1", refund_fen=1000), "o-1"), t)
    )
    assert board.day("live", "s-1", "2022-07-01") == Figures()
    assert board.day("creator", "c-1", "2022-07-01") == Figures(commission_accrued_fen=100)
    await run(board, "orders.lifecycle", ev(paid("o-1", 1000), "o-1"))
    assert board.day("live", "s-1", "2022-07-01") == Figures(
        gmv_fen=1000, orders=1, refunds_fen=1000, commission_accrued_fen=100
    )
    assert board.day("creator", "c-1", "2022-07-01") == Figures(
        gmv_fen=1000, orders=1, refunds_fen=1000, commission_accrued_fen=100
    )


async def test_live_rooms_set_and_clear_the_product_presented() -> None:
    board = InMemoryBoard()
    t0 = datetime(2022, 7, 1, 20, 0, tzinfo=TZ)
    started = LiveSessionStarted(creator_id="c-1", session_id="s-1", title="Tea night")
    explain = LiveItemExplaining(creator_id="c-1", session_id="s-1", product_id="p-1")
    await run(
        board,
        "live.rooms",
        at(ev(started, "c-1"), t0),
        at(ev(explain, "c-1"), t0.replace(minute=5)),
    )
    session = board.sessions["s-1"]
    assert (session.title, session.status, session.explaining) == ("Tea night", "live", "p-1")
    removed = LiveItemRemoved(creator_id="c-1", session_id="s-1", product_id="p-1")
    await run(board, "live.rooms", at(ev(removed, "c-1"), t0.replace(minute=6)))
    assert board.sessions["s-1"].explaining is None
    ended = LiveSessionEnded(creator_id="c-1", session_id="s-1", items=3)
    await run(board, "live.rooms", at(ev(ended, "c-1"), t0.replace(minute=30)))
    assert board.sessions["s-1"].status == "ended"


async def test_policies_are_folded_and_only_acted_on_types_are_listed() -> None:
    board = InMemoryBoard()
    accepted = PolicyAccepted.model_validate(
        {
            "policy_id": "pol-1",
            "title": "t",
            "effective_at": NOON,
            "rules": [{"kind": "require_shop", "surfaces": ["live"], "shop_kind": "channels_shop"}],
        }
    )
    await run(board, "compliance.rulings", ev(accepted, "pol-1"))
    assert board.policies["pol-1"].enforcers == ["live"]
    assert "order.completed" not in ACTS_ON["orders.lifecycle"]
    assert "commission.refused" not in ACTS_ON["distribution.commissions"]
