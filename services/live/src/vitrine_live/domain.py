"""A creator's live room (直播间): sessions, their carts (小黄车) and what may enter them.

Pure: no I/O. Every function that changes state returns a
:class:`vitrine.runtime.decision.Decision` (the session after it and the events to publish);
the handlers only load, call the domain, save and emit.

**Entry** (DESIGN.md §4): the showcase is the entry for selling in a live stream, so a
product enters a cart only if it is active in the creator's showcase or taken through an
active offer the creator may use; and only if it is listed, not sold out, allowed on surface
``live`` by every policy in force (judged by :mod:`vitrine.contract.policy_kernel`, the
creator being the account that uses the surface) — at most :data:`MAX_CART` items.

**Holds**: cart items of open sessions follow the catalog, the offer they were taken through
and the policies exactly as showcase items do, through the shared hold set
(:mod:`vitrine.contract.holds`): suspended per cause, restored when none is left. Ended
sessions are history: they follow nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from vitrine.contract import holds as hold_set
from vitrine.contract import policy_kernel
from vitrine.contract.events import (
    LiveAddRequested,
    LiveEndRequested,
    LiveExplainRequested,
    LiveItemAdded,
    LiveItemExplaining,
    LiveItemRefused,
    LiveItemRemoved,
    LiveItemRestored,
    LiveItemSuspended,
    LiveRemoveRequested,
    LiveSessionEnded,
    LiveSessionRefused,
    LiveSessionStarted,
    LiveStartRequested,
    Reason,
    RequireShop,
    Source,
)
from vitrine.contract.holds import HOLD_DELISTED, HOLD_OFFER, HOLD_SOLD_OUT, policy_hold
from vitrine.contract.listings import Product as Product  # the projection showcase keeps too
from vitrine.contract.offers import Offer as Offer  # the projection showcase keeps too
from vitrine.contract.offers import offer_reasons
from vitrine.contract.policy_kernel import Account as Account  # live's accounts too
from vitrine.contract.policy_kernel import Shop as Shop
from vitrine.runtime.decision import Decision, Emit

#: A session's cart holds at most this many items, suspended ones included.
MAX_CART: Final = 500
SURFACE: Final = "live"

Request = (
    LiveStartRequested
    | LiveAddRequested
    | LiveRemoveRequested
    | LiveExplainRequested
    | LiveEndRequested
)
ItemRequest = LiveAddRequested | LiveRemoveRequested | LiveExplainRequested


def showcase_key(creator_id: str, product_id: str) -> str:
    """The key of a showcase item in live's projection (``/`` never occurs in ids)."""
    return f"{creator_id}/{product_id}"


# --- projections of other services' facts ----------------------------------------------------


@dataclass(frozen=True)
class Policy(policy_kernel.PolicyState):
    """A ruling as compliance put it in force; lifted policies are kept as tombstones
    (:class:`vitrine.contract.policy_kernel.PolicyState`)."""

    @property
    def names_live(self) -> bool:
        """Whether a rule applies to surface ``live`` (then live reports its enforcement)."""
        return any(r.applies_to(SURFACE) for r in self.rules)

    @property
    def hold(self) -> str:
        return policy_hold(self.policy_id)


# --- sessions and carts ------------------------------------------------------------------------


@dataclass(frozen=True)
class CartItem:
    """One product in a session's cart."""

    product_id: str
    merchant_id: str
    source: Source | None
    position: int
    offer_id: str | None = None
    #: The causes holding the item suspended (empty: active).
    holds: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return not self.holds


@dataclass(frozen=True)
class Session:
    """A live session (one document): open until ended, its cart in order."""

    session_id: str
    creator_id: str
    title: str
    open: bool = True
    items: tuple[CartItem, ...] = ()
    explaining: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None

    def find(self, product_id: str) -> CartItem | None:
        return next((i for i in self.items if i.product_id == product_id), None)

    def put(self, item: CartItem) -> Session:
        """The session with ``item`` replacing the cart item of the same product."""
        items = tuple(item if i.product_id == item.product_id else i for i in self.items)
        return replace(self, items=items)


def placement(
    item: CartItem | Product, creator: Account | None, merchant: Account | None
) -> policy_kernel.Placement:
    """Goods of ``item`` put on surface ``live`` by ``creator``."""
    return policy_kernel.Placement(
        SURFACE, item.merchant_id, item.source, merchant=merchant, account=creator
    )


# --- requests ----------------------------------------------------------------------------------


def _reason(code: str, message: str, field_: str | None = None) -> Reason:
    return Reason(code=code, message=message, field=field_)


def _refuse_item(cmd: ItemRequest, creator_id: str, reasons: list[Reason]) -> Emit:
    refusal = LiveItemRefused(
        creator_id=creator_id,
        session_id=cmd.session_id,
        product_id=cmd.product_id,
        offer_id=cmd.offer_id if isinstance(cmd, LiveAddRequested) else None,
        command=cmd.event_type,
        reasons=reasons,
    )
    return Emit(refusal, creator_id)


def _refuse(
    session: Session | None, cmd: Request, creator_id: str, reasons: list[Reason]
) -> Decision[Session | None]:
    if isinstance(cmd, LiveStartRequested | LiveEndRequested):
        refusal = LiveSessionRefused(
            creator_id=creator_id,
            session_id=cmd.session_id,
            command=cmd.event_type,
            reasons=reasons,
        )
        return Decision.refuse(session, reasons, Emit(refusal, creator_id))
    return Decision.refuse(session, reasons, _refuse_item(cmd, creator_id, reasons))


def access(key: str, cmd: Request, session: Session | None) -> list[Reason]:
    """Why a request keyed to creator ``key`` may not touch ``session`` (empty: it may).

    A request naming another creator, or another creator's session, is ``not_session_owner``;
    a request other than a start needs the session open (``session_not_open``).
    """
    if cmd.creator_id != key:
        return [
            _reason(
                "not_session_owner",
                f"a request keyed to {key} may not act for {cmd.creator_id}",
                "creator_id",
            )
        ]
    if session is not None and session.creator_id != key:
        return [
            _reason(
                "not_session_owner",
                f"session {cmd.session_id} is another creator's",
                "session_id",
            )
        ]
    if isinstance(cmd, LiveStartRequested):
        return []
    if session is None or not session.open:
        state = "is unknown" if session is None else "has ended"
        return [_reason("session_not_open", f"session {cmd.session_id} {state}", "session_id")]
    return []


def refuse_foreign(key: str, cmd: Request, session: Session | None) -> Decision[Session | None]:
    """The refusal of a request :func:`access` does not let through (on the requester's key)."""
    return _refuse(session, cmd, key, access(key, cmd, session))


def start(
    session: Session | None, open_session: Session | None, cmd: LiveStartRequested, at: datetime
) -> Decision[Session | None]:
    """Open a session, unless the creator has one open (``session_already_open``) or the
    session_id was used before (an ended session stays ended: ``session_not_open``)."""
    if reasons := access(cmd.creator_id, cmd, session):
        return _refuse(session, cmd, cmd.creator_id, reasons)
    if open_session is not None:
        if open_session.session_id == cmd.session_id:
            return Decision.ignore(session, "already_started")
        reasons = [
            _reason(
                "session_already_open",
                f"session {open_session.session_id} is open: end it first",
                "session_id",
            )
        ]
        return _refuse(session, cmd, cmd.creator_id, reasons)
    if session is not None:
        reasons = [
            _reason(
                "session_not_open",
                f"session {cmd.session_id} has ended: start a new session_id",
                "session_id",
            )
        ]
        return _refuse(session, cmd, cmd.creator_id, reasons)
    new = Session(cmd.session_id, cmd.creator_id, cmd.title, started_at=at)
    started = LiveSessionStarted(
        creator_id=cmd.creator_id, session_id=cmd.session_id, title=cmd.title
    )
    return Decision(new, [Emit(started, cmd.creator_id)])


@dataclass(frozen=True)
class AddContext:
    """Everything an addition is judged against (from the service's projections)."""

    product: Product | None
    creator: Account | None
    merchant: Account | None
    offer: Offer | None
    in_showcase: bool
    policies: Sequence[Policy]


def refusal_reasons(
    session: Session, product_id: str, offer_id: str | None, ctx: AddContext
) -> list[Reason]:
    """Every reason the product may not enter the cart (empty: it may). DESIGN.md §3 codes."""
    reasons: list[Reason] = []
    product = ctx.product
    if product is None or not product.listed:
        reasons.append(_reason("product_not_listed", f"product {product_id} is not on sale"))
    elif product.sold_out:
        reasons.append(_reason("sold_out", f"product {product_id} is sold out"))
    creator_id = session.creator_id
    if offer_id is not None:
        reasons += offer_reasons(ctx.offer, offer_id, product_id, creator_id)
    elif not ctx.in_showcase:
        reasons.append(
            _reason(
                "not_in_showcase",
                f"product {product_id} is not active in {creator_id}'s showcase "
                "(or give the offer_id it is taken through)",
            )
        )
    if product is not None:
        where = placement(product, ctx.creator, ctx.merchant)
        for policy in sorted(ctx.policies, key=lambda p: p.policy_id):
            if not policy.in_force:
                continue
            for breach in policy_kernel.breaches(policy, where):
                if isinstance(breach.rule, RequireShop):
                    message = f"a {breach.rule.shop_kind} shop is required to sell in a live room"
                    field_: str | None = None
                else:
                    message = f"goods from {_where(product.source)} may not enter a live cart"
                    field_ = "source"
                reasons.append(
                    Reason(
                        code=breach.code,
                        message=message,
                        field=field_,
                        policy_id=breach.policy_id,
                    )
                )
    if len(session.items) >= MAX_CART:
        reasons.append(_reason("cart_full", f"a cart holds at most {MAX_CART} items"))
    return reasons


def _where(source: Source | None) -> str:
    if source is None:
        return "an unknown source"
    return source.kind + (f"/{source.platform}" if source.platform else "")


def add(session: Session, cmd: LiveAddRequested, ctx: AddContext) -> Decision[Session]:
    """Append the product to the cart (active), or refuse with every reason."""
    if session.find(cmd.product_id) is not None:
        return Decision.ignore(session, "already_in_cart")
    reasons = refusal_reasons(session, cmd.product_id, cmd.offer_id, ctx)
    product = ctx.product
    if reasons or product is None:
        return Decision.refuse(session, reasons, _refuse_item(cmd, session.creator_id, reasons))
    item = CartItem(
        product_id=cmd.product_id,
        merchant_id=product.merchant_id,
        source=product.source,
        position=len(session.items),
        offer_id=cmd.offer_id,
    )
    added = LiveItemAdded(
        creator_id=session.creator_id,
        session_id=session.session_id,
        product_id=cmd.product_id,
        offer_id=cmd.offer_id,
        position=item.position,
    )
    new = replace(session, items=(*session.items, item))
    return Decision(new, [Emit(added, session.creator_id)])


def _not_in_cart(session: Session, cmd: ItemRequest) -> Decision[Session]:
    reasons = [
        _reason(
            "not_in_cart",
            f"product {cmd.product_id} is not in session {session.session_id}'s cart",
            "product_id",
        )
    ]
    return Decision.refuse(session, reasons, _refuse_item(cmd, session.creator_id, reasons))


def remove(session: Session, cmd: LiveRemoveRequested) -> Decision[Session]:
    """Take the product out of the cart (positions close up; no longer presented)."""
    if session.find(cmd.product_id) is None:
        return _not_in_cart(session, cmd)
    rest = [i for i in session.items if i.product_id != cmd.product_id]
    items = tuple(replace(i, position=n) if i.position != n else i for n, i in enumerate(rest))
    explaining = None if session.explaining == cmd.product_id else session.explaining
    new = replace(session, items=items, explaining=explaining)
    removed = LiveItemRemoved(
        creator_id=session.creator_id,
        session_id=session.session_id,
        product_id=cmd.product_id,
        reason="requested",
    )
    return Decision(new, [Emit(removed, session.creator_id)])


def explain(session: Session, cmd: LiveExplainRequested) -> Decision[Session]:
    """Present this cart item now; it replaces the one presented before."""
    item = session.find(cmd.product_id)
    if item is None:
        return _not_in_cart(session, cmd)
    if not item.active:
        reasons = [
            _reason(
                "item_suspended",
                f"product {cmd.product_id} is suspended in this cart",
                "product_id",
            )
        ]
        return Decision.refuse(session, reasons, _refuse_item(cmd, session.creator_id, reasons))
    if session.explaining == cmd.product_id:
        return Decision.ignore(session, "already_explaining")
    event = LiveItemExplaining(
        creator_id=session.creator_id, session_id=session.session_id, product_id=cmd.product_id
    )
    return Decision(replace(session, explaining=cmd.product_id), [Emit(event, session.creator_id)])


def end(session: Session, cmd: LiveEndRequested, at: datetime) -> Decision[Session]:
    """End the session: ``items`` is the number of products its cart holds now."""
    ended = LiveSessionEnded(
        creator_id=session.creator_id, session_id=session.session_id, items=len(session.items)
    )
    new = replace(session, open=False, explaining=None, ended_at=at)
    return Decision(new, [Emit(ended, session.creator_id)])


# --- holds: cart items follow the catalog, the offers and the policies -------------------------


def change_holds(
    session: Session,
    product_id: str,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    item: CartItem | None = None,
) -> Decision[Session]:
    """Add and release causes on one cart item (see :func:`vitrine.contract.holds.change`).

    ``item``: the item as it stands now, when it differs from the session's (a new source).
    """
    current = item or session.find(product_id)
    if current is None or not session.open:
        return Decision.ignore(session, "not_in_open_cart")
    changed = hold_set.change(current.holds, add=add, remove=remove)
    if changed is None:
        if current != session.find(product_id):
            return Decision(session.put(current))
        return Decision.ignore(session, "unchanged")
    emits = [_suspended(session, product_id, h) for h in changed.suspended]
    if changed.restored_by is not None:
        emits.append(_restored(session, product_id, changed.restored_by))
    return Decision(session.put(replace(current, holds=changed.holds)), emits)


def _suspended(session: Session, product_id: str, hold: str) -> Emit:
    key = f"suspended:{session.session_id}/{product_id}:{hold}"
    return _hold_change(LiveItemSuspended, session, product_id, hold, key)


def _restored(session: Session, product_id: str, hold: str) -> Emit:
    key = f"restored:{session.session_id}/{product_id}"
    return _hold_change(LiveItemRestored, session, product_id, hold, key)


def _hold_change(
    kind: type[LiveItemSuspended | LiveItemRestored],
    session: Session,
    product_id: str,
    hold: str,
    key: str,
) -> Emit:
    """``live.item_suspended`` / ``live.item_restored`` of a cart item for ``hold``'s reason."""
    reason, policy_id = hold_set.hold_reason(hold)
    data = kind(
        creator_id=session.creator_id,
        session_id=session.session_id,
        product_id=product_id,
        reason=reason,
        policy_id=policy_id,
    )
    return Emit(data, session.creator_id, key=key)


def _then(first: Decision[Session], second: Decision[Session]) -> Decision[Session]:
    """Two decisions on the same session, in order, as one."""
    if first.ignored is not None:
        return second
    if second.ignored is not None:
        return first
    return Decision(second.state, [*first.emits, *second.emits])


def _fold(session: Session, steps: Iterable[tuple[str, list[str], list[str]]]) -> Decision[Session]:
    decision: Decision[Session] = Decision.ignore(session, "unchanged")
    for product_id, add_, remove_ in steps:
        decision = _then(
            decision, change_holds(decision.state, product_id, add=add_, remove=remove_)
        )
    return decision


def _policy_holds(
    item: CartItem,
    policies: Iterable[Policy],
    creator: Account | None,
    merchant: Account | None,
) -> tuple[list[str], list[str]]:
    """The policy causes to add and to release on ``item`` (policies enforcing now)."""
    add_: list[str] = []
    remove_: list[str] = []
    for policy in sorted(policies, key=lambda p: p.policy_id):
        if policy.enforcing:
            barred = policy_kernel.bars(policy, placement(item, creator, merchant))
            (add_ if barred else remove_).append(policy.hold)
    return add_, remove_


def product_delisted(session: Session, product_id: str) -> Decision[Session]:
    return change_holds(session, product_id, add=[HOLD_DELISTED])


def product_listed(
    session: Session,
    product: Product,
    *,
    policies: Iterable[Policy] = (),
    creator: Account | None = None,
    merchant: Account | None = None,
) -> Decision[Session]:
    """The product is (re)listed, maybe from another source: the policies enforcing now are
    judged again (holds first), then the delisting is released."""
    item = session.find(product.product_id)
    if item is None:
        return Decision.ignore(session, "not_in_cart")
    moved = replace(item, merchant_id=product.merchant_id, source=product.source)
    add_, remove_ = _policy_holds(moved, policies, creator, merchant)
    return change_holds(
        session, product.product_id, add=add_, remove=[*remove_, HOLD_DELISTED], item=moved
    )


def stock_changed(session: Session, product_id: str, *, sold_out: bool) -> Decision[Session]:
    """``product.sold_out`` holds the item with ``sold_out``; ``back_in_stock`` releases it."""
    if sold_out:
        return change_holds(session, product_id, add=[HOLD_SOLD_OUT])
    return change_holds(session, product_id, remove=[HOLD_SOLD_OUT])


def offer_changed(session: Session, offer: Offer) -> Decision[Session]:
    """Items taken through ``offer`` are held ``offer_unavailable`` exactly while it is
    withdrawn or suspended or does not name the creator; other items are left alone."""
    held = not offer.available_to(session.creator_id)
    steps = [
        (i.product_id, [HOLD_OFFER] if held else [], [] if held else [HOLD_OFFER])
        for i in session.items
        if i.offer_id == offer.offer_id
    ]
    return _fold(session, steps)


def rejudge(
    session: Session,
    policies: Sequence[Policy],
    creator: Account | None,
    merchants: Mapping[str, Account],
) -> Decision[Session]:
    """Judge every cart item again by the policies enforcing now (the creator's shops
    changed: ``shop.closed`` may hold items for ``require_shop``, a new shop release them)."""
    steps = []
    for item in session.items:
        add_, remove_ = _policy_holds(item, policies, creator, merchants.get(item.merchant_id))
        steps.append((item.product_id, add_, remove_))
    return _fold(session, steps)


def enforce(
    policy: Policy,
    session: Session,
    creator: Account | None,
    merchants: Mapping[str, Account],
) -> tuple[Decision[Session], int]:
    """``enforce_existing`` on a session: hold every cart item the policy bars.

    Returns the decision and how many items the policy bars (held before or now).
    """
    barred = [
        i.product_id
        for i in session.items
        if policy_kernel.bars(policy, placement(i, creator, merchants.get(i.merchant_id)))
    ]
    return _fold(session, [(pid, [policy.hold], []) for pid in barred]), len(barred)


def lift(policy_id: str, session: Session) -> Decision[Session]:
    """``policy.lifted``: release exactly this policy's cause on every item."""
    hold = policy_hold(policy_id)
    return _fold(session, [(i.product_id, [], [hold]) for i in session.items if hold in i.holds])
