"""Offers (the selection center's plans) and the projections they are judged against.

Pure: no I/O. Decisions take the current state plus what the handler loaded, and return a
:class:`~vitrine.runtime.decision.Decision` (new state, events to publish, or the refusal's
reasons with the ``offer.refused`` event).

**Event time** (DESIGN.md §6): every change is dated by the time of the event that caused it
(``offer.published``'s ``time`` for terms and rates, ``product.delisted``'s for a delisting
hold, the ruling's for a policy hold), never by when distribution processes it — so a lagging
consumer or a replay builds the same history. Dates never go backwards within one offer: an
event stamped before the offer's latest change takes effect at that change
(:func:`effective_time`), so a producer cannot back-date a cut. A product keeps its listing
history (:class:`ListingChange`): a new offer consumed after listing changes stamped later
than it is judged against the product as of its own time (:meth:`ProductView.as_of`), then
re-applies those changes (:func:`follow_listing`) — what an in-order consumer did.

An offer is **active**, **suspended** (at least one *hold*) or **withdrawn**. Holds record
*why* it is suspended: ``product_delisted`` (its product left the catalog) and ``policy:<id>``
(a policy's ``enforce_existing`` phase). It comes back only when no hold remains, so a
relisted product does not revive an offer a policy still holds, and ``policy.lifted`` restores
exactly the offers that policy held and nothing else holds.

Every status change is kept (:class:`StatusChange`) and so is every rate
(:mod:`vitrine_distribution.domain.rates`) and every plan/creator-list change
(:class:`TermsChange`): "was the offer active, at what rate, for whom, at ``paid_at``?" is
answerable for any past instant.

Decisions documented here because DESIGN.md is silent on them:

- a publish is judged against the rules in force **every time**, including a republish of an
  existing offer (a republish that is refused leaves the offer and its terms unchanged);
- a republish by another merchant, a withdraw by another merchant → ``offer.refused``
  ``not_product_owner`` (the offer is the product owner's); a republish naming another product
  → ``offer_product_mismatch`` (an offer belongs to one product for life);
- a republish of a *suspended* offer → ``offer_inactive`` (with any other applicable code): its
  terms can change once it is restored; a withdrawn offer may be republished (it is revived,
  judged like a new one, and its rate history continues);
- withdrawing an unknown offer → ``offer.refused`` ``offer_inactive``; withdrawing a withdrawn
  offer is a no-op (idempotent);
- a targeted plan needs another offer for the same product with a general plan that is active
  now; a general plan that later stops does not take its targeted plans down with it;
- a targeted plan's creator list and plan changes take effect at once (only rate cuts wait).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import ClassVar, Literal

from vitrine.contract import policy_kernel
from vitrine.contract.envelope import CloudEvent
from vitrine.contract.events import (
    EventData,
    Exemptions,
    OfferActivated,
    OfferPublished,
    OfferRefused,
    OfferRestored,
    OfferSuspended,
    OfferWithdrawn,
    OfferWithdrawRequested,
    Reason,
    Rule,
    Source,
)
from vitrine.contract.events.common import Code
from vitrine.contract.policy_kernel import Account, Breach, Placement
from vitrine.runtime.decision import Decision, Emit
from vitrine_distribution.domain.rates import RateEntry, rate_at, schedule, to_ms

Status = Literal["active", "suspended", "withdrawn"]
SURFACE: Literal["distribution"] = "distribution"
HOLD_DELISTED = "product_delisted"
MIN_BPS, MAX_BPS = 100, 9000
POLICY_PREFIX = "policy:"
OFFERS: Literal["distribution.offers"] = "distribution.offers"


def policy_hold(policy_id: str) -> str:
    return POLICY_PREFIX + policy_id


class OfferCommandRefused(OfferRefused):  # type: ignore[misc]  # vitrine lacks py.typed
    """``offer.refused`` naming the refused command (``offer.published``/``offer.withdrawn``).

    The extra field is additive (consumers ignore unknown fields, DESIGN.md §2).
    """

    event_type: ClassVar[str] = "offer.refused"

    command: Code


# --- projections ---------------------------------------------------------------------------------


#: How many listing changes a product keeps (the newest): a late offer is judged exactly while
#: it is consumed fewer than this many changes of its product late (see :class:`ListingChange`).
LISTING_HISTORY = 32


@dataclass(frozen=True)
class ListingChange:
    """One ``product.listed``/``product.delisted`` as distribution applied it: its event time
    (never before the previous change's), the product as it left it, and its envelope
    (``cause``): what a late offer re-applies of it is caused by it, with the id an in-order
    consumer minted."""

    at: datetime
    listed: bool
    source: Source | None
    version: int | None
    cause: CloudEvent


@dataclass(frozen=True)
class ProductView:
    """What distribution knows of a product from ``catalog.products``, and its listing history
    (the last :data:`LISTING_HISTORY` changes, oldest first)."""

    product_id: str
    merchant_id: str
    listed: bool
    source: Source | None = None
    version: int | None = None
    history: tuple[ListingChange, ...] = ()

    def changed(self, change: ListingChange) -> ProductView:
        """The product after ``change`` (dated no earlier than its latest change)."""
        if self.history and change.at < self.history[-1].at:
            change = replace(change, at=self.history[-1].at)
        return replace(
            self,
            listed=change.listed,
            source=change.source,
            version=change.version,
            history=(*self.history, change)[-LISTING_HISTORY:],
        )

    def as_of(self, instant: datetime) -> ProductView:
        """The product as it was at ``instant`` by its history (a change at ``instant`` counts).

        Before its first kept change it is judged as that change left it: an offer consumed
        before its product's first listing waits for it (the product wait), and one older than
        the kept history is judged by the oldest state kept.
        """
        if not self.history:
            return self
        then = self.history[0]
        for change in self.history:
            if change.at > instant:
                break
            then = change
        return replace(self, listed=then.listed, source=then.source, version=then.version)


@dataclass(frozen=True)
class PolicyView:
    """A policy in force (from ``compliance.rulings``), as distribution applies it."""

    policy_id: str
    phase: str
    rules: tuple[Rule, ...] = ()
    exemptions: Exemptions = field(default_factory=Exemptions)
    lifted: bool = False

    @property
    def enforcing(self) -> bool:
        return self.phase == "enforce_existing" and not self.lifted

    def breaches(self, product: ProductView, merchant: Account | None) -> list[Breach]:
        """What bars an offer of ``product`` by ``product.merchant_id`` (the policy kernel
        decides; that merchant, ``merchant``, is the account using the surface)."""
        if self.lifted:
            return []
        placement = Placement(SURFACE, product.merchant_id, product.source, merchant, merchant)
        return policy_kernel.breaches(self, placement)


# --- the offer ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusChange:
    at: datetime
    status: Status
    reason: str | None = None
    policy_id: str | None = None


@dataclass(frozen=True)
class TermsChange:
    """Who may earn on the offer from ``at`` on."""

    at: datetime
    plan: str
    creator_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Offer:
    offer_id: str
    product_id: str
    merchant_id: str
    rates: tuple[RateEntry, ...] = ()
    terms: tuple[TermsChange, ...] = ()
    history: tuple[StatusChange, ...] = ()
    holds: frozenset[str] = frozenset()
    withdrawn: bool = False

    @property
    def status(self) -> Status:
        if self.withdrawn:
            return "withdrawn"
        return "suspended" if self.holds else "active"

    @property
    def plan(self) -> str:
        return self.terms[-1].plan if self.terms else "general"

    @property
    def creator_ids(self) -> tuple[str, ...]:
        return self.terms[-1].creator_ids if self.terms else ()

    def active_at(self, instant: datetime) -> bool:
        """Whether the offer was active at ``instant`` (by its status history)."""
        status: Status | None = None
        for change in self.history:
            if change.at <= instant:
                status = change.status
        return status == "active"

    def rate_at(self, instant: datetime) -> int | None:
        return rate_at(self.rates, instant)

    def eligible_at(self, creator_id: str | None, instant: datetime) -> bool:
        """Whether ``creator_id`` could earn on the offer at ``instant`` (by its terms then)."""
        if creator_id is None or not self.terms:
            return False
        terms = self.terms[0]  # before the offer existed: judged by its first terms
        for change in self.terms:
            if change.at <= instant:
                terms = change
        return terms.plan == "general" or creator_id in terms.creator_ids


#: What an offer decision returns: the offer after it (``None``: still no such offer).
OfferDecision = Decision[Offer | None]


def _emit(offer_id: str, data: EventData) -> Emit:
    # explicit topic: the additive subclasses (OfferCommandRefused) are not in the registry
    return Emit(data, offer_id, OFFERS)


def effective_time(offer: Offer | None, at: datetime) -> datetime:
    """When an event stamped ``at`` takes effect on ``offer``: ``at`` (ms, UTC), or the
    offer's latest change if ``at`` is earlier (an offer's history never goes backwards)."""
    at = to_ms(at)
    if offer is None:
        return at
    latest = [at]
    latest += [offer.history[-1].at] if offer.history else []
    latest += [offer.rates[-1].published_at] if offer.rates else []
    latest += [offer.terms[-1].at] if offer.terms else []
    return max(latest)


def _reason(
    code: str, message: str, field_: str | None = None, policy_id: str | None = None
) -> Reason:
    return Reason(code=code, message=message[:2000], field=field_, policy_id=policy_id)


def _set_status(offer: Offer, now: datetime, reason: str | None, policy_id: str | None) -> Offer:
    """Append a status change if the status differs from the last one recorded."""
    status = offer.status
    if offer.history and offer.history[-1].status == status:
        return offer
    change = StatusChange(at=now, status=status, reason=reason, policy_id=policy_id)
    return replace(offer, history=(*offer.history, change))


# --- publish / withdraw --------------------------------------------------------------------------


def judge_publish(
    offer: Offer | None,
    cmd: OfferPublished,
    *,
    product: ProductView | None,
    policies: Iterable[PolicyView],
    merchant: Account | None,
    general_live: bool,
) -> list[Reason]:
    """Every reason the publish is refused (empty when it is accepted)."""
    reasons: list[Reason] = []
    if offer is not None and offer.merchant_id != cmd.merchant_id:
        reasons.append(
            _reason(
                "not_product_owner",
                f"offer {offer.offer_id} belongs to another merchant",
                "merchant_id",
            )
        )
    elif product is not None and product.merchant_id != cmd.merchant_id:
        reasons.append(
            _reason(
                "not_product_owner",
                f"product {cmd.product_id} belongs to another merchant",
                "merchant_id",
            )
        )
    if offer is not None and offer.product_id != cmd.product_id:
        reasons.append(
            _reason(
                "offer_product_mismatch",
                f"offer {offer.offer_id} is for product {offer.product_id}; "
                "publish a new offer_id for another product",
                "product_id",
            )
        )
    if product is None or not product.listed:
        reasons.append(
            _reason("product_not_listed", f"product {cmd.product_id} is not listed", "product_id")
        )
    if not MIN_BPS <= cmd.commission_bps <= MAX_BPS:
        reasons.append(
            _reason(
                "invalid_commission",
                f"commission_bps must be within {MIN_BPS}–{MAX_BPS}, got {cmd.commission_bps}",
                "commission_bps",
            )
        )
    if product is not None:
        for policy in sorted(policies, key=lambda p: p.policy_id):
            for breach in policy.breaches(product, merchant):
                if breach.code == "source_disallowed":
                    message = f"goods from this source may not be distributed ({breach.policy_id})"
                    reasons.append(_reason(breach.code, message, "product_id", breach.policy_id))
                else:
                    kind = getattr(breach.rule, "shop_kind", "")
                    message = f"a {kind} shop is required to distribute ({breach.policy_id})"
                    reasons.append(_reason(breach.code, message, "merchant_id", breach.policy_id))
    if cmd.plan == "targeted" and not general_live:
        reasons.append(
            _reason(
                "general_plan_required",
                f"a targeted plan needs a live general plan for product {cmd.product_id}",
                "plan",
            )
        )
    if offer is not None and offer.status == "suspended":
        holds = ", ".join(sorted(offer.holds))
        reasons.append(
            _reason(
                "offer_inactive",
                f"offer {offer.offer_id} is suspended ({holds}); terms can change once restored",
            )
        )
    return reasons


def publish(
    offer: Offer | None,
    cmd: OfferPublished,
    at: datetime,
    *,
    product: ProductView | None,
    policies: Iterable[PolicyView],
    merchant: Account | None,
    general_live: bool,
) -> OfferDecision:
    """Accept (activate, or change the terms of) an offer, or refuse it with every reason.

    ``at`` is the ``offer.published`` event's ``time``: a raise takes effect then, a cut at
    the next 00:00 Asia/Shanghai after it (:func:`~vitrine_distribution.domain.rates.schedule`).
    """
    now = effective_time(offer, at)
    reasons = judge_publish(
        offer,
        cmd,
        product=product,
        policies=policies,
        merchant=merchant,
        general_live=general_live,
    )
    if reasons:
        return Decision.refuse(offer, reasons, _refusal(cmd, cmd.product_id, reasons))
    current = offer or Offer(cmd.offer_id, cmd.product_id, cmd.merchant_id)
    rates, entry = schedule(current.rates, cmd.commission_bps, now)
    creators = tuple(dict.fromkeys(cmd.creator_ids)) if cmd.plan == "targeted" else ()
    terms = current.terms
    if not terms or terms[-1].plan != cmd.plan or terms[-1].creator_ids != creators:
        terms = (*terms, TermsChange(at=now, plan=cmd.plan, creator_ids=creators))
    revived = replace(current, rates=rates, terms=terms, withdrawn=False, holds=frozenset())
    new = _set_status(revived, now, "published", None)
    return Decision(
        new,
        [
            _emit(
                new.offer_id,
                OfferActivated(
                    offer_id=new.offer_id,
                    product_id=new.product_id,
                    merchant_id=new.merchant_id,
                    commission_bps=entry.commission_bps,
                    plan=cmd.plan,  # type: ignore[arg-type]
                    creator_ids=list(creators),
                    effective_at=entry.effective_at,
                ),
            )
        ],
    )


def _refusal(
    cmd: OfferPublished | OfferWithdrawRequested, product_id: str | None, reasons: list[Reason]
) -> Emit:
    refused = OfferCommandRefused(
        offer_id=cmd.offer_id,
        product_id=product_id,
        merchant_id=cmd.merchant_id,
        reasons=reasons,
        command=cmd.event_type,
    )
    return _emit(cmd.offer_id, refused)


def withdraw(offer: Offer | None, cmd: OfferWithdrawRequested, at: datetime) -> OfferDecision:
    """The owning merchant ends its offer (from ``at``, the event's time)."""
    if offer is None:
        reasons = [_reason("offer_inactive", f"no offer {cmd.offer_id}", "offer_id")]
        return Decision.refuse(None, reasons, _refusal(cmd, None, reasons))
    if offer.merchant_id != cmd.merchant_id:
        reasons = [
            _reason(
                "not_product_owner",
                f"offer {offer.offer_id} belongs to another merchant",
                "merchant_id",
            )
        ]
        return Decision.refuse(offer, reasons, _refusal(cmd, offer.product_id, reasons))
    if offer.withdrawn:
        return Decision.ignore(offer, "already_withdrawn")
    new = _set_status(
        replace(offer, withdrawn=True, holds=frozenset()),
        effective_time(offer, at),
        "merchant",
        None,
    )
    withdrawn = OfferWithdrawn(
        offer_id=offer.offer_id,
        product_id=offer.product_id,
        merchant_id=offer.merchant_id,
        reason="merchant",
    )
    return Decision(new, [_emit(offer.offer_id, withdrawn)])


# --- holds: product and policies -----------------------------------------------------------------


def hold(
    offer: Offer, key: str, at: datetime, reason: str, policy_id: str | None = None
) -> Decision[Offer]:
    """Add a hold; ``offer.suspended`` when this makes an active offer suspended."""
    if offer.withdrawn or key in offer.holds:
        return Decision.ignore(offer, "not_applicable")
    was_active = offer.status == "active"
    at = effective_time(offer, at)
    new = _set_status(replace(offer, holds=offer.holds | {key}), at, reason, policy_id)
    events = [_status_change(OfferSuspended, offer, reason, policy_id)] if was_active else []
    return Decision(new, events)


def release(
    offer: Offer, key: str, at: datetime, reason: str, policy_id: str | None = None
) -> Decision[Offer]:
    """Remove a hold; ``offer.restored`` when no other hold remains."""
    if offer.withdrawn or key not in offer.holds:
        return Decision.ignore(offer, "not_applicable")
    at = effective_time(offer, at)
    new = _set_status(replace(offer, holds=offer.holds - {key}), at, reason, policy_id)
    restored = new.status == "active"
    events = [_status_change(OfferRestored, offer, reason, policy_id)] if restored else []
    return Decision(new, events)


def _status_change(
    kind: type[OfferSuspended | OfferRestored], offer: Offer, reason: str, policy_id: str | None
) -> Emit:
    """``offer.suspended`` / ``offer.restored`` of ``offer`` for ``reason``."""
    return _emit(
        offer.offer_id,
        kind(
            offer_id=offer.offer_id,
            product_id=offer.product_id,
            merchant_id=offer.merchant_id,
            reason=reason,
            policy_id=policy_id,
        ),
    )


def product_delisted(offer: Offer, at: datetime) -> Decision[Offer]:
    """The offer's product left the catalog (``at``: the delisting's time)."""
    return hold(offer, HOLD_DELISTED, at, "product_delisted")


def product_listed(
    offer: Offer,
    product: ProductView,
    at: datetime,
    *,
    policies: Iterable[PolicyView],
    merchant: Account | None,
) -> Decision[Offer]:
    """The product is (re)listed: new policy holds first (its source may have changed), then
    the delisting hold goes, so the offer is restored only if nothing holds it."""
    emits: list[Emit] = []
    current = offer
    for policy in sorted(policies, key=lambda p: p.policy_id):
        if policy.enforcing and policy.breaches(
            replace(product, merchant_id=offer.merchant_id), merchant
        ):
            out = hold(current, policy_hold(policy.policy_id), at, "policy", policy.policy_id)
            current, emits = out.state, emits + list(out.emits)
    out = release(current, HOLD_DELISTED, at, "product_relisted")
    return Decision(out.state, emits + list(out.emits))


def follow_listing(
    offer: Offer,
    product: ProductView,
    since: datetime,
    *,
    policies: Iterable[PolicyView],
    merchant: Account | None,
) -> list[tuple[ListingChange, Decision[Offer]]]:
    """What ``product``'s changes after ``since`` do to ``offer``, which did not follow them:
    it was published (new, or revived from withdrawn) at ``since`` but consumed after them.

    Each change gives the decision an in-order consumer made when it consumed that change
    (:func:`product_delisted`, :func:`product_listed`), paired with it so the handler emits it
    caused by the change's own event — the same ids. Changes that leave the offer as it is
    are left out.
    """
    out: list[tuple[ListingChange, Decision[Offer]]] = []
    current = offer
    for change in product.history:
        if change.at <= since:
            continue
        if change.listed:
            then = replace(product, listed=True, source=change.source, version=change.version)
            decision = product_listed(
                current, then, change.at, policies=policies, merchant=merchant
            )
        else:
            decision = product_delisted(current, change.at)
        if decision.state is current:
            continue
        current = decision.state
        out.append((change, decision))
    return out


@dataclass(frozen=True)
class Enforcement:
    """What one ruling did to the offers: the offers it changed and how many it holds."""

    offers: dict[str, Offer]
    affected: int


def enforce(
    policy: PolicyView,
    offers: Iterable[Offer],
    products: Mapping[str, ProductView],
    merchants: Mapping[str, Account],
    at: datetime,
) -> Decision[Enforcement]:
    """``enforce_existing``: hold every non-withdrawn offer the policy bars (its product's
    source, or its merchant lacking a required shop; ``merchants`` holds their accounts).

    ``affected`` counts the offers the policy holds after this (including ones it already held,
    so a repeated ruling reports the same number); one ``offer.suspended`` per offer it turns
    from active to suspended.
    """
    changed: dict[str, Offer] = {}
    emits: list[Emit] = []
    affected = 0
    key = policy_hold(policy.policy_id)
    for offer in sorted(offers, key=lambda o: o.offer_id):
        product = products.get(offer.product_id)
        if offer.withdrawn or product is None:
            continue
        merchant = merchants.get(offer.merchant_id) or Account(offer.merchant_id)
        if not policy.breaches(replace(product, merchant_id=offer.merchant_id), merchant):
            continue
        affected += 1
        out = hold(offer, key, at, "policy", policy.policy_id)
        if out.changed:
            changed[offer.offer_id] = out.state
            emits += out.emits
    return Decision(Enforcement(changed, affected), emits)


def lift(policy_id: str, offers: Iterable[Offer], at: datetime) -> Decision[Enforcement]:
    """``policy.lifted``: release exactly the offers this policy holds; restore the ones that
    nothing else holds. ``affected`` counts the offers released."""
    changed: dict[str, Offer] = {}
    emits: list[Emit] = []
    key = policy_hold(policy_id)
    for offer in sorted(offers, key=lambda o: o.offer_id):
        out = release(offer, key, at, "policy_lifted", policy_id)
        if out.changed:
            changed[offer.offer_id] = out.state
            emits += out.emits
    return Decision(Enforcement(changed, len(changed)), emits)


def general_live(offers: Iterable[Offer], product_id: str, excluding: str) -> bool:
    """Whether another offer for ``product_id`` is a general plan active now."""
    return any(
        o.product_id == product_id
        and o.offer_id != excluding
        and o.status == "active"
        and o.plan == "general"
        for o in offers
    )
