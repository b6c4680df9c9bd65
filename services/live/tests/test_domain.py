"""Live's pure domain: sessions, entry rules, cart holds (unit and property tests)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from vitrine.contract.events import (
    LiveAddRequested,
    LiveEndRequested,
    LiveExplainRequested,
    LiveItemRestored,
    LiveItemSuspended,
    LiveRemoveRequested,
    LiveStartRequested,
    Source,
)
from vitrine.contract.holds import HOLD_DELISTED, HOLD_OFFER, HOLD_SOLD_OUT, policy_hold
from vitrine_live import domain
from vitrine_live.domain import AddContext, CartItem, Offer, Policy, Product, Session

T0 = datetime(2022, 11, 30, 20, 0, tzinfo=UTC)
SHOP = Source(kind="channels_shop")
MINI = Source(kind="wechat_mini_shop")


def session(*pids: str, offer: str | None = None) -> Session:
    items = tuple(CartItem(p, "m1", SHOP, n, offer_id=offer) for n, p in enumerate(pids))
    return Session("s1", "c1", "直播", items=items, started_at=T0)


def ctx(product: Product | None = None, **kw: Any) -> AddContext:
    base: dict[str, object] = {
        "product": product if product is not None else Product("p9", "m1", SHOP, True),
        "creator": None,
        "merchant": None,
        "offer": None,
        "in_showcase": True,
        "policies": (),
    }
    base.update(kw)
    return AddContext(**base)  # type: ignore[arg-type]


def add(pid: str = "p9", offer: str | None = None) -> LiveAddRequested:
    return LiveAddRequested(creator_id="c1", session_id="s1", product_id=pid, offer_id=offer)


def codes(reasons: object) -> list[str]:
    return [r.code for r in reasons]  # type: ignore[attr-defined]


def test_start_refuses_a_second_open_session_and_an_ended_id() -> None:
    cmd = LiveStartRequested(creator_id="c1", session_id="s2", title="t")
    assert codes(domain.start(None, session(), cmd, T0).refused) == ["session_already_open"]
    ended = replace(session(), session_id="s2", open=False)
    assert codes(domain.start(ended, None, cmd, T0).refused) == ["session_not_open"]
    started = domain.start(None, None, cmd, T0)
    assert started.state is not None and started.state.open and started.state.started_at == T0


def test_access_names_the_owner_and_the_open_session() -> None:
    end = LiveEndRequested(creator_id="c1", session_id="s1")
    assert domain.access("c1", end, session()) == []
    assert codes(domain.access("c2", end, session())) == ["not_session_owner"]
    other = replace(session(), creator_id="c2")
    assert codes(domain.access("c1", end, other)) == ["not_session_owner"]
    assert codes(domain.access("c1", end, None)) == ["session_not_open"]
    assert codes(domain.access("c1", end, replace(session(), open=False))) == ["session_not_open"]


def test_every_entry_reason_is_listed() -> None:
    full = session(*[f"p{i}" for i in range(domain.MAX_CART)])
    not_listed = Product("p9", "m1", SHOP, False)
    assert codes(domain.refusal_reasons(full, "p9", None, ctx(not_listed, in_showcase=False))) == [
        "product_not_listed",
        "not_in_showcase",
        "cart_full",
    ]
    sold_out = Product("p9", "m1", SHOP, True, sold_out=True)
    assert codes(domain.refusal_reasons(session(), "p9", None, ctx(sold_out))) == ["sold_out"]


def test_offers_open_the_cart_only_when_usable() -> None:
    targeted = Offer("o1", "p9", "m1", "targeted", frozenset({"c2"}))
    no_showcase: dict[str, Any] = {"in_showcase": False}
    reasons = domain.refusal_reasons(session(), "p9", "o1", ctx(offer=targeted, **no_showcase))
    assert codes(reasons) == ["not_in_targeted_plan"]
    withdrawn = Offer("o1", "p9", "m1", "general", withdrawn=True)
    reasons = domain.refusal_reasons(session(), "p9", "o1", ctx(offer=withdrawn, **no_showcase))
    assert codes(reasons) == ["offer_not_available"]
    other_product = Offer("o1", "p8", "m1", "general")
    reasons = domain.refusal_reasons(session(), "p9", "o1", ctx(offer=other_product))
    assert codes(reasons) == ["offer_not_available"]
    general = Offer("o1", "p9", "m1", "general")
    assert domain.refusal_reasons(session(), "p9", "o1", ctx(offer=general, **no_showcase)) == []


def test_policies_in_force_refuse_by_source_and_shop() -> None:
    from vitrine.contract.events import DisallowSource, RequireShop, SourceMatch

    mini = DisallowSource(surfaces=["live"], sources=[SourceMatch(kind="wechat_mini_shop")])
    shop = RequireShop(surfaces=["live"], shop_kind="channels_shop")
    showcase_only = DisallowSource(
        surfaces=["showcase"], sources=[SourceMatch(kind="wechat_mini_shop")]
    )
    policies = [
        Policy("pol-a", (mini,), phases=frozenset({"block_new"})),
        Policy("pol-b", (shop,), phases=frozenset({"block_new"})),
        Policy("pol-c", (showcase_only,), phases=frozenset({"block_new"})),
        Policy("pol-d", (mini,), phases=frozenset({"block_new"}), lifted=True),
    ]
    product = Product("p9", "m1", MINI, True)
    reasons = domain.refusal_reasons(session(), "p9", None, ctx(product, policies=policies))
    assert [(r.code, r.policy_id) for r in reasons] == [
        ("source_disallowed", "pol-a"),
        ("shop_required", "pol-b"),
    ]


def test_add_remove_explain_keep_positions_and_the_presented_product() -> None:
    s = domain.add(session("p1", "p2"), add("p9"), ctx()).state
    assert [(i.product_id, i.position) for i in s.items] == [("p1", 0), ("p2", 1), ("p9", 2)]
    explain = LiveExplainRequested(creator_id="c1", session_id="s1", product_id="p2")
    s = domain.explain(s, explain).state
    assert s.explaining == "p2"
    assert domain.explain(s, explain).ignored == "already_explaining"
    s = domain.remove(
        s, LiveRemoveRequested(creator_id="c1", session_id="s1", product_id="p2")
    ).state
    assert [(i.product_id, i.position) for i in s.items] == [("p1", 0), ("p9", 1)]
    assert s.explaining is None
    missing = LiveRemoveRequested(creator_id="c1", session_id="s1", product_id="zz")
    assert codes(domain.remove(s, missing).refused) == ["not_in_cart"]
    ended = domain.end(s, LiveEndRequested(creator_id="c1", session_id="s1"), T0)
    assert not ended.state.open and ended.events[0].items == 2  # type: ignore[attr-defined]


def test_explaining_a_suspended_item_is_refused() -> None:
    s = domain.product_delisted(session("p1"), "p1").state
    explain = LiveExplainRequested(creator_id="c1", session_id="s1", product_id="p1")
    assert codes(domain.explain(s, explain).refused) == ["item_suspended"]


def test_offer_changes_touch_only_items_taken_through_it() -> None:
    s = replace(
        session("p1"),
        items=(CartItem("p1", "m1", SHOP, 0, "o1"), CartItem("p2", "m1", SHOP, 1, None)),
    )
    gone = domain.offer_changed(s, Offer("o1", "p1", "m1", "general", withdrawn=True))
    assert [(e.product_id, e.reason) for e in gone.events] == [("p1", HOLD_OFFER)]  # type: ignore[attr-defined]
    back = domain.offer_changed(gone.state, Offer("o1", "p1", "m1", "general"))
    assert [type(e) for e in back.events] == [LiveItemRestored]


def test_ended_sessions_are_not_held() -> None:
    ended = replace(session("p1"), open=False)
    assert domain.product_delisted(ended, "p1").ignored == "not_in_open_cart"


CAUSES = st.sampled_from([HOLD_DELISTED, HOLD_SOLD_OUT, HOLD_OFFER, policy_hold("pol-1")])
STEP = st.tuples(st.booleans(), CAUSES)


@settings(max_examples=200, deadline=None)
@given(st.lists(STEP, max_size=30))
def test_an_item_is_restored_exactly_when_its_last_cause_goes(
    steps: list[tuple[bool, str]],
) -> None:
    """Whatever order causes come and go in: the item is active iff no cause is held, each
    added cause is announced once, and a restoration comes only on the step emptying the set."""
    s = session("p1")
    held: set[str] = set()
    for add_, cause in steps:
        kw = {"add": [cause]} if add_ else {"remove": [cause]}
        d = domain.change_holds(s, "p1", **kw)  # type: ignore[arg-type]
        before = set(held)
        held = held | {cause} if add_ else held - {cause}
        suspended = [e for e in d.events if isinstance(e, LiveItemSuspended)]
        restored = [e for e in d.events if isinstance(e, LiveItemRestored)]
        assert len(suspended) == (1 if add_ and cause not in before else 0)
        assert len(restored) == (1 if before and not held else 0)
        s = d.state
        item = s.find("p1")
        assert item is not None and set(item.holds) == held and item.active == (not held)
