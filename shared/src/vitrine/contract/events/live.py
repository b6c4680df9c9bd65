"""Live rooms (直播间): ``creators.live`` (creators' requests) and ``live.rooms`` (outputs).

A creator opens one live session at a time, puts products in its cart (小黄车), presents one
at a time (讲解) and ends it. Every output carries ``creator_id`` and ``session_id``, and
``product_id`` for items (DESIGN.md §3).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from vitrine.contract.events.base import EventData, Id, ShortText
from vitrine.contract.events.common import Code, Count, Position, ReasonList

# --- creators.live (inputs) --------------------------------------------------------------------


class LiveStartRequested(EventData):
    """Open a live session (one open session per creator)."""

    event_type: ClassVar[str] = "live.start_requested"

    creator_id: Id
    session_id: Id
    title: ShortText


class LiveAddRequested(EventData):
    """Put a product in the session's cart, from the showcase or through ``offer_id``."""

    event_type: ClassVar[str] = "live.add_requested"

    creator_id: Id
    session_id: Id
    product_id: Id
    offer_id: Id | None = None


class LiveRemoveRequested(EventData):
    event_type: ClassVar[str] = "live.remove_requested"

    creator_id: Id
    session_id: Id
    product_id: Id


class LiveExplainRequested(EventData):
    """Present this cart item now (one at a time: it replaces the one being presented)."""

    event_type: ClassVar[str] = "live.explain_requested"

    creator_id: Id
    session_id: Id
    product_id: Id


class LiveEndRequested(EventData):
    event_type: ClassVar[str] = "live.end_requested"

    creator_id: Id
    session_id: Id


# --- live.rooms (outputs) ----------------------------------------------------------------------


class LiveSessionStarted(EventData):
    event_type: ClassVar[str] = "live.session_started"

    creator_id: Id
    session_id: Id
    title: ShortText


class LiveSessionRefused(EventData):
    """A start or end request not allowed; ``command`` is the refused request's type."""

    event_type: ClassVar[str] = "live.session_refused"

    creator_id: Id
    session_id: Id
    command: Code | None = None
    reasons: ReasonList = Field(default_factory=list)


class LiveItemAdded(EventData):
    event_type: ClassVar[str] = "live.item_added"

    creator_id: Id
    session_id: Id
    product_id: Id
    offer_id: Id | None = None
    position: Position


class LiveItemRefused(EventData):
    """An add, remove or explain request not allowed; ``command`` is the refused type."""

    event_type: ClassVar[str] = "live.item_refused"

    creator_id: Id
    session_id: Id
    product_id: Id
    offer_id: Id | None = None
    command: Code | None = None
    reasons: ReasonList = Field(default_factory=list)


class LiveItemRemoved(EventData):
    event_type: ClassVar[str] = "live.item_removed"

    creator_id: Id
    session_id: Id
    product_id: Id
    reason: Code | None = None


class LiveItemExplaining(EventData):
    """The product being presented now (讲解)."""

    event_type: ClassVar[str] = "live.item_explaining"

    creator_id: Id
    session_id: Id
    product_id: Id


class LiveItemSuspended(EventData):
    """``reason``: ``product_delisted`` | ``sold_out`` | ``offer_unavailable`` | ``policy``."""

    event_type: ClassVar[str] = "live.item_suspended"

    creator_id: Id
    session_id: Id
    product_id: Id
    reason: Code
    policy_id: Id | None = None


class LiveItemRestored(EventData):
    """The last cause holding the item went away (``reason``/``policy_id``: that cause)."""

    event_type: ClassVar[str] = "live.item_restored"

    creator_id: Id
    session_id: Id
    product_id: Id
    reason: Code | None = None
    policy_id: Id | None = None


class LiveSessionEnded(EventData):
    """The session ended; ``items`` is how many products its cart held at the end."""

    event_type: ClassVar[str] = "live.session_ended"

    creator_id: Id
    session_id: Id
    items: Count
