"""A creator's showcase (橱窗) and the rules that decide what may be in it.

Pure: no I/O. The showcase is an ordered list of items with dense positions ``0..n-1``;
an item is *active* when nothing holds it suspended. Suspensions are a set of **holds**
(``product_delisted``, ``policy:<policy_id>``): each cause adds and removes only its own, so
an item comes back only when the last one goes (DESIGN.md §4).

Additions are judged against local projections of other services' facts — the product
(catalog), the creator's and the merchant's shops (accounts), the offer (distribution) and
the policies in force (compliance) — and refused with *every* applicable reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from vitrine.contract.events import (
    DisallowSource,
    Exemptions,
    Reason,
    RequireShop,
    Rule,
    Source,
)

#: A creator's showcase holds at most this many items, suspended ones included.
MAX_ITEMS = 500
#: The hold ``product.delisted`` puts on every item of the product.
HOLD_DELISTED = "product_delisted"
_POLICY_PREFIX = "policy:"
SURFACE: Final = "showcase"


def policy_hold(policy_id: str) -> str:
    """The hold a policy puts on the items it suspends."""
    return _POLICY_PREFIX + policy_id


def hold_reason(hold: str) -> tuple[str, str | None]:
    """``(reason, policy_id)`` of a hold, as ``item_suspended``/``item_restored`` carry them."""
    if hold.startswith(_POLICY_PREFIX):
        return "policy", hold[len(_POLICY_PREFIX) :]
    return hold, None


def item_key(creator_id: str, product_id: str) -> str:
    """The ``_id`` of an item. ``/`` cannot occur in ids (DESIGN.md §2), so keys never collide
    (``:`` can: creator ``a:b`` + product ``c`` and creator ``a`` + product ``b:c``)."""
    return f"{creator_id}/{product_id}"


# --- projections of other services' facts --------------------------------------------------


@dataclass(frozen=True)
class Product:
    """What catalog said about a product: who sells it, where from, whether it is on sale."""

    product_id: str
    merchant_id: str
    source: Source
    listed: bool
    version: int | None = None


@dataclass(frozen=True)
class Shop:
    shop_id: str
    shop_kind: str
    service_provider_built: bool = False


@dataclass(frozen=True)
class Account:
    """The shops an account holds. Creators and merchants share one id space:
    a merchant's ``account_id`` is its ``merchant_id``."""

    account_id: str
    shops: tuple[Shop, ...] = ()

    def has_shop_kind(self, kind: str) -> bool:
        return any(s.shop_kind == kind for s in self.shops)

    @property
    def service_provider_built(self) -> bool:
        return any(s.service_provider_built for s in self.shops)

    def register(self, shop: Shop) -> Account:
        others = tuple(s for s in self.shops if s.shop_id != shop.shop_id)
        return replace(self, shops=(*others, shop))

    def close(self, shop_id: str) -> Account:
        return replace(self, shops=tuple(s for s in self.shops if s.shop_id != shop_id))


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


Phase = Literal["block_new", "enforce_existing"]


@dataclass(frozen=True)
class Policy:
    """A ruling as compliance put it in force; lifted policies are kept as tombstones."""

    policy_id: str
    rules: tuple[Rule, ...] = ()
    exemptions: Exemptions = field(default_factory=Exemptions)
    phases: frozenset[str] = frozenset()
    lifted: bool = False

    @property
    def in_force(self) -> bool:
        return bool(self.phases) and not self.lifted

    @property
    def hold(self) -> str:
        return policy_hold(self.policy_id)

    def merchant_exempt(self, merchant_id: str, merchant: Account | None) -> bool:
        """Merchants listed by the policy are never touched; with ``service_provider_built``,
        neither is a merchant whose account holds a provider-built shop (DESIGN.md §5)."""
        if merchant_id in self.exemptions.merchant_ids:
            return True
        return bool(
            self.exemptions.service_provider_built
            and merchant is not None
            and merchant.service_provider_built
        )

    def source_rules(self) -> list[DisallowSource]:
        return [r for r in self.rules if isinstance(r, DisallowSource) and r.applies_to(SURFACE)]

    def shop_rules(self) -> list[RequireShop]:
        return [r for r in self.rules if isinstance(r, RequireShop) and r.applies_to(SURFACE)]

    def missing_shop(self, creator: Account | None, merchant_id: str) -> list[RequireShop]:
        """The ``require_shop`` rules the creator does not satisfy (exemptions applied)."""
        if merchant_id in self.exemptions.merchant_ids:
            return []
        if self.exemptions.service_provider_built and creator and creator.service_provider_built:
            return []
        return [
            r
            for r in self.shop_rules()
            if creator is None or not creator.has_shop_kind(r.shop_kind)
        ]

    def disallows(self, source: Source, merchant_id: str, merchant: Account | None) -> bool:
        """Whether this policy bars goods from ``source`` sold by this merchant."""
        if not any(r.disallows(source, SURFACE) for r in self.source_rules()):
            return False
        return not self.merchant_exempt(merchant_id, merchant)


# --- the showcase ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One product in one creator's showcase (one document, ``_id`` = :func:`item_key`)."""

    creator_id: str
    product_id: str
    merchant_id: str
    source: Source
    position: int
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


# --- decisions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddContext:
    """Everything an addition is judged against (from the service's projections)."""

    product: Product | None
    creator: Account | None
    merchant: Account | None
    offer: Offer | None
    policies: Sequence[Policy]


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
    merchant_id = product.merchant_id if product else ""
    for policy in ctx.policies:
        if not policy.in_force:
            continue
        for rule in policy.missing_shop(ctx.creator, merchant_id):
            reasons.append(
                Reason(
                    code="shop_required",
                    message=f"a {rule.shop_kind} shop is required to use the showcase",
                    policy_id=policy.policy_id,
                )
            )
        if product is not None and policy.disallows(product.source, merchant_id, ctx.merchant):
            where = product.source.kind + (
                f"/{product.source.platform}" if product.source.platform else ""
            )
            reasons.append(
                Reason(
                    code="source_disallowed",
                    message=f"goods from {where} may not be added to a showcase",
                    field="source",
                    policy_id=policy.policy_id,
                )
            )
    if len(showcase) >= MAX_ITEMS:
        reasons.append(
            Reason(code="showcase_full", message=f"a showcase holds at most {MAX_ITEMS} items")
        )
    if offer_id is not None:
        offer = ctx.offer
        if offer is None or not offer.active or offer.product_id != product_id:
            why = (
                "is unknown"
                if offer is None
                else "is not active"
                if not offer.active
                else f"is for product {offer.product_id}"
            )
            reasons.append(
                Reason(
                    code="offer_not_available", message=f"offer {offer_id} {why}", field="offer_id"
                )
            )
        if (
            offer is not None
            and offer.plan == "targeted"
            and (showcase.creator_id not in offer.creator_ids)
        ):
            reasons.append(
                Reason(
                    code="not_in_targeted_plan",
                    message=f"offer {offer_id} is a targeted plan that does not name this creator",
                    field="offer_id",
                )
            )
    return reasons


def violates(
    policy: Policy,
    *,
    source: Source,
    merchant_id: str,
    creator: Account | None,
    merchant: Account | None,
) -> bool:
    """Whether an existing item breaks ``policy`` (``enforce_existing`` suspends it)."""
    if policy.disallows(source, merchant_id, merchant):
        return True
    return bool(policy.missing_shop(creator, merchant_id))


@dataclass(frozen=True)
class HoldChange:
    """An item's holds before and after: what to write and what to announce."""

    before: frozenset[str]
    after: frozenset[str]

    @property
    def suspended(self) -> frozenset[str]:
        return self.after - self.before

    @property
    def restored(self) -> bool:
        return bool(self.before) and not self.after
