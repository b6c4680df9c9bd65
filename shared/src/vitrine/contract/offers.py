"""The offer as a placing service projects it from ``distribution.offers``. Pure, no I/O.

Showcase and live both let a creator place goods through an offer, hold what was taken
through it while it is unavailable, and refuse an addition through an offer that is not
(DESIGN.md §3, §4). They read the same events and must judge them alike, so the projection,
its folding and the refusal reasons live here once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vitrine.contract.events.base import Reason
from vitrine.contract.events.offers import (
    OfferActivated,
    OfferRefused,
    OfferRestored,
    OfferSuspended,
    OfferWithdrawn,
)

__all__ = ["Offer", "OfferEvent", "offer_after", "offer_reasons"]

#: What ``distribution.offers`` carries.
OfferEvent = OfferActivated | OfferWithdrawn | OfferSuspended | OfferRestored | OfferRefused


@dataclass(frozen=True)
class Offer:
    """An offer as distribution published it; active unless withdrawn or suspended."""

    offer_id: str
    product_id: str
    merchant_id: str
    plan: str
    creator_ids: frozenset[str] = frozenset()
    withdrawn: bool = False
    suspended: bool = False

    @property
    def active(self) -> bool:
        return not (self.withdrawn or self.suspended)

    def names(self, creator_id: str) -> bool:
        """Whether the creator is on the offer's plan (a general plan names everyone)."""
        return self.plan != "targeted" or creator_id in self.creator_ids

    def available_to(self, creator_id: str) -> bool:
        """Whether the creator may sell through the offer now."""
        return self.active and self.names(creator_id)


def offer_after(data: OfferEvent, known: Offer | None) -> Offer | None:
    """The projection after one ``distribution.offers`` event (``None``: unchanged).

    A suspension or restoration of an offer never seen is ignored (its activation brings the
    terms); a withdrawal is recorded even then, so a late activation cannot revive it.
    """
    match data:
        case OfferActivated():  # published or re-published: new terms, maybe revived
            return Offer(
                data.offer_id,
                data.product_id,
                data.merchant_id,
                data.plan,
                frozenset(data.creator_ids),
                suspended=known.suspended if known else False,
            )
        case OfferWithdrawn():
            base = known or Offer(data.offer_id, data.product_id, data.merchant_id, "general")
            return replace(base, withdrawn=True)
        case OfferSuspended() if known is not None:
            return replace(known, suspended=True)
        case OfferRestored() if known is not None:
            return replace(known, suspended=False)
    return None  # offer.refused: nothing changed on the offer


def offer_reasons(
    offer: Offer | None,
    offer_id: str,
    product_id: str,
    creator_id: str,
    *,
    creator: str | None = None,
) -> list[Reason]:
    """Why ``creator_id`` may not place ``product_id`` through offer ``offer_id`` (empty: it
    may): ``offer_not_available`` (unknown, not active, or for another product) and
    ``not_in_targeted_plan``. ``creator`` is how the message names the creator (default: its
    id)."""
    reasons: list[Reason] = []
    if offer is None or not offer.active or offer.product_id != product_id:
        why = (
            "is unknown"
            if offer is None
            else "is not active"
            if not offer.active
            else f"is for product {offer.product_id}"
        )
        reasons.append(
            Reason(code="offer_not_available", message=f"offer {offer_id} {why}", field="offer_id")
        )
    if offer is not None and not offer.names(creator_id):
        reasons.append(
            Reason(
                code="not_in_targeted_plan",
                message=f"offer {offer_id} is a targeted plan that does not name "
                f"{creator or creator_id}",
                field="offer_id",
            )
        )
    return reasons
