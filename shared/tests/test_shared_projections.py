"""The projections showcase and live (and selection, compliance) share: offers, accounts,
a policy's rulings, and how they are kept in MongoDB."""

from __future__ import annotations

from datetime import UTC, datetime

from vitrine.contract.events import (
    EnforcementReported,
    Exemptions,
    OfferActivated,
    OfferRefused,
    OfferRestored,
    OfferSuspended,
    OfferWithdrawn,
    PolicyInForce,
    ProductBackInStock,
    ProductDelisted,
    ProductListed,
    ProductSoldOut,
    ShopClosed,
    ShopRegistered,
)
from vitrine.contract.listings import Product, product_after
from vitrine.contract.offers import Offer, offer_after, offer_reasons
from vitrine.contract.policy_kernel import Account, PolicyState, Shop, account_after
from vitrine.runtime.handlers import report_enforcement
from vitrine.runtime.messaging.unit_of_work import InMemoryUnitOfWork, incoming
from vitrine.runtime.projection_documents import (
    account_document,
    account_from_document,
    offer_document,
    offer_from_document,
    product_document,
    product_from_document,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
IDS = {"offer_id": "o1", "product_id": "p1", "merchant_id": "m1"}


def activated(plan: str = "targeted", creators: tuple[str, ...] = ("c1",)) -> OfferActivated:
    return OfferActivated.model_validate(
        {**IDS, "commission_bps": 1000, "plan": plan, "creator_ids": list(creators),
         "effective_at": T0}
    )  # fmt: skip


def test_an_offer_folds_activation_suspension_restoration_and_withdrawal() -> None:
    offer = offer_after(activated(), None)
    assert offer == Offer("o1", "p1", "m1", "targeted", frozenset({"c1"}))
    assert offer.available_to("c1") and not offer.available_to("c2")
    suspended = offer_after(OfferSuspended(**IDS, reason="policy"), offer)
    assert suspended is not None and not suspended.active
    # a re-publish keeps the suspension; only offer.restored lifts it
    again = offer_after(activated(plan="general"), suspended)
    assert again is not None and again.suspended and again.names("c2")
    restored = offer_after(OfferRestored(**IDS), again)
    assert restored is not None and restored.available_to("c2")
    withdrawn = offer_after(OfferWithdrawn(**IDS), restored)
    assert withdrawn is not None and withdrawn.withdrawn and not withdrawn.active


def test_an_offer_never_seen_is_only_recorded_when_withdrawn() -> None:
    assert offer_after(OfferSuspended(**IDS, reason="policy"), None) is None
    assert offer_after(OfferRestored(**IDS), None) is None
    assert offer_after(OfferRefused(offer_id="o1", merchant_id="m1"), None) is None
    assert offer_after(OfferWithdrawn(**IDS), None) == Offer(
        "o1", "p1", "m1", "general", withdrawn=True
    )


def test_offer_reasons_name_every_cause() -> None:
    offer = offer_after(activated(), None)
    assert offer_reasons(offer, "o1", "p1", "c1") == []
    assert [r.code for r in offer_reasons(None, "o1", "p1", "c1")] == ["offer_not_available"]
    other = offer_reasons(offer, "o1", "p2", "c2", creator="this creator")
    assert [(r.code, r.message) for r in other] == [
        ("offer_not_available", "offer o1 is for product p1"),
        ("not_in_targeted_plan", "offer o1 is a targeted plan that does not name this creator"),
    ]
    assert "does not name c2" in offer_reasons(offer, "o1", "p1", "c2")[0].message


def test_an_account_folds_its_shops() -> None:
    registered = ShopRegistered(account_id="a1", shop_id="s1", shop_kind="channels_shop")
    account = account_after(None, registered)
    assert account == Account("a1", (Shop("s1", "channels_shop"),))
    assert account_after(account, ShopClosed(account_id="a1", shop_id="s1")) == Account("a1")


def test_documents_read_back_what_they_wrote() -> None:
    account = Account("a1", (Shop("s1", "wechat_mini_shop", service_provider_built=True),))
    assert account_from_document(account_document(account)) == account
    offer = Offer("o1", "p1", "m1", "targeted", frozenset({"c2", "c1"}), suspended=True)
    assert offer_document(offer)["creator_ids"] == ["c1", "c2"]
    assert offer_from_document(offer_document(offer)) == offer


def test_a_policy_reaches_phases_with_the_terms_ruled() -> None:
    ruling = PolicyInForce.model_validate(
        {"policy_id": "pol", "phase": "block_new", "rules": [], "effective_at": T0}
    )
    policy = PolicyState("pol").reached(ruling)
    assert policy.in_force and not policy.enforcing
    enforcing = policy.reached(ruling.model_copy(update={"phase": "enforce_existing"}))
    assert enforcing.phases == {"block_new", "enforce_existing"} and enforcing.enforcing
    assert enforcing.exemptions == Exemptions()


def test_report_enforcement_is_keyed_by_phase() -> None:
    uow = InMemoryUnitOfWork(service="live")
    cause = incoming(activated(), "o1")
    report_enforcement(uow, "live", "pol", "lifted", 3, cause)
    report_enforcement(uow, "live", "pol", "enforce_existing", 3, cause)
    first, _ = uow.events("compliance.reports")
    assert isinstance(first, EnforcementReported)
    assert (first.phase, first.affected, first.service) == ("lifted", 3, "live")
    ids = [e.id for _, e in uow.emitted]
    assert len(set(ids)) == 2


def listed(version: int, kind: str = "channels_shop") -> ProductListed:
    return ProductListed.model_validate(
        {"product_id": "p1", "merchant_id": "m1", "version": version, "source": {"kind": kind},
         "title": "茶杯", "price_fen": 1990, "category": "家居"}
    )  # fmt: skip


def test_the_product_projection_follows_listing_and_stock_apart() -> None:
    assert product_after(ProductDelisted(product_id="p1", reason="withdrawn"), None) is None
    assert product_after(ProductSoldOut(product_id="p1", merchant_id="m1", version=1), None) is None
    p = product_after(listed(1), None)
    assert p == Product("p1", "m1", listed(1).source, True, version=1, sold_out=False)
    p = product_after(ProductSoldOut(product_id="p1", merchant_id="m1", version=1), p)
    assert p is not None and p.sold_out and p.listed
    p = product_after(ProductDelisted(product_id="p1", reason="withdrawn"), p)
    assert p is not None and not p.listed and p.sold_out
    # a relisting brings the new version and source, and keeps the stock state
    p = product_after(listed(2, "wechat_mini_shop"), p)
    assert p is not None and p.listed and p.sold_out and p.version == 2
    assert p.source.kind == "wechat_mini_shop"
    back = ProductBackInStock(product_id="p1", merchant_id="m1", version=2, total_stock=3)
    p = product_after(back, p)
    assert p is not None and not p.sold_out


def test_product_documents_read_back_and_old_ones_default() -> None:
    product = Product("p1", "m1", listed(3, "wechat_mini_shop").source, False, version=3,
                      sold_out=True)  # fmt: skip
    assert product_from_document(product_document(product)) == product
    old = {"_id": "p1", "merchant_id": "m1", "source": {"kind": "channels_shop"}, "listed": True}
    assert product_from_document(old) == Product("p1", "m1", listed(1).source, True)
