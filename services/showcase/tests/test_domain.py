"""Unit tests of the pure showcase domain: ordering, refusals, rules and exemptions."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vitrine.contract.events import (
    DisallowSource,
    Exemptions,
    ItemAdded,
    ItemSuspended,
    RequireShop,
    ShowcaseAddRequested,
    Source,
    SourceMatch,
)
from vitrine_showcase.domain import (
    HOLD_SOLD_OUT,
    MAX_ITEMS,
    Account,
    AddContext,
    Item,
    Offer,
    Policy,
    Product,
    Shop,
    Showcase,
    add,
    bars,
    hold_reason,
    item_key,
    policy_hold,
    refusal_reasons,
)

MINI = Source(kind="wechat_mini_shop")
CHANNELS = Source(kind="channels_shop")


def _item(pid: str, creator: str = "c1", source: Source = CHANNELS, merchant: str = "m1") -> Item:
    return Item(creator, pid, merchant, source, 0)


def _showcase(n: int, creator: str = "c1") -> Showcase:
    sc = Showcase(creator)
    for i in range(n):
        sc = sc.append(_item(f"p{i}", creator))
    return sc


def _codes(reasons: list[Any]) -> list[str]:
    return [r.code for r in reasons]


def _ctx(
    product: Product | None = None,
    creator: Account | None = None,
    merchant: Account | None = None,
    offer: Offer | None = None,
    policies: list[Policy] | None = None,
) -> AddContext:
    return AddContext(product, creator, merchant, offer, policies or [])


LISTED = Product("p-new", "m1", MINI, listed=True)

DISALLOW_MINI = Policy(
    "pol-mini",
    rules=(DisallowSource(surfaces=["showcase"], sources=[SourceMatch(kind="wechat_mini_shop")]),),
    phases=frozenset({"block_new"}),
)
REQUIRE_CHANNELS = Policy(
    "pol-shop",
    rules=(RequireShop(surfaces=["showcase"], shop_kind="channels_shop"),),
    phases=frozenset({"block_new"}),
)


# --- ordering --------------------------------------------------------------------------------


def test_append_remove_move_keep_positions_dense() -> None:
    sc = _showcase(4)
    assert [i.position for i in sc.items] == [0, 1, 2, 3]
    sc = sc.remove("p1")
    assert [(i.product_id, i.position) for i in sc.items] == [("p0", 0), ("p2", 1), ("p3", 2)]
    sc, at = sc.move("p3", 0)  # pin to top
    assert at == 0
    assert [i.product_id for i in sc.items] == ["p3", "p0", "p2"]
    sc, at = sc.move("p3", 99)  # clamped to the end
    assert at == 2
    assert [(i.product_id, i.position) for i in sc.items] == [("p0", 0), ("p2", 1), ("p3", 2)]


def test_of_renumbers_gaps_stably() -> None:
    items = [
        Item("c1", "a", "m", CHANNELS, 5),
        Item("c1", "b", "m", CHANNELS, 1),
        Item("c1", "c", "m", CHANNELS, 9),
    ]
    sc = Showcase.of("c1", items)
    assert [(i.product_id, i.position) for i in sc.items] == [("b", 0), ("a", 1), ("c", 2)]


@given(st.lists(st.tuples(st.sampled_from(["move", "remove"]), st.integers(0, 12)), max_size=30))
def test_positions_always_dense(ops: list[tuple[str, int]]) -> None:
    sc = _showcase(10)
    for op, n in ops:
        if not sc.items:
            break
        pid = sc.items[n % len(sc.items)].product_id
        sc = sc.remove(pid) if op == "remove" else sc.move(pid, n)[0]
        assert [i.position for i in sc.items] == list(range(len(sc.items)))


def test_item_keys_cannot_collide() -> None:
    assert item_key("a:b", "c") != item_key("a", "b:c")


def test_holds_and_reasons() -> None:
    assert hold_reason(policy_hold("P1")) == ("policy", "P1")
    assert hold_reason("product_delisted") == ("product_delisted", None)


# --- refusals --------------------------------------------------------------------------------


def test_listed_product_is_accepted() -> None:
    assert refusal_reasons(_showcase(2), "p-new", None, _ctx(LISTED)) == []


def test_product_not_listed() -> None:
    assert _codes(refusal_reasons(_showcase(0), "p-x", None, _ctx(None))) == ["product_not_listed"]
    delisted = Product("p-x", "m1", CHANNELS, listed=False)
    assert _codes(refusal_reasons(_showcase(0), "p-x", None, _ctx(delisted))) == [
        "product_not_listed"
    ]


def test_a_sold_out_product_is_added_and_held_at_once() -> None:
    cmd = ShowcaseAddRequested(creator_id="c1", product_id="p-new")
    decision = add(_showcase(2), cmd, _ctx(replace(LISTED, sold_out=True)))
    assert not decision.refused
    assert decision.events == [
        ItemAdded(creator_id="c1", product_id="p-new", position=2),
        ItemSuspended(creator_id="c1", product_id="p-new", reason="sold_out"),
    ]
    item = decision.state.find("p-new")
    assert item is not None and item.holds == {HOLD_SOLD_OUT}
    in_stock = add(_showcase(2), cmd, _ctx(LISTED))
    assert [type(e) for e in in_stock.events] == [ItemAdded]
    assert in_stock.state.find("p-new") == replace(item, holds=frozenset())


def test_showcase_full_counts_suspended_items() -> None:
    sc = _showcase(MAX_ITEMS)
    sc = Showcase(
        sc.creator_id, tuple(Item(**{**i.__dict__, "holds": frozenset({"x"})}) for i in sc.items)
    )
    assert _codes(refusal_reasons(sc, "p-new", None, _ctx(LISTED))) == ["showcase_full"]
    assert refusal_reasons(_showcase(MAX_ITEMS - 1), "p-new", None, _ctx(LISTED)) == []


def test_shop_required_and_its_exemptions() -> None:
    sc = _showcase(0)
    reasons = refusal_reasons(sc, "p-new", None, _ctx(LISTED, policies=[REQUIRE_CHANNELS]))
    assert _codes(reasons) == ["shop_required"]
    assert reasons[0].policy_id == "pol-shop"
    with_shop = Account("c1", (Shop("s1", "channels_shop"),))
    assert (
        refusal_reasons(sc, "p-new", None, _ctx(LISTED, with_shop, policies=[REQUIRE_CHANNELS]))
        == []
    )
    wrong_kind = Account("c1", (Shop("s1", "mini_program"),))
    assert _codes(
        refusal_reasons(sc, "p-new", None, _ctx(LISTED, wrong_kind, policies=[REQUIRE_CHANNELS]))
    ) == ["shop_required"]
    # a provider-built mall satisfies the rule only when the policy exempts those
    spb = Account("c1", (Shop("s1", "mini_program", service_provider_built=True),))
    assert _codes(
        refusal_reasons(sc, "p-new", None, _ctx(LISTED, spb, policies=[REQUIRE_CHANNELS]))
    ) == ["shop_required"]
    exempting = Policy(
        "pol-shop",
        rules=REQUIRE_CHANNELS.rules,
        exemptions=Exemptions(service_provider_built=True),
        phases=frozenset({"block_new"}),
    )
    assert refusal_reasons(sc, "p-new", None, _ctx(LISTED, spb, policies=[exempting])) == []


def test_source_disallowed_and_its_exemptions() -> None:
    sc = _showcase(0)
    reasons = refusal_reasons(sc, "p-new", None, _ctx(LISTED, policies=[DISALLOW_MINI]))
    assert _codes(reasons) == ["source_disallowed"]
    assert reasons[0].policy_id == "pol-mini"
    # another source is fine
    ok = Product("p-new", "m1", CHANNELS, listed=True)
    assert refusal_reasons(sc, "p-new", None, _ctx(ok, policies=[DISALLOW_MINI])) == []
    # merchant_ids exemption
    by_merchant = Policy(
        "pol-mini",
        rules=DISALLOW_MINI.rules,
        exemptions=Exemptions(merchant_ids=["m1"]),
        phases=frozenset({"block_new"}),
    )
    assert refusal_reasons(sc, "p-new", None, _ctx(LISTED, policies=[by_merchant])) == []
    # service_provider_built: the MERCHANT's account (account_id == merchant_id) holds such a shop
    spb_policy = Policy(
        "pol-mini",
        rules=DISALLOW_MINI.rules,
        exemptions=Exemptions(service_provider_built=True),
        phases=frozenset({"block_new"}),
    )
    merchant = Account("m1", (Shop("s9", "mini_program", service_provider_built=True),))
    assert (
        refusal_reasons(sc, "p-new", None, _ctx(LISTED, merchant=merchant, policies=[spb_policy]))
        == []
    )
    plain = Account("m1", (Shop("s9", "mini_program"),))
    assert _codes(
        refusal_reasons(sc, "p-new", None, _ctx(LISTED, merchant=plain, policies=[spb_policy]))
    ) == ["source_disallowed"]


def test_platform_specific_rule() -> None:
    jd_rule = Policy(
        "pol-jd",
        rules=(
            DisallowSource(
                surfaces=["showcase"],
                sources=[SourceMatch(kind="third_party_platform", platform="jd")],
            ),
        ),
        phases=frozenset({"block_new"}),
    )
    jd = Product("p", "m1", Source(kind="third_party_platform", platform="jd"), True)
    pdd = Product("p", "m1", Source(kind="third_party_platform", platform="pinduoduo"), True)
    assert _codes(refusal_reasons(_showcase(0), "p", None, _ctx(jd, policies=[jd_rule]))) == [
        "source_disallowed"
    ]
    assert refusal_reasons(_showcase(0), "p", None, _ctx(pdd, policies=[jd_rule])) == []


def test_rules_on_other_surfaces_and_lifted_policies_do_not_apply() -> None:
    live_only = Policy(
        "pol-live",
        rules=(DisallowSource(surfaces=["live"], sources=[SourceMatch(kind="wechat_mini_shop")]),),
        phases=frozenset({"block_new"}),
    )
    lifted = Policy("pol-mini", DISALLOW_MINI.rules, phases=DISALLOW_MINI.phases, lifted=True)
    not_yet = Policy("pol-mini", DISALLOW_MINI.rules)
    for policy in (live_only, lifted, not_yet):
        assert refusal_reasons(_showcase(0), "p-new", None, _ctx(LISTED, policies=[policy])) == []


def test_offer_checks() -> None:
    sc = _showcase(0)
    general = Offer("o1", "p-new", "m1", "general")
    assert refusal_reasons(sc, "p-new", "o1", _ctx(LISTED, offer=general)) == []
    assert _codes(refusal_reasons(sc, "p-new", "o1", _ctx(LISTED, offer=None))) == [
        "offer_not_available"
    ]
    withdrawn = Offer("o1", "p-new", "m1", "general", withdrawn=True)
    suspended = Offer("o1", "p-new", "m1", "general", suspended=True)
    other = Offer("o1", "p-other", "m1", "general")
    for offer in (withdrawn, suspended, other):
        assert _codes(refusal_reasons(sc, "p-new", "o1", _ctx(LISTED, offer=offer))) == [
            "offer_not_available"
        ]
    targeted = Offer("o1", "p-new", "m1", "targeted", frozenset({"c2"}))
    assert _codes(refusal_reasons(sc, "p-new", "o1", _ctx(LISTED, offer=targeted))) == [
        "not_in_targeted_plan"
    ]
    mine = Offer("o1", "p-new", "m1", "targeted", frozenset({"c1"}))
    assert refusal_reasons(sc, "p-new", "o1", _ctx(LISTED, offer=mine)) == []


def test_every_applicable_reason_at_once() -> None:
    sc = _showcase(MAX_ITEMS)
    offer = Offer("o1", "p-other", "m1", "targeted", frozenset({"c2"}), suspended=True)
    delisted_mini = Product("p-new", "m1", MINI, listed=False)
    reasons = refusal_reasons(
        sc,
        "p-new",
        "o1",
        _ctx(delisted_mini, offer=offer, policies=[REQUIRE_CHANNELS, DISALLOW_MINI]),
    )
    assert sorted(_codes(reasons)) == sorted(
        [
            "product_not_listed",
            "shop_required",
            "source_disallowed",
            "showcase_full",
            "offer_not_available",
            "not_in_targeted_plan",
        ]
    )


# --- enforcement matching --------------------------------------------------------------------


def _enforcing(policy: Policy, **over: object) -> Policy:
    return replace(policy, phases=frozenset({"block_new", "enforce_existing"}), **over)  # type: ignore[arg-type]


def test_bars_honours_exemptions() -> None:
    policy = _enforcing(
        DISALLOW_MINI,
        exemptions=Exemptions(merchant_ids=["m-exempt"], service_provider_built=True),
    )
    spb = Account("m-spb", (Shop("s", "mini_program", service_provider_built=True),))
    assert bars(policy, _item("p", source=MINI), None, None)
    assert not bars(policy, _item("p", source=CHANNELS), None, None)
    assert not bars(policy, _item("p", source=MINI, merchant="m-exempt"), None, None)
    assert not bars(policy, _item("p", source=MINI, merchant="m-spb"), None, spb)


def test_bars_require_shop() -> None:
    shop = Account("c1", (Shop("s", "channels_shop"),))
    assert bars(REQUIRE_CHANNELS, _item("p"), None, None)
    assert not bars(REQUIRE_CHANNELS, _item("p"), shop, None)
    assert shop.close("s").shops == ()
    assert shop.register(Shop("s", "mini_program")).holds("mini_program")


@pytest.mark.parametrize("plan", ["general", "targeted"])
def test_offer_active_flag(plan: str) -> None:
    offer = Offer("o", "p", "m", plan)
    assert offer.active
    assert not Offer("o", "p", "m", plan, withdrawn=True).active
