"""A creator's showcase (橱窗), the rules that decide what may be in it, and the state
machine of its items' suspensions.

Pure: no I/O. Every function that changes state returns a
:class:`vitrine.runtime.decision.Decision` (the new state and the events to publish); the
handlers only load, call the domain, save and emit.

**Holds.** An item is *active* when no cause holds it. The causes are a set:
``product_delisted`` and ``sold_out`` (the catalog), ``offer_unavailable`` (its offer is
withdrawn or suspended, or the creator is no longer on its targeted plan) and
``policy:<policy_id>`` (one per policy that bars it). Each cause adds and removes only
itself (:func:`change_holds`): the first cause suspends the item (``showcase.item_suspended``
with that reason, and ``policy_id`` for a policy); each further cause is announced the same
way while the item stays suspended; ``showcase.item_restored`` comes only when the last cause
goes, naming it (DESIGN.md §4).

**Policies** are judged by :mod:`vitrine.contract.policy_kernel` on surface ``showcase``: the
creator is the account using the surface. Additions are refused by every policy in force
(``block_new`` or later); existing items are held by policies in phase ``enforce_existing``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal

from vitrine.contract import holds as hold_set
from vitrine.contract import policy_kernel
from vitrine.contract.events import (
    EventData,
    ItemAdded,
    ItemMoved,
    ItemRefused,
    ItemRemoved,
    ItemRestored,
    ItemSuspended,
    Reason,
    ShowcaseAddRequested,
    ShowcaseMoveRequested,
    ShowcaseRemoveRequested,
    Source,
)

# The causes are shared with live's cart items (re-exported: showcase's names too).
from vitrine.contract.holds import HOLD_DELISTED as HOLD_DELISTED
from vitrine.contract.holds import HOLD_OFFER as HOLD_OFFER
from vitrine.contract.holds import HOLD_SOLD_OUT as HOLD_SOLD_OUT
from vitrine.contract.holds import hold_reason as hold_reason
from vitrine.contract.holds import policy_hold as policy_hold
from vitrine.contract.listings import Product as Product  # the projection live keeps too
from vitrine.contract.offers import Offer as Offer  # the projection live keeps too
from vitrine.contract.offers import offer_reasons
from vitrine.contract.policy_kernel import Account as Account  # showcase's accounts too
from vitrine.contract.policy_kernel import Placement
from vitrine.contract.policy_kernel import Shop as Shop
from vitrine.runtime.decision import Decision, Emit

#: A creator's showcase holds at most this many items, suspended ones included.
MAX_ITEMS = 500
SURFACE: Final = "showcase"


def item_key(creator_id: str, product_id: str) -> str:
    """The ``_id`` of an item. ``/`` cannot occur in ids (DESIGN.md §2), so keys never collide
    (``:`` can: creator ``a:b`` + product ``c`` and creator ``a`` + product ``b:c``)."""
    return f"{creator_id}/{product_id}"


# --- projections of other services' facts --------------------------------------------------


Phase = Literal["block_new", "enforce_existing"]


@dataclass(frozen=True)
class Policy(policy_kernel.PolicyState):
    """A ruling as compliance put it in force; lifted policies are kept as tombstones
    (:class:`vitrine.contract.policy_kernel.PolicyState`)."""

    @property
    def hold(self) -> str:
        return policy_hold(self.policy_id)

    def source_candidates(self) -> list[Source]:
        """The sources its ``disallow_source`` rules on showcase match (for indexed finds)."""
        return [
            Source(kind=m.kind, platform=m.platform)
            for r in self.rules
            if r.kind == "disallow_source" and r.applies_to(SURFACE)
            for m in r.sources
        ]

    def requires_shop(self) -> bool:
        return any(r.kind == "require_shop" and r.applies_to(SURFACE) for r in self.rules)


def placement(
    *, source: Source | None, merchant_id: str, creator: Account | None, merchant: Account | None
) -> Placement:
    """A product of ``merchant_id`` from ``source`` in ``creator``'s showcase."""
    return Placement(SURFACE, merchant_id, source, merchant=merchant, account=creator)


def lacks_required_shop(policy: Policy, creator: Account | None) -> bool:
    """Whether the creator fails a ``require_shop`` rule of the policy (before the per-item
    merchant exemption): whose items an enforcement sweep must look at."""
    where = placement(source=None, merchant_id="", creator=creator, merchant=None)
    return bool(policy_kernel.unmet_shop_rules(policy, where))


def bars(policy: Policy, item: Item, creator: Account | None, merchant: Account | None) -> bool:
    """Whether ``policy`` bars an existing item (the kernel decides; exemptions applied)."""
    where = placement(
        source=item.source, merchant_id=item.merchant_id, creator=creator, merchant=merchant
    )
    return policy_kernel.bars(policy, where)


# --- the showcase ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One product in one creator's showcase (one document, ``_id`` = :func:`item_key`)."""

    creator_id: str
    product_id: str
    merchant_id: str
    source: Source
    position: int
    #: The causes holding the item suspended (empty: active).
    holds: frozenset[str] = frozenset()
    offer_id: str | None = None

    @property
    def key(self) -> str:
        return item_key(self.creator_id, self.product_id)

    @property
    def active(self) -> bool:
        return not self.holds


def _renumber(items: Iterable[Item]) -> list[Item]:
    return [it if it.position == i else replace(it, position=i) for i, it in enumerate(items)]


@dataclass(frozen=True)
class Showcase:
    """A creator's items in order (positions dense ``0..n-1``, suspended items included)."""

    creator_id: str
    items: tuple[Item, ...] = ()

    @staticmethod
    def of(creator_id: str, items: Iterable[Item]) -> Showcase:
        return Showcase(creator_id, tuple(_renumber(sorted(items, key=lambda i: i.position))))

    def find(self, product_id: str) -> Item | None:
        return next((i for i in self.items if i.product_id == product_id), None)

    def __len__(self) -> int:
        return len(self.items)

    def append(self, item: Item) -> Showcase:
        return replace(self, items=(*self.items, replace(item, position=len(self.items))))

    def remove(self, product_id: str) -> Showcase:
        return replace(
            self, items=tuple(_renumber(i for i in self.items if i.product_id != product_id))
        )

    def move(self, product_id: str, position: int) -> tuple[Showcase, int]:
        """Move an item to ``position`` (clamped to the end); returns where it landed."""
        item = self.find(product_id)
        if item is None:
            raise KeyError(product_id)
        rest = [i for i in self.items if i.product_id != product_id]
        at = min(position, len(rest))
        rest.insert(at, item)
        return replace(self, items=tuple(_renumber(rest))), at


# --- holds: the suspension state machine ------------------------------------------------------


def _suspended(item: Item, hold: str) -> Emit:
    reason, policy_id = hold_reason(hold)
    data = ItemSuspended(
        creator_id=item.creator_id, product_id=item.product_id, reason=reason, policy_id=policy_id
    )
    return Emit(data, item.creator_id, key=f"suspended:{item.key}:{hold}")


def _restored(item: Item, hold: str) -> Emit:
    reason, policy_id = hold_reason(hold)
    data = ItemRestored(
        creator_id=item.creator_id, product_id=item.product_id, reason=reason, policy_id=policy_id
    )
    return Emit(data, item.creator_id, key=f"restored:{item.key}")


def change_holds(
    item: Item, *, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> Decision[Item]:
    """Add and release causes (``add`` first, then ``remove``; each only itself).

    Each cause added is announced (``item_suspended``: the first suspends the item, later ones
    say what else holds it); ``item_restored`` only when the last cause goes, naming it.
    Nothing changes: ``ignored`` ``"unchanged"``.
    """
    changed = hold_set.change(item.holds, add=add, remove=remove)
    if changed is None:
        return Decision.ignore(item, "unchanged")
    emits = [_suspended(item, h) for h in changed.suspended]
    if changed.restored_by is not None:
        emits.append(_restored(item, changed.restored_by))
    return Decision(replace(item, holds=changed.holds), emits)


def set_hold(item: Item, hold: str, held: bool) -> Decision[Item]:
    """Make ``hold`` present (``held``) or absent on the item."""
    return change_holds(item, add=[hold]) if held else change_holds(item, remove=[hold])


def product_delisted(item: Item) -> Decision[Item]:
    return change_holds(item, add=[HOLD_DELISTED])


def product_listed(
    item: Item,
    product: Product,
    *,
    policies: Iterable[Policy] = (),
    creator: Account | None = None,
    merchant: Account | None = None,
) -> Decision[Item]:
    """The product is (re)listed, maybe from another source: the item takes the new
    version's merchant and source, the policies enforcing now are judged again (holds first),
    then the delisting is released — so it is restored only if nothing holds it."""
    moved = replace(item, merchant_id=product.merchant_id, source=product.source)
    add: list[str] = []
    remove: list[str] = []
    for policy in sorted(policies, key=lambda p: p.policy_id):
        if policy.enforcing:
            (add if bars(policy, moved, creator, merchant) else remove).append(policy.hold)
    decision = change_holds(moved, add=add, remove=[*remove, HOLD_DELISTED])
    if decision.ignored and moved != item:
        return Decision(moved)  # the new source is to be saved, nothing to announce
    return decision


def stock_changed(item: Item, *, sold_out: bool) -> Decision[Item]:
    """``product.sold_out`` holds the item with ``sold_out``; ``product.back_in_stock``
    releases it."""
    return set_hold(item, HOLD_SOLD_OUT, sold_out)


def offer_changed(item: Item, offer: Offer) -> Decision[Item]:
    """An item taken through ``offer`` is held ``offer_unavailable`` exactly while the offer
    is withdrawn or suspended or does not name the creator (a targeted plan re-published
    without them). Items not taken through it are left alone."""
    if item.offer_id != offer.offer_id:
        return Decision.ignore(item, "other_offer")
    return set_hold(item, HOLD_OFFER, not offer.available_to(item.creator_id))


def rejudge(
    item: Item,
    policies: Iterable[Policy],
    creator: Account | None,
    merchant: Account | None,
) -> Decision[Item]:
    """Judge the item again by every policy enforcing now (its creator's shops changed:
    ``shop.closed`` may hold it for ``require_shop``, ``shop.registered`` may release it)."""
    add: list[str] = []
    remove: list[str] = []
    for policy in sorted(policies, key=lambda p: p.policy_id):
        if policy.enforcing:
            (add if bars(policy, item, creator, merchant) else remove).append(policy.hold)
    return change_holds(item, add=add, remove=remove)


def enforce(
    policy: Policy, item: Item, creator: Account | None, merchant: Account | None
) -> Decision[Item] | None:
    """``enforce_existing`` on one item: ``None`` when the policy does not bar it, else the
    decision to hold it (ignored when the policy already holds it)."""
    if not bars(policy, item, creator, merchant):
        return None
    return change_holds(item, add=[policy.hold])


def lift(policy_id: str, item: Item) -> Decision[Item]:
    """``policy.lifted``: release exactly this policy's cause."""
    return change_holds(item, remove=[policy_hold(policy_id)])


# --- creators' requests ------------------------------------------------------------------------


@dataclass(frozen=True)
class AddContext:
    """Everything an addition is judged against (from the service's projections)."""

    product: Product | None
    creator: Account | None
    merchant: Account | None
    offer: Offer | None
    policies: Sequence[Policy]


def _where(source: Source) -> str:
    return source.kind + (f"/{source.platform}" if source.platform else "")


def refusal_reasons(
    showcase: Showcase,
    product_id: str,
    offer_id: str | None,
    ctx: AddContext,
) -> list[Reason]:
    """Every reason the addition is not allowed (empty: allowed). DESIGN.md §3 codes."""
    reasons: list[Reason] = []
    product = ctx.product
    if product is None or not product.listed:
        reasons.append(
            Reason(code="product_not_listed", message=f"product {product_id} is not on sale")
        )
    where = placement(
        source=product.source if product else None,
        merchant_id=product.merchant_id if product else "",
        creator=ctx.creator,
        merchant=ctx.merchant,
    )
    for policy in ctx.policies:
        if not policy.in_force:
            continue
        for breach in policy_kernel.breaches(policy, where):
            if breach.rule.kind == "require_shop":
                message = f"a {breach.rule.shop_kind} shop is required to use the showcase"
                field_: str | None = None
            else:
                assert product is not None  # a source rule needs a source
                message = f"goods from {_where(product.source)} may not be added to a showcase"
                field_ = "source"
            reasons.append(
                Reason(code=breach.code, message=message, field=field_, policy_id=breach.policy_id)
            )
    if len(showcase) >= MAX_ITEMS:
        reasons.append(
            Reason(code="showcase_full", message=f"a showcase holds at most {MAX_ITEMS} items")
        )
    if offer_id is not None:
        reasons += offer_reasons(
            ctx.offer, offer_id, product_id, showcase.creator_id, creator="this creator"
        )
    return reasons


def add(showcase: Showcase, cmd: ShowcaseAddRequested, ctx: AddContext) -> Decision[Showcase]:
    """Append the product, or refuse with every reason; already there: ignored.

    A sold-out product is not refused (DESIGN.md §3 has no such code for showcases): the item
    is added and held ``sold_out`` at once (``item_added`` then ``item_suspended``), and
    ``product.back_in_stock`` releases it like any other."""
    if showcase.find(cmd.product_id) is not None:
        return Decision.ignore(showcase, "already_in_showcase")
    reasons = refusal_reasons(showcase, cmd.product_id, cmd.offer_id, ctx)
    product = ctx.product
    if reasons or product is None:
        refusal = ItemRefused(
            creator_id=cmd.creator_id,
            product_id=cmd.product_id,
            offer_id=cmd.offer_id,
            reasons=reasons,
        )
        return Decision.refuse(showcase, reasons, Emit(refusal, cmd.creator_id))
    item = Item(
        creator_id=cmd.creator_id,
        product_id=cmd.product_id,
        merchant_id=product.merchant_id,
        source=product.source,
        position=len(showcase),
        offer_id=cmd.offer_id,
        holds=frozenset({HOLD_SOLD_OUT}) if product.sold_out else frozenset(),
    )
    added = ItemAdded(
        creator_id=cmd.creator_id,
        product_id=cmd.product_id,
        offer_id=cmd.offer_id,
        position=item.position,
    )
    emits = [Emit(added, cmd.creator_id)]
    emits += [_suspended(item, hold) for hold in sorted(item.holds)]
    return Decision(showcase.append(item), emits)


def remove(showcase: Showcase, cmd: ShowcaseRemoveRequested) -> Decision[Showcase]:
    if showcase.find(cmd.product_id) is None:
        return Decision.ignore(showcase, "not_in_showcase")
    removed = ItemRemoved(creator_id=cmd.creator_id, product_id=cmd.product_id, reason="requested")
    return Decision(showcase.remove(cmd.product_id), [Emit(removed, cmd.creator_id)])


def move(showcase: Showcase, cmd: ShowcaseMoveRequested) -> Decision[Showcase]:
    current = showcase.find(cmd.product_id)
    if current is None:
        return Decision.ignore(showcase, "not_in_showcase")
    moved, at = showcase.move(cmd.product_id, cmd.position)
    if at == current.position:
        return Decision.ignore(showcase, "already_there")
    event = ItemMoved(creator_id=cmd.creator_id, product_id=cmd.product_id, position=at)
    return Decision(moved, [Emit(event, cmd.creator_id)])


def events_of(decisions: Iterable[Decision[object]]) -> list[EventData]:
    """The events of several decisions, in order (for tests and logs)."""
    return [e for d in decisions for e in d.events]
