"""``orders.lifecycle``: orders as the order system reports them."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field

from vitrine.contract.events.base import EventData, Fen, Id

#: Units bought in one order line.
Quantity = Annotated[int, Field(ge=1, le=10**6)]


class OrderPaid(EventData):
    """An order paid at ``paid_at``.

    ``live_session_id`` names the live session the order was placed in (absent: not in a
    live room), ``quantity`` the units bought (absent: 1) and ``sku_id`` the variant; all
    three are optional and additive (older producers omit them).
    """

    event_type: ClassVar[str] = "order.paid"

    order_id: Id
    product_id: Id
    merchant_id: Id
    amount_fen: Fen
    creator_id: Id | None = None
    offer_id: Id | None = None
    paid_at: AwareDatetime
    live_session_id: Id | None = None
    quantity: Quantity | None = None
    sku_id: Id | None = None


class OrderCompleted(EventData):
    """The after-sales window closed: commissions settle."""

    event_type: ClassVar[str] = "order.completed"

    order_id: Id


class OrderRefunded(EventData):
    """A partial or full refund of ``refund_fen``."""

    event_type: ClassVar[str] = "order.refunded"

    order_id: Id
    refund_fen: Fen
