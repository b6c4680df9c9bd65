"""The selection center's projections and the one query-shaped document per offer. Pure: no I/O.

Selection owns no commands: it folds other services' facts into its own copies —
:class:`Product` (catalog.products), :class:`Offer` (distribution.offers, with the rate
schedule and 30-day sales), :class:`Order` (orders.lifecycle, to subtract refunds from the
right offer and day), accounts (accounts.shops, as the policy kernel's ``Account``) and
:class:`Policy` (compliance.rulings) — and :func:`listing` derives from them the document a
query reads. Because that document is a pure function of the facts, every input just updates
its fact and rebuilds the listings it touches: inputs from different topics may arrive in any
order and the result is the same.

Per aggregate, an event older (by its ``time``) than the last one applied is stale and
ignored, so a late replay cannot undo newer facts; a product listing older than the version
shown is ignored too.

Policies are judged by the shared kernel (``vitrine.contract.policy_kernel``) only:

- what a policy's ``disallow_source`` rules bar depends on the goods and their merchant, so it
  is judged here, per offer, when a fact changes (``open_on``: the surfaces no policy in force
  bars the offer from);
- what ``require_shop`` rules bar depends on the creator asking, so it is judged per query
  (:func:`eligibility`); an offer records which policies exempt its merchant (``shop_exempt``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from vitrine.contract import policy_kernel as kernel
from vitrine.contract.events import (
    OfferActivated,
    OfferRestored,
    OfferSuspended,
    OfferWithdrawn,
    OrderPaid,
    OrderRefunded,
    PolicyAccepted,
    PolicyInForce,
    PolicyLifted,
    ProductBackInStock,
    ProductDelisted,
    ProductListed,
    ProductSoldOut,
    Source,
)
from vitrine.contract.events.base import Surface
from vitrine.runtime.decision import Decision
from vitrine_selection.search import title_tokens

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: Sales count over this many days (Asia/Shanghai calendar days, today included).
SALES_DAYS = 30
#: Surfaces a listing records the policy verdict for.
SURFACES: tuple[Surface, ...] = ("showcase", "live", "distribution")
#: Rate steps kept per offer: the one in force, the scheduled one, and some history to show.
MAX_RATE_STEPS = 10
#: A merchant id no policy can exempt (ids are never empty): "a merchant no exemption names".
NO_MERCHANT = ""

OfferStatus = Literal["active", "suspended", "withdrawn"]


# --- products ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Product:
    """What selection knows of a catalog product."""

    product_id: str
    merchant_id: str | None = None
    title: str = ""
    category: str | None = None
    images: tuple[str, ...] = ()
    price_fen: int | None = None
    source: Source | None = None
    listed: bool = False
    sold_out: bool = False
    version: int = 0
    seen_at: datetime | None = None


ProductInput = ProductListed | ProductDelisted | ProductSoldOut | ProductBackInStock


def _stale(seen_at: datetime | None, at: datetime) -> bool:
    return seen_at is not None and at < seen_at


def apply_product(product: Product | None, data: ProductInput, at: datetime) -> Decision[Product]:
    """Fold one catalog event into the product (``at``: the event's time)."""
    current = product or Product(data.product_id)
    if _stale(current.seen_at, at):
        return Decision.ignore(current, "stale")
    match data:
        case ProductListed():
            if data.version < current.version:
                return Decision.ignore(current, "stale_version")
            new = replace(
                current,
                merchant_id=data.merchant_id,
                title=data.title,
                category=data.category,
                images=tuple(data.images),
                price_fen=data.price_fen,
                source=data.source,
                listed=True,
                version=data.version,
                # A version goes live with its SKUs' stock (catalog also says sold_out after).
                sold_out=sum(k.stock for k in data.skus) == 0 if data.skus else current.sold_out,
            )
        case ProductDelisted():
            new = replace(
                current, listed=False, merchant_id=data.merchant_id or current.merchant_id
            )
        case ProductSoldOut():
            new = replace(current, sold_out=True)
        case ProductBackInStock():
            new = replace(current, sold_out=False)
    return Decision(replace(new, seen_at=max(at, current.seen_at or at)))


# --- offers: status, terms and the rate schedule -----------------------------------------------


@dataclass(frozen=True)
class RateStep:
    """A rate in force from ``effective_at`` until the next step's ``effective_at``."""

    commission_bps: int
    effective_at: datetime


@dataclass(frozen=True)
class Offer:
    """What selection knows of an offer. ``status`` is ``None`` while only its sales are known
    (an order can arrive before the offer's own events)."""

    offer_id: str
    product_id: str | None = None
    merchant_id: str | None = None
    status: OfferStatus | None = None
    status_reason: str | None = None
    status_policy_id: str | None = None
    plan: str = "general"
    creator_ids: tuple[str, ...] = ()
    rates: tuple[RateStep, ...] = ()
    published_at: datetime | None = None
    seen_at: datetime | None = None
    #: Sales per Asia/Shanghai day of ``paid_at``: day → (orders, GMV fen), refunds subtracted.
    sales: Mapping[str, tuple[int, int]] = field(default_factory=dict)


OfferInput = OfferActivated | OfferSuspended | OfferRestored | OfferWithdrawn


def schedule_rate(
    rates: Sequence[RateStep], commission_bps: int, effective_at: datetime, at: datetime
) -> tuple[RateStep, ...]:
    """The schedule after ``offer.activated`` at ``at``: distribution says when the new rate
    takes effect (now for a raise, the next 00:00 Asia/Shanghai for a cut) and every publish
    supersedes a step that had not yet taken effect, so the future steps are dropped."""
    kept = [s for s in rates if s.effective_at <= at]
    steps = (*kept, RateStep(commission_bps, effective_at))
    return steps[-MAX_RATE_STEPS:]


def rate_at(rates: Sequence[RateStep], instant: datetime) -> int | None:
    """The rate in force at ``instant`` (``None`` before the first took effect)."""
    found: int | None = None
    for step in rates:
        if step.effective_at <= instant:
            found = step.commission_bps
    return found


def next_rate(rates: Sequence[RateStep], instant: datetime) -> RateStep | None:
    """The step scheduled after ``instant`` (a cut waiting for midnight), if any."""
    return next((s for s in rates if s.effective_at > instant), None)


def apply_offer(offer: Offer | None, data: OfferInput, at: datetime) -> Decision[Offer]:
    """Fold one distribution event into the offer (``at``: the event's time)."""
    current = offer or Offer(data.offer_id)
    if _stale(current.seen_at, at):
        return Decision.ignore(current, "stale")
    base = replace(
        current,
        product_id=data.product_id,
        merchant_id=data.merchant_id,
        seen_at=max(at, current.seen_at or at),
    )
    match data:
        case OfferActivated():
            new = replace(
                base,
                status="active",
                status_reason=None,
                status_policy_id=None,
                plan=data.plan,
                creator_ids=tuple(data.creator_ids) if data.plan == "targeted" else (),
                rates=schedule_rate(base.rates, data.commission_bps, data.effective_at, at),
                published_at=base.published_at or at,
            )
        case OfferSuspended():
            new = replace(
                base, status="suspended", status_reason=data.reason, status_policy_id=data.policy_id
            )
        case OfferRestored():
            new = replace(base, status="active", status_reason=None, status_policy_id=None)
        case OfferWithdrawn():
            new = replace(
                base, status="withdrawn", status_reason=data.reason, status_policy_id=None
            )
    return Decision(new)


# --- orders and sales --------------------------------------------------------------------------


def sales_day(paid_at: datetime) -> str:
    """The Asia/Shanghai calendar day an order counts on (by its own ``paid_at``)."""
    return paid_at.astimezone(SHANGHAI).date().isoformat()


@dataclass(frozen=True)
class Order:
    """An order as far as sales go; ``counted`` is what it adds to its offer's day now."""

    order_id: str
    offer_id: str | None = None
    amount_fen: int = 0
    paid_at: datetime | None = None
    refunded_fen: int = 0

    @property
    def contribution(self) -> SalesDelta | None:
        """What this order adds to its offer's day: a fully refunded order counts for none."""
        if self.offer_id is None or self.paid_at is None:
            return None
        net = max(self.amount_fen - self.refunded_fen, 0)
        return SalesDelta(self.offer_id, sales_day(self.paid_at), 1 if net > 0 else 0, net)


@dataclass(frozen=True)
class SalesDelta:
    """Orders and GMV added to (or, negative, taken from) an offer's day."""

    offer_id: str
    day: str
    orders: int
    gmv_fen: int


def apply_order(
    order: Order | None, data: OrderPaid | OrderRefunded
) -> tuple[Decision[Order], list[SalesDelta]]:
    """Fold an order event; the sales deltas undo the order's old contribution and add its new
    one. A refund that arrives before its ``order.paid`` is kept and applied when it does."""
    current = order or Order(data.order_id)
    match data:
        case OrderPaid():
            if current.paid_at is not None:
                return Decision.ignore(current, "already_paid"), []
            new = replace(
                current, offer_id=data.offer_id, amount_fen=data.amount_fen, paid_at=data.paid_at
            )
        case OrderRefunded():
            new = replace(current, refunded_fen=current.refunded_fen + data.refund_fen)
    deltas: list[SalesDelta] = []
    if (old := current.contribution) is not None:
        deltas.append(SalesDelta(old.offer_id, old.day, -old.orders, -old.gmv_fen))
    if (added := new.contribution) is not None:
        deltas.append(added)
    return Decision(new), deltas


def add_sales(offer: Offer | None, offer_id: str, deltas: Iterable[SalesDelta]) -> Offer:
    """The offer (a stub when only its sales are known yet) with the deltas added."""
    current = offer or Offer(offer_id)
    sales = dict(current.sales)
    for d in deltas:
        orders, gmv = sales.get(d.day, (0, 0))
        sales[d.day] = (orders + d.orders, gmv + d.gmv_fen)
    return replace(current, sales=sales)


def window_start(now: datetime) -> date:
    """The first day of the 30-day sales window that contains ``now``."""
    return now.astimezone(SHANGHAI).date() - timedelta(days=SALES_DAYS - 1)


def sales_in_window(sales: Mapping[str, tuple[int, int]], now: datetime) -> tuple[int, int]:
    """(orders, GMV fen) over the last 30 days (Asia/Shanghai), refunds subtracted."""
    first = window_start(now).isoformat()
    orders = sum(o for day, (o, _) in sales.items() if day >= first)
    gmv = sum(g for day, (_, g) in sales.items() if day >= first)
    return orders, gmv


def prune_sales(offer: Offer, now: datetime) -> Offer:
    """Drop days that left the window (they can never count again)."""
    first = window_start(now).isoformat()
    if all(day >= first for day in offer.sales):
        return offer
    return replace(offer, sales={d: v for d, v in offer.sales.items() if d >= first})


def _midnight(day: date) -> datetime:
    return datetime.combine(day, dtime(0), tzinfo=SHANGHAI).astimezone(UTC)


# --- policies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy(kernel.PolicyState):
    """A policy as its rulings describe it; ``in_force`` from ``block_new`` until lifted: it
    judges new placements (a creator taking an offer is one)."""


RulingInput = PolicyAccepted | PolicyInForce | PolicyLifted


def apply_ruling(policy: Policy | None, data: RulingInput) -> Decision[Policy]:
    """Fold one ruling. ``policy.lifted`` is final: a late ``policy.in_force`` cannot revive it."""
    current = policy or Policy(data.policy_id)
    match data:
        case PolicyAccepted():
            new = replace(current, rules=tuple(data.rules), exemptions=data.exemptions)
        case PolicyInForce():
            if current.lifted:
                return Decision.ignore(current, "lifted")
            new = current.reached(data)
        case PolicyLifted():
            new = replace(current, lifted=True)
    return Decision(new)


# --- the query-shaped document -----------------------------------------------------------------


def commission_fen(price_fen: int, bps: int) -> int:
    """Commission per unit: ``round_half_up(price × bps / 10000)`` (as distribution accrues)."""
    return (price_fen * bps + 5000) // 10_000


def supplier(source: Source | None) -> str | None:
    """The supplier group ``GET /suppliers`` counts by: ``kind`` or ``kind:platform``."""
    if source is None:
        return None
    return f"{source.kind}:{source.platform}" if source.platform else source.kind


def barred_by(
    product: Product | None,
    merchant_id: str | None,
    merchant: kernel.Account | None,
    policies: Iterable[Policy],
) -> dict[str, list[str]]:
    """Per surface, the policies in force whose ``disallow_source`` rules bar the goods."""
    found: dict[str, list[str]] = {s: [] for s in SURFACES}
    if product is None or product.source is None or merchant_id is None:
        return found
    for policy in sorted((p for p in policies if p.in_force), key=lambda p: p.policy_id):
        for surface in SURFACES:
            placement = kernel.Placement(surface, merchant_id, product.source, merchant=merchant)
            if kernel.disallowing_rules(policy, placement):
                found[surface].append(policy.policy_id)
    return found


def listing(
    offer: Offer,
    product: Product | None,
    merchant: kernel.Account | None,
    policies: Iterable[Policy],
    now: datetime,
) -> dict[str, Any]:
    """The read document's derived fields: what ``GET /offers`` filters, sorts and shows."""
    policies = list(policies)
    bps = rate_at(offer.rates, now)
    upcoming = next_rate(offer.rates, now)
    price = product.price_fen if product else None
    orders, gmv = sales_in_window(offer.sales, now)
    barred = barred_by(product, offer.merchant_id, merchant, policies)
    visible = bool(
        offer.status == "active" and product and product.listed and price is not None and bps
    )
    due: list[datetime] = [upcoming.effective_at] if upcoming else []
    if offer.sales:
        oldest = date.fromisoformat(min(offer.sales))
        due.append(_midnight(oldest + timedelta(days=SALES_DAYS)))
    source = product.source if product else None
    return {
        "offer_id": offer.offer_id,
        "visible": visible,
        "audience": list(offer.creator_ids) if offer.plan == "targeted" else ["*"],
        "title": product.title if product else "",
        "tokens": title_tokens(product.title) if product else [],
        "category": product.category if product else None,
        "images": list(product.images) if product else [],
        "price_fen": price or 0,
        "listed": bool(product and product.listed),
        "sold_out": bool(product and product.sold_out),
        "source_kind": source.kind if source else None,
        "source_platform": source.platform if source else None,
        "supplier": supplier(source),
        "rate_bps": bps or 0,
        "next_rate_bps": upcoming.commission_bps if upcoming else None,
        "next_rate_at": upcoming.effective_at if upcoming else None,
        "commission_fen": commission_fen(price or 0, bps or 0),
        "sales_orders_30d": orders,
        "sales_gmv_30d_fen": gmv,
        "published_ms": int(offer.published_at.timestamp() * 1000) if offer.published_at else 0,
        "barred_by": barred,
        "open_on": [s for s in SURFACES if not barred[s]],
        "shop_exempt": sorted(
            p.policy_id
            for p in policies
            if p.in_force and offer.merchant_id and kernel.merchant_exempt(p, offer.merchant_id)
        ),
        "policy_ids": sorted({pid for pids in barred.values() for pid in pids}),
        "due_at": min(due) if due else None,
    }


# --- who may take what -------------------------------------------------------------------------


@dataclass(frozen=True)
class Eligibility:
    """What ``creator_id`` may take on ``surface`` now: offers whose plan names them (or is
    general), whose goods are not sold out, that no policy in force bars from the surface,
    and whose merchant every policy in ``exempt_by`` exempts (the ``require_shop`` rules the
    creator fails)."""

    creator_id: str
    surface: Literal["showcase", "live"]
    exempt_by: tuple[str, ...]

    def filter(self) -> dict[str, Any]:
        """The same, as a MongoDB filter over the listings."""
        clauses: list[dict[str, Any]] = [
            {"audience": {"$in": ["*", self.creator_id]}},
            {"sold_out": False},
            {"open_on": self.surface},
        ]
        clauses += [{"shop_exempt": policy_id} for policy_id in self.exempt_by]
        return {"$and": clauses}


def eligibility_terms(
    creator_id: str,
    surface: Literal["showcase", "live"],
    creator: kernel.Account | None,
    policies: Iterable[Policy],
) -> Eligibility:
    """The creator's :class:`Eligibility` on ``surface``, judged by the policy kernel."""
    asking = kernel.Placement(surface, NO_MERCHANT, None, account=creator)
    exempt_by = tuple(
        policy.policy_id
        for policy in sorted((p for p in policies if p.in_force), key=lambda p: p.policy_id)
        if kernel.unmet_shop_rules(policy, asking)
    )
    return Eligibility(creator_id, surface, exempt_by)


def eligibility(
    creator_id: str,
    surface: Literal["showcase", "live"],
    creator: kernel.Account | None,
    policies: Iterable[Policy],
) -> dict[str, Any]:
    """The MongoDB filter of what ``creator_id`` may take on ``surface`` now."""
    return eligibility_terms(creator_id, surface, creator, policies).filter()
