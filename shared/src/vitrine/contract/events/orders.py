"""``orders.lifecycle``: orders as the order system reports them."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime

from vitrine.contract.events.base import EventData, Fen, Id


class OrderPaid(EventData):
    event_type: ClassVar[str] = "order.paid"

    order_id: Id
    product_id: Id
    merchant_id: Id
    amount_fen: Fen
    creator_id: Id | None = None
    offer_id: Id | None = None
    paid_at: AwareDatetime


class OrderCompleted(EventData):
    """The after-sales window closed: commissions settle."""

    event_type: ClassVar[str] = "order.completed"

    order_id: Id


class OrderRefunded(EventData):
    """A partial or full refund of ``refund_fen``."""

    event_type: ClassVar[str] = "order.refunded"

    order_id: Id
    refund_fen: Fen
