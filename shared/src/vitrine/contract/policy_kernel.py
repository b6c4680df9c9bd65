"""The policy kernel: what a policy bars, on any surface (DESIGN.md §5). Pure, no I/O.

Every service that judges goods against policies calls this one module — compliance for its
impact estimate, showcase, distribution and (later) live for what they refuse and suspend —
so that what compliance predicts and what the services do cannot drift apart.

What is judged is a :class:`Placement`: goods (a merchant's product from a source) put on a
surface by an account. A policy **breaches** a placement when, for that surface:

- a ``disallow_source`` rule matches the goods' source, unless the merchant is exempt:
  listed in ``exemptions.merchant_ids``, or — with ``exemptions.service_provider_built`` —
  holding a provider-built shop;
- a ``require_shop`` rule names a shop kind the account does not hold, unless the goods'
  merchant is listed in ``exemptions.merchant_ids``, or — with
  ``exemptions.service_provider_built`` — the account holds a provider-built shop (it
  satisfies every ``require_shop``).

The account is whoever uses the surface: the creator on ``showcase`` and ``live``, the
offer's merchant on ``distribution``. Goods whose source is unknown (``None``) are never
barred by source.

Phases: a policy in force (``block_new`` or later) judges new placements; only from
``enforce_existing`` does it suspend existing ones (:func:`judges_new`,
:func:`judges_existing`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, Self

from vitrine.contract.events.accounts import ShopClosed, ShopRegistered
from vitrine.contract.events.base import Source, Surface
from vitrine.contract.events.policies import (
    DisallowSource,
    Exemptions,
    PolicyInForce,
    RequireShop,
    Rule,
)

__all__ = [
    "Account",
    "Breach",
    "Placement",
    "PolicyState",
    "PolicyTerms",
    "Shop",
    "Terms",
    "account_after",
    "bars",
    "breaches",
    "disallowing_rules",
    "judges_existing",
    "judges_new",
    "merchant_exempt",
    "source_exempt",
    "unmet_shop_rules",
]

BreachCode = Literal["source_disallowed", "shop_required"]


# --- accounts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    """A shop an account holds (from ``accounts.shops``)."""

    shop_id: str
    shop_kind: str
    service_provider_built: bool = False


@dataclass(frozen=True)
class Account:
    """The shops an account holds. Creators and merchants share one id space: a merchant's
    ``account_id`` is its ``merchant_id``."""

    account_id: str
    shops: tuple[Shop, ...] = ()

    def holds(self, shop_kind: str) -> bool:
        """Whether the account holds an open shop of ``shop_kind``."""
        return any(s.shop_kind == shop_kind for s in self.shops)

    @property
    def service_provider_built(self) -> bool:
        """Whether the account holds a mall built by a service provider (the §5 exemption)."""
        return any(s.service_provider_built for s in self.shops)

    def register(self, shop: Shop) -> Account:
        """The account after ``shop.registered`` (a shop id registered again is replaced)."""
        others = tuple(s for s in self.shops if s.shop_id != shop.shop_id)
        return replace(self, shops=(*others, shop))

    def close(self, shop_id: str) -> Account:
        """The account after ``shop.closed``."""
        return replace(self, shops=tuple(s for s in self.shops if s.shop_id != shop_id))


def account_after(account: Account | None, data: ShopRegistered | ShopClosed) -> Account:
    """The account after ``shop.registered`` / ``shop.closed`` (``None``: never seen yet)."""
    current = account or Account(data.account_id)
    match data:
        case ShopRegistered():
            return current.register(Shop(data.shop_id, data.shop_kind, data.service_provider_built))
        case ShopClosed():
            return current.close(data.shop_id)


# --- policies and placements -------------------------------------------------------------------


class PolicyTerms(Protocol):
    """What the kernel reads of a policy: compliance's ``PolicyAccepted``/``PolicyInForce``,
    and every service's own projection of a ruling, have these."""

    @property
    def policy_id(self) -> str: ...

    @property
    def rules(self) -> Sequence[Rule]: ...

    @property
    def exemptions(self) -> Exemptions: ...


@dataclass(frozen=True)
class Terms:
    """A policy's terms on their own (for callers that hold rules and exemptions apart)."""

    policy_id: str
    rules: Sequence[Rule]
    exemptions: Exemptions


@dataclass(frozen=True)
class PolicyState:
    """A policy as a service projects it from ``compliance.rulings``: its terms, the phases it
    reached, and whether it was lifted (lifted policies are kept as tombstones). Satisfies
    :class:`PolicyTerms`; services subclass it for what only they ask of a policy."""

    policy_id: str
    rules: tuple[Rule, ...] = ()
    exemptions: Exemptions = field(default_factory=Exemptions)
    phases: frozenset[str] = frozenset()
    lifted: bool = False

    @property
    def in_force(self) -> bool:
        """Judges new placements (any phase reached, not lifted)."""
        return judges_new(self.phases) and not self.lifted

    @property
    def enforcing(self) -> bool:
        """Holds existing placements (``enforce_existing`` reached, not lifted)."""
        return judges_existing(self.phases) and not self.lifted

    def reached(self, ruling: PolicyInForce) -> Self:
        """The policy after ``policy.in_force``: its terms as ruled, the phase added (whether
        a lifted policy may be revived is the caller's rule)."""
        return replace(
            self,
            rules=tuple(ruling.rules),
            exemptions=ruling.exemptions,
            phases=self.phases | {ruling.phase},
        )


@dataclass(frozen=True)
class Placement:
    """Goods put on a surface by an account: what a policy judges.

    ``merchant`` is the goods' merchant's account (for the ``service_provider_built``
    exemption), ``account`` the account using the surface (for ``require_shop``); ``None``
    when nothing is known of it (it holds no shop).
    """

    surface: Surface
    merchant_id: str
    source: Source | None
    merchant: Account | None = None
    account: Account | None = None


@dataclass(frozen=True)
class Breach:
    """One rule of one policy that bars a placement."""

    policy_id: str
    rule: DisallowSource | RequireShop

    @property
    def code(self) -> BreachCode:
        """The refusal reason code (DESIGN.md §3)."""
        return "source_disallowed" if isinstance(self.rule, DisallowSource) else "shop_required"


def judges_new(phases: Iterable[str]) -> bool:
    """A policy that reached any phase judges new placements (additions, publishes)."""
    return any(True for _ in phases)


def judges_existing(phases: Iterable[str]) -> bool:
    """Only from ``enforce_existing`` does a policy suspend what is already placed."""
    return "enforce_existing" in phases


def merchant_exempt(policy: PolicyTerms, merchant_id: str) -> bool:
    """``exemptions.merchant_ids``: these merchants' goods are never refused or suspended."""
    return merchant_id in policy.exemptions.merchant_ids


def source_exempt(policy: PolicyTerms, merchant_id: str, merchant: Account | None) -> bool:
    """Whether the merchant's goods escape the policy's ``disallow_source`` rules."""
    if merchant_exempt(policy, merchant_id):
        return True
    return bool(
        policy.exemptions.service_provider_built
        and merchant is not None
        and merchant.service_provider_built
    )


def disallowing_rules(policy: PolicyTerms, placement: Placement) -> list[DisallowSource]:
    """The policy's ``disallow_source`` rules barring the placement's goods (exemptions applied)."""
    source = placement.source
    if source is None or source_exempt(policy, placement.merchant_id, placement.merchant):
        return []
    return [
        r
        for r in policy.rules
        if isinstance(r, DisallowSource) and r.disallows(source, placement.surface)
    ]


def unmet_shop_rules(policy: PolicyTerms, placement: Placement) -> list[RequireShop]:
    """The policy's ``require_shop`` rules on the surface that the account does not satisfy."""
    if merchant_exempt(policy, placement.merchant_id):
        return []
    account = placement.account
    if policy.exemptions.service_provider_built and account and account.service_provider_built:
        return []
    return [
        r
        for r in policy.rules
        if isinstance(r, RequireShop)
        and r.applies_to(placement.surface)
        and (account is None or not account.holds(r.shop_kind))
    ]


def breaches(policy: PolicyTerms, placement: Placement) -> list[Breach]:
    """Every rule of ``policy`` that bars ``placement``: shop rules first, then source rules."""
    pid = policy.policy_id
    found: list[Breach] = [Breach(pid, r) for r in unmet_shop_rules(policy, placement)]
    found += [Breach(pid, r) for r in disallowing_rules(policy, placement)]
    return found


def bars(policy: PolicyTerms, placement: Placement) -> bool:
    """Whether ``policy`` bars ``placement`` (refused if new, suspended if existing)."""
    return bool(unmet_shop_rules(policy, placement) or disallowing_rules(policy, placement))
