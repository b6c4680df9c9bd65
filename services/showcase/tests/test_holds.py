"""The suspension state machine of showcase items (pure domain): a set of causes per item."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vitrine.contract.events import (
    DisallowSource,
    EventData,
    ItemRestored,
    ItemSuspended,
    RequireShop,
    Source,
    SourceMatch,
)
from vitrine.contract.policy_kernel import Account, Shop
from vitrine_showcase import domain
from vitrine_showcase.domain import (
    HOLD_DELISTED,
    HOLD_OFFER,
    HOLD_SOLD_OUT,
    Item,
    Offer,
    Policy,
    Product,
    change_holds,
    policy_hold,
)

CHANNELS = Source(kind="channels_shop")
CAUSES = [HOLD_DELISTED, HOLD_SOLD_OUT, HOLD_OFFER, policy_hold("P1"), policy_hold("P2")]


def item(holds: frozenset[str] = frozenset(), offer_id: str | None = None) -> Item:
    return Item("c1", "p1", "m1", CHANNELS, 0, holds, offer_id)


# --- the state machine -------------------------------------------------------------------------


def test_first_cause_suspends_and_only_the_last_restores() -> None:
    d1 = change_holds(item(), add=[policy_hold("P1")])
    assert d1.events == [
        ItemSuspended(creator_id="c1", product_id="p1", reason="policy", policy_id="P1")
    ]
    d2 = change_holds(d1.state, add=[HOLD_DELISTED])
    assert [(e.reason, getattr(e, "policy_id", None)) for e in d2.events] == [  # type: ignore[attr-defined]
        (HOLD_DELISTED, None)
    ]
    d3 = change_holds(d2.state, remove=[policy_hold("P1")])
    assert d3.events == [] and d3.state.holds == {HOLD_DELISTED} and not d3.state.active
    d4 = change_holds(d3.state, remove=[HOLD_DELISTED])
    assert d4.events == [ItemRestored(creator_id="c1", product_id="p1", reason=HOLD_DELISTED)]
    assert d4.state.active


def test_a_cause_already_there_or_absent_changes_nothing() -> None:
    held = item(frozenset({HOLD_SOLD_OUT}))
    assert change_holds(held, add=[HOLD_SOLD_OUT]).ignored == "unchanged"
    assert change_holds(item(), remove=[HOLD_SOLD_OUT]).ignored == "unchanged"


def test_each_event_has_a_key_of_its_own() -> None:
    d = change_holds(item(), add=[HOLD_DELISTED, policy_hold("P1")])
    keys = [e.key for e in d.emits]
    assert len(set(keys)) == 2 and all(k and item().key in k for k in keys)


ops = st.lists(st.tuples(st.booleans(), st.sampled_from(CAUSES)), max_size=30)


@given(ops)
def test_restored_iff_no_cause_remains(steps: list[tuple[bool, str]]) -> None:
    """Whatever the sequence: the item is suspended exactly while a cause is held; the events
    alternate into ``suspended`` (first cause) … ``restored`` (last cause gone)."""
    current = item()
    expected: set[str] = set()
    active = True
    for adding, cause in steps:
        if adding:
            expected.add(cause)
        else:
            expected.discard(cause)
        decision = (
            change_holds(current, add=[cause]) if adding else change_holds(current, remove=[cause])
        )
        current = decision.state
        assert current.holds == expected
        restored = [e for e in decision.events if isinstance(e, ItemRestored)]
        suspended = [e for e in decision.events if isinstance(e, ItemSuspended)]
        assert bool(restored) == (not active and not expected)
        if active and expected:
            assert len(suspended) == 1  # the first cause suspends it
        active = not expected
        assert current.active == active


@given(st.permutations(CAUSES), st.permutations(CAUSES))
def test_the_order_causes_come_and_go_does_not_matter(arrive: list[str], leave: list[str]) -> None:
    """Causes arriving and leaving in any order: one suspension when the first arrives, one
    restoration when the last leaves, and the same final state."""
    current = item()
    events: list[EventData] = []
    for cause in arrive:
        d = change_holds(current, add=[cause])
        current, events = d.state, events + d.events
    assert current.holds == set(CAUSES)
    suspended = [e for e in events if isinstance(e, ItemSuspended)]
    assert (suspended[0].reason, suspended[0].policy_id) == domain.hold_reason(arrive[0])
    assert len(suspended) == len(CAUSES)  # each cause is announced once
    for cause in leave:
        d = change_holds(current, remove=[cause])
        current, events = d.state, events + d.events
    restored = [e for e in events if isinstance(e, ItemRestored)]
    assert current == item() and len(restored) == 1
    assert (restored[0].reason, restored[0].policy_id) == domain.hold_reason(leave[-1])


# --- the causes --------------------------------------------------------------------------------


def test_sold_out_and_back_in_stock() -> None:
    out = domain.stock_changed(item(), sold_out=True)
    assert out.state.holds == {HOLD_SOLD_OUT}
    assert out.events == [ItemSuspended(creator_id="c1", product_id="p1", reason="sold_out")]
    delisted = domain.product_delisted(out.state).state
    back = domain.stock_changed(delisted, sold_out=False)
    assert back.state.holds == {HOLD_DELISTED} and back.events == []  # still delisted


def test_offer_unavailable_while_withdrawn_suspended_or_not_on_the_plan() -> None:
    taken = item(offer_id="o1")
    general = Offer("o1", "p1", "m1", "general")
    assert domain.offer_changed(taken, general).ignored == "unchanged"
    for off in (
        Offer("o1", "p1", "m1", "general", withdrawn=True),
        Offer("o1", "p1", "m1", "general", suspended=True),
        Offer("o1", "p1", "m1", "targeted", frozenset({"someone-else"})),
    ):
        held = domain.offer_changed(taken, off)
        assert held.state.holds == {HOLD_OFFER}
        assert held.events == [
            ItemSuspended(creator_id="c1", product_id="p1", reason="offer_unavailable")
        ]
        back = domain.offer_changed(held.state, Offer("o1", "p1", "m1", "targeted", {"c1"}))  # type: ignore[arg-type]
        assert back.state.active
        assert back.events == [
            ItemRestored(creator_id="c1", product_id="p1", reason="offer_unavailable")
        ]
    assert domain.offer_changed(item(), general).ignored == "other_offer"


REQUIRE = Policy(
    "P1",
    rules=(RequireShop(surfaces=["showcase"], shop_kind="channels_shop"),),
    phases=frozenset({"block_new", "enforce_existing"}),
)


def test_shop_closed_holds_and_shop_registered_releases() -> None:
    shop = Account("c1", (Shop("s1", "channels_shop"),))
    closed = domain.rejudge(item(), [REQUIRE], shop.close("s1"), None)
    assert closed.events == [
        ItemSuspended(creator_id="c1", product_id="p1", reason="policy", policy_id="P1")
    ]
    registered = domain.rejudge(closed.state, [REQUIRE], shop, None)
    assert registered.state.active
    assert registered.events == [
        ItemRestored(creator_id="c1", product_id="p1", reason="policy", policy_id="P1")
    ]
    block_new_only = Policy("P1", REQUIRE.rules, phases=frozenset({"block_new"}))
    assert domain.rejudge(item(), [block_new_only], None, None).ignored == "unchanged"


def test_relisting_from_a_barred_source_stays_held_by_the_policy() -> None:
    """A new version from a source an enforcing policy bars: the policy holds the item before
    the delisting is released, so it never comes back in between."""
    mini = Source(kind="wechat_mini_shop")
    policy = Policy(
        "P2",
        rules=(DisallowSource(surfaces=["showcase"], sources=[SourceMatch(kind=mini.kind)]),),
        phases=frozenset({"enforce_existing"}),
    )
    delisted = domain.product_delisted(item()).state
    relisted = domain.product_listed(delisted, Product("p1", "m1", mini, True), policies=[policy])
    assert relisted.state.holds == {policy_hold("P2")} and relisted.state.source == mini
    assert [e.reason for e in relisted.events] == ["policy"]  # type: ignore[attr-defined]
    back = domain.product_listed(
        relisted.state, Product("p1", "m1", CHANNELS, True), policies=[policy]
    )
    assert back.state.active and [type(e) for e in back.events] == [ItemRestored]
