"""Offers: ``merchants.offers`` (merchants' plans) and ``distribution.offers`` (outputs)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field

from vitrine.contract.events.base import Bps, EventData, Id
from vitrine.contract.events.common import Code, CreatorIds, ReasonList

Plan = Literal["general", "targeted"]
#: A rate as published, before distribution judges it (``invalid_commission`` outside 100–9000).
RequestedBps = Annotated[int, Field(ge=-(10**6), le=10**6)]

# --- merchants.offers (inputs) -----------------------------------------------------------------


class OfferPublished(EventData):
    """Publish an offer, or change its terms when the ``offer_id`` exists."""

    event_type: ClassVar[str] = "offer.published"

    offer_id: Id
    product_id: Id
    merchant_id: Id
    commission_bps: RequestedBps
    plan: Plan
    creator_ids: CreatorIds = Field(default_factory=list)


class OfferWithdrawRequested(EventData):
    """The merchant withdraws an offer (input ``offer.withdrawn`` on merchants.offers)."""

    event_type: ClassVar[str] = "offer.withdrawn"

    offer_id: Id
    merchant_id: Id


# --- distribution.offers (outputs) -------------------------------------------------------------


class OfferActivated(EventData):
    """An offer's terms, and when they take effect (a cut waits for 00:00 Asia/Shanghai)."""

    event_type: ClassVar[str] = "offer.activated"

    offer_id: Id
    product_id: Id
    merchant_id: Id
    commission_bps: Bps
    plan: Plan
    creator_ids: CreatorIds = Field(default_factory=list)
    effective_at: AwareDatetime


class OfferRefused(EventData):
    """A publish (or withdraw) was refused. ``product_id`` is absent when it is not known."""

    event_type: ClassVar[str] = "offer.refused"

    offer_id: Id
    product_id: Id | None = None
    merchant_id: Id
    reasons: ReasonList = Field(default_factory=list)
    #: The refused command (``offer.published`` / ``offer.withdrawn``), when it is not a publish.
    command: Code | None = None


class OfferSuspended(EventData):
    event_type: ClassVar[str] = "offer.suspended"

    offer_id: Id
    product_id: Id
    merchant_id: Id
    reason: Code
    policy_id: Id | None = None


class OfferRestored(EventData):
    event_type: ClassVar[str] = "offer.restored"

    offer_id: Id
    product_id: Id
    merchant_id: Id
    policy_id: Id | None = None
    reason: Code | None = None


class OfferWithdrawn(EventData):
    """Distribution ended an offer (output ``offer.withdrawn`` on distribution.offers)."""

    event_type: ClassVar[str] = "offer.withdrawn"

    offer_id: Id
    product_id: Id
    merchant_id: Id
    reason: Code | None = None
