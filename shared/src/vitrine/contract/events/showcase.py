"""Showcases: ``creators.showcase`` (creators' requests) and ``showcase.items`` (outputs)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from vitrine.contract.events.base import EventData, Id
from vitrine.contract.events.common import Code, Position, ReasonList

# --- creators.showcase (inputs) ----------------------------------------------------------------


class ShowcaseAddRequested(EventData):
    event_type: ClassVar[str] = "showcase.add_requested"

    creator_id: Id
    product_id: Id
    offer_id: Id | None = None


class ShowcaseRemoveRequested(EventData):
    event_type: ClassVar[str] = "showcase.remove_requested"

    creator_id: Id
    product_id: Id


class ShowcaseMoveRequested(EventData):
    event_type: ClassVar[str] = "showcase.move_requested"

    creator_id: Id
    product_id: Id
    position: Position


# --- showcase.items (outputs) ------------------------------------------------------------------


class ItemAdded(EventData):
    event_type: ClassVar[str] = "showcase.item_added"

    creator_id: Id
    product_id: Id
    offer_id: Id | None = None
    position: Position


class ItemRefused(EventData):
    event_type: ClassVar[str] = "showcase.item_refused"

    creator_id: Id
    product_id: Id
    offer_id: Id | None = None
    reasons: ReasonList = Field(default_factory=list)


class ItemRemoved(EventData):
    event_type: ClassVar[str] = "showcase.item_removed"

    creator_id: Id
    product_id: Id
    reason: Code | None = None


class ItemMoved(EventData):
    event_type: ClassVar[str] = "showcase.item_moved"

    creator_id: Id
    product_id: Id
    position: Position


class ItemSuspended(EventData):
    """``reason``: ``product_delisted`` | ``policy`` | …; a policy suspension names the policy."""

    event_type: ClassVar[str] = "showcase.item_suspended"

    creator_id: Id
    product_id: Id
    reason: Code
    policy_id: Id | None = None


class ItemRestored(EventData):
    event_type: ClassVar[str] = "showcase.item_restored"

    creator_id: Id
    product_id: Id
    policy_id: Id | None = None
    reason: Code | None = None
