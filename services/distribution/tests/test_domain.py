"""Unit tests of distribution's pure domain: rates over time, offers, commissions (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from vitrine.contract.events import (
    DisallowSource,
    Exemptions,
    OfferPublished,
    OfferWithdrawRequested,
    OrderPaid,
    Reason,
    RequireShop,
    Source,
    SourceMatch,
)
from vitrine.contract.policy_kernel import Account, Shop
from vitrine_distribution import domain
from vitrine_distribution.domain import (
    SHANGHAI,
    Offer,
    Order,
    PolicyView,
    ProductView,
    commission_for,
    next_midnight_shanghai,
    rate_at,
    schedule,
)

T0 = datetime(2024, 3, 10, 15, 0, tzinfo=UTC)  # 23:00 Asia/Shanghai
MIDNIGHT = datetime(2024, 3, 11, 0, 0, tzinfo=SHANGHAI).astimezone(UTC)
MS = timedelta(milliseconds=1)
PROVIDER_BUILT_M1 = Account("m-1", (Shop("s-1", "mini_program", service_provider_built=True),))
SPB = {"m-spb": Account("m-spb", (Shop("s-spb", "mini_program", service_provider_built=True),))}


def sh(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=SHANGHAI)


def product(
    pid: str = "p-1", merchant: str = "m-1", *, listed: bool = True, kind: str = "channels_shop"
) -> ProductView:
    return ProductView(pid, merchant, listed, Source(kind=kind))  # type: ignore[arg-type]


def published(
    offer_id: str = "o-1",
    product_id: str = "p-1",
    merchant: str = "m-1",
    bps: int = 1000,
    plan: str = "general",
    creators: list[str] | None = None,
) -> OfferPublished:
    return OfferPublished(
        offer_id=offer_id,
        product_id=product_id,
        merchant_id=merchant,
        commission_bps=bps,
        plan=plan,  # type: ignore[arg-type]
        creator_ids=creators or [],
    )


def mini_shop_policy(pid: str = "pol-1", **exemptions: object) -> PolicyView:
    rule = DisallowSource(surfaces=["distribution"], sources=[SourceMatch(kind="wechat_mini_shop")])
    return PolicyView(pid, "enforce_existing", (rule,), Exemptions.model_validate(exemptions))


def publish(
    offer: Offer | None, cmd: OfferPublished, now: datetime = T0, **kw: object
) -> domain.offers.OfferDecision:
    args: dict[str, object] = {
        "product": product(cmd.product_id),
        "policies": [],
        "merchant": None,
        "general_live": False,
    }
    args.update(kw)
    return domain.publish(offer, cmd, now, **args)  # type: ignore[arg-type]


def active_offer(bps: int = 1000, at: datetime = T0, **kw: object) -> Offer:
    out = publish(None, published(bps=bps, **kw), at)  # type: ignore[arg-type]
    assert out.state is not None and not out.refused
    return out.state


def paid(
    order_id: str = "ord-1",
    amount: int = 10_000,
    *,
    at: datetime = T0 + timedelta(minutes=1),
    creator: str | None = "c-1",
    offer_id: str | None = "o-1",
    product_id: str = "p-1",
    merchant: str = "m-1",
) -> OrderPaid:
    return OrderPaid(
        order_id=order_id,
        product_id=product_id,
        merchant_id=merchant,
        amount_fen=amount,
        creator_id=creator,
        offer_id=offer_id,
        paid_at=at,
    )


def codes(reasons: Sequence[Reason]) -> list[str]:
    return [r.code for r in reasons]


# --- money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "bps", "expected"),
    [
        (1990, 1050, 209),  # 208.95
        (10, 150, 0),  # 0.15
        (1, 5000, 1),  # 0.5 rounds up
        (3, 5000, 2),  # 1.5 rounds up (not to even)
        (5, 1000, 1),  # 0.5
        (4, 1000, 0),  # 0.4
        (10**12, 9000, 9 * 10**11),
        (0, 9000, 0),
    ],
)
def test_commission_rounds_half_up_in_integers(amount: int, bps: int, expected: int) -> None:
    assert commission_for(amount, bps) == expected
    exact = (Decimal(amount) * bps / 10000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert commission_for(amount, bps) == int(exact)


# --- rates over time ---------------------------------------------------------------------------


def test_next_midnight_shanghai() -> None:
    assert next_midnight_shanghai(sh(2024, 3, 10, 23, 59, 59, 999_000)) == MIDNIGHT
    assert next_midnight_shanghai(sh(2024, 3, 10, 0, 0, 0)) == sh(2024, 3, 11).astimezone(UTC)
    assert next_midnight_shanghai(sh(2024, 3, 11, 0, 0, 0)) == sh(2024, 3, 12).astimezone(UTC)
    # 16:00 UTC is 00:00 in Shanghai: a UTC afternoon is already "tomorrow" there
    assert next_midnight_shanghai(datetime(2024, 3, 10, 16, 0, 1, tzinfo=UTC)) == sh(2024, 3, 12)


def test_raise_is_immediate_and_cut_waits_for_midnight() -> None:
    history, first = schedule((), 1000, T0)
    assert first.effective_at == T0
    history, cut = schedule(history, 500, T0 + timedelta(minutes=30))
    assert cut.effective_at == MIDNIGHT
    assert rate_at(history, T0 - MS) is None
    assert rate_at(history, T0) == 1000
    assert rate_at(history, MIDNIGHT - MS) == 1000
    assert rate_at(history, MIDNIGHT) == 500
    history, raise_ = schedule(history, 1500, MIDNIGHT + timedelta(minutes=30))
    assert raise_.effective_at == MIDNIGHT + timedelta(minutes=30)
    assert rate_at(history, MIDNIGHT + timedelta(minutes=30) - MS) == 500
    assert rate_at(history, MIDNIGHT + timedelta(minutes=30)) == 1500


def test_a_publish_supersedes_a_scheduled_cut() -> None:
    history, _ = schedule((), 1000, T0)
    history, _ = schedule(history, 500, T0 + timedelta(minutes=10))  # cut at midnight
    history, again = schedule(history, 1000, T0 + timedelta(minutes=20))  # back to 1000: no cut
    assert again.effective_at == T0 + timedelta(minutes=20)
    assert history[1].superseded_at == T0 + timedelta(minutes=20)
    assert rate_at(history, MIDNIGHT + timedelta(hours=1)) == 1000
    # a smaller cut replaces a scheduled one, still at midnight
    history, _ = schedule(history, 700, T0 + timedelta(minutes=30))
    history, cut = schedule(history, 800, T0 + timedelta(minutes=40))
    assert cut.effective_at == MIDNIGHT
    assert rate_at(history, MIDNIGHT) == 800
    assert len(history) == 5  # the full history is kept


def test_times_are_milliseconds_utc() -> None:
    history, entry = schedule((), 1000, datetime(2024, 3, 10, 23, 0, 0, 123_456, tzinfo=SHANGHAI))
    assert entry.effective_at == datetime(2024, 3, 10, 15, 0, 0, 123_000, tzinfo=UTC)
    assert rate_at(history, datetime(2024, 3, 10, 15, 0, 0, 122_999, tzinfo=UTC)) is None


# --- offers: refusals ---------------------------------------------------------------------------


def test_publish_activates_a_valid_offer() -> None:
    out = publish(None, published())
    assert not out.refused and out.state is not None
    assert out.state.status == "active" and out.state.active_at(T0)
    assert [e.event_type for e in out.events] == ["offer.activated"]
    assert out.events[0].effective_at == T0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kw", "cmd", "expected"),
    [
        ({"product": None}, {}, ["product_not_listed"]),
        ({"product": product(listed=False)}, {}, ["product_not_listed"]),
        ({"product": product(merchant="m-2")}, {}, ["not_product_owner"]),
        ({}, {"bps": 99}, ["invalid_commission"]),
        ({}, {"bps": 9001}, ["invalid_commission"]),
        ({}, {"bps": -5}, ["invalid_commission"]),
        (
            {"product": product(kind="wechat_mini_shop"), "policies": [mini_shop_policy()]},
            {},
            ["source_disallowed"],
        ),
        ({}, {"plan": "targeted", "creators": ["c-1"]}, ["general_plan_required"]),
        (
            {"product": product(merchant="m-2", listed=False)},
            {"bps": 10_000, "plan": "targeted"},
            [
                "not_product_owner",
                "product_not_listed",
                "invalid_commission",
                "general_plan_required",
            ],
        ),
    ],
)
def test_publish_refusals_name_every_applicable_code(
    kw: dict[str, object], cmd: dict[str, object], expected: list[str]
) -> None:
    out = publish(None, published(**cmd), **kw)  # type: ignore[arg-type]
    assert codes(out.refused) == expected
    # the state is unchanged; the refusal is an event naming the command and every reason
    assert out.state is None and [e.event_type for e in out.events] == ["offer.refused"]
    assert codes(out.events[0].reasons) == expected  # type: ignore[attr-defined]


def test_boundary_rates_are_valid() -> None:
    assert not publish(None, published(bps=100)).refused
    assert not publish(None, published(bps=9000)).refused


def test_source_disallowed_names_the_policy_and_respects_exemptions() -> None:
    mini = product(kind="wechat_mini_shop")
    out = publish(None, published(), product=mini, policies=[mini_shop_policy("pol-9")])
    assert out.refused[0].policy_id == "pol-9"
    exempt = mini_shop_policy(merchant_ids=["m-1"])
    assert not publish(None, published(), product=mini, policies=[exempt]).refused
    spb = mini_shop_policy(service_provider_built=True)
    assert publish(None, published(), product=mini, policies=[spb]).refused
    assert not publish(
        None, published(), product=mini, policies=[spb], merchant=PROVIDER_BUILT_M1
    ).refused
    # a rule on another surface does not apply to distribution
    showcase_only = PolicyView(
        "pol-s",
        "block_new",
        (DisallowSource(surfaces=["showcase"], sources=[SourceMatch(kind="wechat_mini_shop")]),),
    )
    assert not publish(None, published(), product=mini, policies=[showcase_only]).refused
    # platform-specific match
    jd = PolicyView(
        "pol-jd",
        "block_new",
        (
            DisallowSource(
                surfaces=["distribution"],
                sources=[SourceMatch(kind="third_party_platform", platform="jd")],
            ),
        ),
    )
    jd_product = ProductView("p-1", "m-1", True, Source(kind="third_party_platform", platform="jd"))
    pdd_product = ProductView(
        "p-1", "m-1", True, Source(kind="third_party_platform", platform="pinduoduo")
    )
    assert codes(publish(None, published(), product=jd_product, policies=[jd]).refused) == [
        "source_disallowed"
    ]
    assert not publish(None, published(), product=pdd_product, policies=[jd]).refused


def test_targeted_plan_with_a_live_general_plan() -> None:
    general = active_offer()
    assert domain.general_live([general], "p-1", excluding="o-2")
    assert not domain.general_live([general], "p-1", excluding="o-1")
    out = publish(
        None, published("o-2", plan="targeted", creators=["c-1", "c-1"]), general_live=True
    )
    assert not out.refused and out.state is not None
    assert out.state.creator_ids == ("c-1",)
    assert out.state.eligible_at("c-1", T0) and not out.state.eligible_at("c-2", T0)


def test_republish_by_another_merchant_or_for_another_product_is_refused() -> None:
    offer = active_offer()
    other = publish(offer, published(merchant="m-2"), product=product())
    assert codes(other.refused) == ["not_product_owner"]
    assert other.state == offer  # unchanged
    moved = publish(offer, published(product_id="p-2"), product=product("p-2"))
    assert codes(moved.refused) == ["offer_product_mismatch"]


def test_republish_changes_terms_and_keeps_history() -> None:
    offer = active_offer(1000)
    cut = publish(offer, published(bps=600), T0 + timedelta(minutes=5))
    assert cut.state is not None
    assert cut.events[0].effective_at == MIDNIGHT  # type: ignore[attr-defined]
    assert cut.state.rate_at(MIDNIGHT - MS) == 1000 and cut.state.rate_at(MIDNIGHT) == 600
    assert len(cut.state.rates) == 2 and len(cut.state.history) == 1


def test_republish_of_a_suspended_offer_is_refused() -> None:
    offer = domain.product_delisted(active_offer(), T0).state
    assert offer is not None and offer.status == "suspended"
    out = publish(offer, published(), product=product(listed=False))
    assert codes(out.refused) == ["product_not_listed", "offer_inactive"]


# --- offers: withdraw and holds ----------------------------------------------------------------


def test_withdraw_by_owner_only() -> None:
    offer = active_offer()
    other = domain.withdraw(offer, OfferWithdrawRequested(offer_id="o-1", merchant_id="m-2"), T0)
    assert codes(other.refused) == ["not_product_owner"]
    unknown = domain.withdraw(None, OfferWithdrawRequested(offer_id="o-x", merchant_id="m-1"), T0)
    assert codes(unknown.refused) == ["offer_inactive"]
    done = domain.withdraw(
        offer, OfferWithdrawRequested(offer_id="o-1", merchant_id="m-1"), T0 + MS
    )
    assert done.state is not None and done.state.status == "withdrawn"
    assert [e.event_type for e in done.events] == ["offer.withdrawn"]
    assert not done.state.active_at(T0 + MS) and done.state.active_at(T0)
    again = domain.withdraw(
        done.state, OfferWithdrawRequested(offer_id="o-1", merchant_id="m-1"), T0
    )
    assert again.ignored == "already_withdrawn" and not again.events
    revived = publish(done.state, published(bps=2000), T0 + timedelta(hours=1))
    assert revived.state is not None and revived.state.status == "active"
    assert revived.state.rate_at(T0 + timedelta(hours=1)) == 2000


def test_holds_delisting_and_policy() -> None:
    offer = active_offer()
    t1, t2, t3, t4 = (T0 + timedelta(minutes=m) for m in (1, 2, 3, 4))
    delisted = domain.product_delisted(offer, t1)
    assert [e.event_type for e in delisted.events] == ["offer.suspended"]
    assert delisted.events[0].reason == "product_delisted"  # type: ignore[attr-defined]
    assert delisted.state is not None
    policy = mini_shop_policy()
    enforced = domain.enforce(
        policy, [delisted.state], {"p-1": product(kind="wechat_mini_shop")}, {}, t2
    )
    held = enforced.state.offers["o-1"]
    assert (
        enforced.state.affected == 1 and not enforced.events
    )  # already suspended: no second event
    assert held.holds == {"product_delisted", "policy:pol-1"}
    relisted = domain.product_listed(
        held, product(kind="wechat_mini_shop"), t3, policies=[policy], merchant=None
    )
    assert (
        relisted.state is not None and relisted.state.status == "suspended" and not relisted.events
    )
    lifted = domain.lift("pol-1", [relisted.state], t4)
    assert lifted.state.affected == 1
    restored = lifted.state.offers["o-1"]
    assert restored.status == "active"
    assert [e.event_type for e in lifted.events] == ["offer.restored"]
    assert lifted.events[0].policy_id == "pol-1"  # type: ignore[attr-defined]
    # the status history answers "active at" for any instant
    assert [restored.active_at(t) for t in (T0, t1, t2, t3, t4)] == [
        True,
        False,
        False,
        False,
        True,
    ]


def test_enforce_skips_exempt_withdrawn_and_other_sources() -> None:
    offers = [
        Offer("o-a", "p-a", "m-a", history=(domain.StatusChange(T0, "active"),)),
        Offer("o-b", "p-b", "m-exempt", history=(domain.StatusChange(T0, "active"),)),
        Offer("o-c", "p-c", "m-spb", history=(domain.StatusChange(T0, "active"),)),
        Offer("o-d", "p-d", "m-d", withdrawn=True),
        Offer("o-e", "p-e", "m-e", history=(domain.StatusChange(T0, "active"),)),
    ]
    products = {
        "p-a": product("p-a", "m-a", kind="wechat_mini_shop"),
        "p-b": product("p-b", "m-exempt", kind="wechat_mini_shop"),
        "p-c": product("p-c", "m-spb", kind="wechat_mini_shop"),
        "p-d": product("p-d", "m-d", kind="wechat_mini_shop"),
        "p-e": product("p-e", "m-e", kind="channels_shop"),
    }
    policy = mini_shop_policy(merchant_ids=["m-exempt"], service_provider_built=True)
    result = domain.enforce(policy, offers, products, SPB, T0 + MS)
    assert set(result.state.offers) == {"o-a"} and result.state.affected == 1
    again = domain.enforce(policy, [result.state.offers["o-a"], *offers[1:]], products, SPB, T0)
    assert again.state.affected == 1 and not again.events  # idempotent


def test_require_shop_on_distribution_judges_the_offers_merchant() -> None:
    """A ``require_shop`` rule on ``distribution``: only merchants holding the shop may offer
    goods there (the merchant is the account using that surface; §5, policy kernel)."""
    rule = RequireShop(surfaces=["distribution"], shop_kind="channels_shop")
    policy = PolicyView("pol-shop", "enforce_existing", (rule,))
    channels = Account("m-1", (Shop("s-1", "channels_shop"),))
    out = publish(None, published(), policies=[policy], merchant=None)
    assert [(r.code, r.policy_id) for r in out.refused] == [("shop_required", "pol-shop")]
    assert not publish(None, published(), policies=[policy], merchant=channels).refused
    offers = [
        Offer("o-a", "p-a", "m-a", history=(domain.StatusChange(T0, "active"),)),
        Offer("o-b", "p-b", "m-1", history=(domain.StatusChange(T0, "active"),)),
    ]
    products = {"p-a": product("p-a", "m-a"), "p-b": product("p-b", "m-1")}
    result = domain.enforce(policy, offers, products, {"m-1": channels}, T0 + MS)
    assert set(result.state.offers) == {"o-a"} and result.state.affected == 1


# --- commissions -------------------------------------------------------------------------------


def test_accrue_then_settle() -> None:
    offer = active_offer(1050)
    out = domain.pay(None, paid(amount=1990), offer)
    assert [e.event_type for e in out.events] == ["commission.accrued"]
    accrued = out.events[0]
    assert accrued.commission_fen == 209 and accrued.commission_bps == 1050  # type: ignore[attr-defined]
    settled = domain.complete(out.state, "e-2", T0)
    assert [e.event_type for e in settled.events] == ["commission.settled"]
    assert settled.state.totals == domain.Totals(accrued_fen=209, settled_fen=209)
    assert domain.complete(settled.state, "e-3", T0).ignored == "already_completed"


def test_partial_refund_adjusts_and_full_refund_cancels() -> None:
    offer = active_offer(1000)
    order = domain.pay(None, paid(amount=10_005), offer).state  # 1000.5 → 1001
    assert order.commission_fen == 1001
    adj = domain.refund(order, "r-1", 2_000, T0)  # 8005 × 10 % = 800.5 → 801
    event = adj.events[0]
    assert event.event_type == "commission.adjusted"
    assert (event.commission_fen, event.delta_fen, event.refund_fen) == (801, -200, 2000)  # type: ignore[attr-defined]
    cancel = domain.refund(adj.state, "r-2", 8_005, T0)
    assert [e.event_type for e in cancel.events] == ["commission.cancelled"]
    assert cancel.state.status == "cancelled" and cancel.state.commission_fen == 0
    assert cancel.state.totals == domain.Totals(accrued_fen=1001, cancelled_fen=1001)
    assert domain.complete(cancel.state, "c", T0).events == []  # nothing left to settle


def test_refund_after_settlement_is_a_clawback() -> None:
    offer = active_offer(1000)
    order = domain.complete(domain.pay(None, paid(amount=10_000), offer).state, "c", T0).state
    back = domain.refund(order, "r-1", 4_000, T0)
    event = back.events[0]
    assert event.event_type == "commission.adjusted"
    assert event.clawback is True and event.clawback_fen == 400 and event.delta_fen == -400  # type: ignore[attr-defined]
    assert back.state.totals == domain.Totals(
        accrued_fen=1000, cancelled_fen=400, settled_fen=600, clawback_fen=400
    )
    full = domain.refund(back.state, "r-2", 99_999, T0)  # capped at the amount
    assert full.events[0].commission_fen == 0 and full.state.status == "settled"  # type: ignore[attr-defined]
    assert full.state.totals == domain.Totals(
        accrued_fen=1000, cancelled_fen=1000, clawback_fen=1000
    )
    assert domain.refund(full.state, "r-3", 1, T0).ignored == "nothing_refunded"


def test_events_before_payment_wait_for_it() -> None:
    offer = active_offer(1000)
    waiting = domain.complete(Order("ord-1"), "c-1", T0).state
    waiting = domain.refund(waiting, "r-1", 5_000, T0).state
    assert waiting.status == "awaiting_payment" and len(waiting.pending) == 2
    out = domain.pay(waiting, paid(amount=10_000), offer)
    assert [e.event_type for e in out.events] == ["commission.accrued"]
    drained = domain.drain(out.state)
    # each waiting input is its own decision (its events are caused by it), in arrival order
    assert [(item.event_id, [e.event_type for e in d.events]) for item, d in drained] == [
        ("c-1", ["commission.settled"]),
        ("r-1", ["commission.adjusted"]),
    ]
    final = drained[-1][1].state
    assert final.totals == domain.Totals(
        accrued_fen=1000, cancelled_fen=500, settled_fen=500, clawback_fen=500
    )
    assert final.pending == ()
    again = domain.pay(final, paid(amount=10_000), offer)
    assert again.ignored == "already_paid" and not again.events


def test_commission_refusals() -> None:
    offer = active_offer(1000, plan="general")
    unknown = domain.pay(None, paid(offer_id="o-x"), None, wait_over=True)
    assert codes(unknown.events[0].reasons) == ["offer_unknown"]  # type: ignore[attr-defined]
    before = domain.pay(None, paid(at=T0 - MS), offer)
    assert codes(before.events[0].reasons) == ["offer_inactive"]  # type: ignore[attr-defined]
    no_creator = domain.pay(None, paid(creator=None), offer)
    assert codes(no_creator.events[0].reasons) == ["creator_not_eligible"]  # type: ignore[attr-defined]
    mismatch = domain.pay(None, paid(product_id="p-other"), offer)
    assert codes(mismatch.events[0].reasons) == ["offer_inactive"]  # type: ignore[attr-defined]
    assert mismatch.state.status == "refused" and mismatch.state.totals == domain.Totals()
    targeted = publish(
        None, published("o-t", plan="targeted", creators=["c-1"]), general_live=True
    ).state
    both = domain.pay(None, paid(offer_id="o-t", creator="c-2", at=T0 - MS), targeted)
    assert codes(both.events[0].reasons) == ["offer_inactive", "creator_not_eligible"]  # type: ignore[attr-defined]
    ok = domain.pay(None, paid(offer_id="o-t", creator="c-1"), targeted)
    assert ok.events[0].event_type == "commission.accrued"
    none = domain.pay(None, paid(offer_id=None), None)
    assert none.state.status == "no_offer" and not none.events


def test_rate_in_force_at_paid_at() -> None:
    republished = publish(active_offer(1000), published(bps=500), T0 + timedelta(minutes=1))
    offer = republished.state
    assert offer is not None
    before = domain.pay(None, paid("a", 10_000, at=MIDNIGHT - MS), offer)
    after = domain.pay(None, paid("b", 10_000, at=MIDNIGHT), offer)
    assert before.state.commission_fen == 1000 and after.state.commission_fen == 500
