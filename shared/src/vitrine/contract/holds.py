"""The hold set: why a placed product (a showcase item, a live cart item) is suspended.

Pure, no I/O; shared by every service whose items follow the catalog, the offers and the
policies (DESIGN.md §4), so that they suspend and restore alike.

An item is *active* when no cause holds it. The causes are a set: ``product_delisted`` and
``sold_out`` (the catalog), ``offer_unavailable`` (its offer is withdrawn or suspended, or the
creator is no longer on its targeted plan) and ``policy:<policy_id>`` (one per policy that
bars it). Each cause adds and releases only itself (:func:`change`): every cause added is
announced (``*.item_suspended`` with its reason, and ``policy_id`` for a policy: the first
suspends the item, later ones say what else holds it); ``*.item_restored`` comes only when
the last cause goes, naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "HOLD_DELISTED",
    "HOLD_OFFER",
    "HOLD_POLICY",
    "HOLD_SOLD_OUT",
    "HoldChange",
    "change",
    "hold_reason",
    "policy_hold",
]

HOLD_DELISTED = "product_delisted"
HOLD_SOLD_OUT = "sold_out"
HOLD_OFFER = "offer_unavailable"
#: The ``reason`` of a policy's hold (the event carries ``policy_id`` beside it).
HOLD_POLICY = "policy"
_POLICY_PREFIX = HOLD_POLICY + ":"


def policy_hold(policy_id: str) -> str:
    """The cause a policy puts on the items it bars."""
    return _POLICY_PREFIX + policy_id


def hold_reason(hold: str) -> tuple[str, str | None]:
    """``(reason, policy_id)`` of a cause, as ``item_suspended``/``item_restored`` carry them."""
    if hold.startswith(_POLICY_PREFIX):
        return HOLD_POLICY, hold[len(_POLICY_PREFIX) :]
    return hold, None


@dataclass(frozen=True)
class HoldChange:
    """What adding and releasing causes did to a hold set.

    ``holds``: the set after; ``suspended``: the causes added, in order (each announced);
    ``restored_by``: the cause whose release left the set empty (announce the restoration).
    """

    holds: frozenset[str]
    suspended: tuple[str, ...]
    restored_by: str | None


def change(
    holds: frozenset[str], *, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> HoldChange | None:
    """Add and release causes (``add`` first, then ``remove``; each only itself).

    ``None`` when the set does not change.
    """
    added = [h for h in dict.fromkeys(add) if h not in holds]
    held = holds | set(added)
    released = [h for h in dict.fromkeys(remove) if h in held]
    after = held - set(released)
    if after == holds:
        return None
    restored_by = released[-1] if holds and not after else None
    return HoldChange(frozenset(after), tuple(h for h in added if h in after), restored_by)
