"""The dashboard's bucketing rules, pure: minutes and days in Asia/Shanghai, late and early
events, duplicate payments, refunds on their own day, commission movements."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from vitrine.contract.events import (
    CommissionAccrued,
    CommissionAdjusted,
    CommissionCancelled,
    CommissionSettled,
    EnforcementReported,
    OrderPaid,
    OrderRefunded,
    PolicyAccepted,
    PolicyEnforcementCompleted,
    PolicyInForce,
)
from vitrine_dashboard import domain
from vitrine_dashboard.domain import TZ, Figures, Order, day_bounds, day_of, minute_of


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def paid(order: str = "o-1", amount: int = 1000, **over: Any) -> OrderPaid:
    data: dict[str, Any] = {
        "order_id": order,
        "product_id": "p-1",
        "merchant_id": "m-1",
        "creator_id": "c-1",
        "amount_fen": amount,
        "paid_at": at("2022-07-01T12:00:30+08:00"),
        "live_session_id": "s-1",
        **over,
    }
    return OrderPaid.model_validate(data)


def by_scope(folded: domain.Folded) -> dict[tuple[str, str], tuple[datetime, Figures]]:
    return {(d.scope, d.key): (d.minute, d.figures) for d in folded.deltas}


def test_minutes_and_days_are_asia_shanghai() -> None:
    utc_evening = datetime(2022, 6, 30, 16, 0, 59, tzinfo=UTC)  # 00:00:59 on 07-01 in Shanghai
    assert minute_of(utc_evening) == datetime(2022, 7, 1, 0, 0, tzinfo=TZ)
    assert day_of(utc_evening) == date(2022, 7, 1)
    assert day_of(datetime(2022, 6, 30, 15, 59, 59, tzinfo=UTC)) == date(2022, 6, 30)
    start, end = day_bounds(date(2022, 7, 1))
    assert start == datetime(2022, 6, 30, 16, 0, tzinfo=UTC)
    assert (end - start).total_seconds() == 86_400


def test_payment_lands_in_every_scope_in_the_minute_of_paid_at() -> None:
    folded = domain.paid(None, paid(quantity=3)).state
    minute = datetime(2022, 7, 1, 12, 0, tzinfo=TZ)
    expected = (minute, Figures(gmv_fen=1000, orders=1))
    assert by_scope(folded) == {
        ("creator", "c-1"): expected,
        ("merchant", "m-1"): expected,
        ("live", "s-1"): expected,
        ("product", "p-1"): expected,
    }
    [sale] = folded.sales
    assert (sale.session_id, sale.product_id, sale.gmv_fen, sale.orders, sale.units) == (
        "s-1",
        "p-1",
        1000,
        1,
        3,
    )


def test_an_order_without_creator_or_session_counts_for_merchant_and_product() -> None:
    folded = domain.paid(None, paid(creator_id=None, live_session_id=None)).state
    assert set(by_scope(folded)) == {("merchant", "m-1"), ("product", "p-1")}
    assert folded.sales == ()


def test_a_second_payment_of_the_same_order_is_ignored() -> None:
    first = domain.paid(None, paid()).state.order
    again = domain.paid(first, paid(amount=999))
    assert again.ignored == "order_already_paid" and again.state.deltas == ()


def test_a_late_payment_lands_in_its_own_minute_and_day() -> None:
    late = paid(paid_at=at("2022-06-30T23:59:59+08:00"))
    folded = domain.paid(None, late).state
    minute, _ = by_scope(folded)["creator", "c-1"]
    assert minute == datetime(2022, 6, 30, 23, 59, tzinfo=TZ)


def test_a_refund_counts_in_the_minute_it_is_refunded_capped_at_what_is_left() -> None:
    order = domain.paid(None, paid(amount=1000)).state.order
    next_day = at("2022-07-02T09:15:10+08:00")
    first = domain.refunded(order, OrderRefunded(order_id="o-1", refund_fen=600), next_day).state
    minute, figures = by_scope(first)["merchant", "m-1"]
    assert minute == datetime(2022, 7, 2, 9, 15, tzinfo=TZ)
    assert figures == Figures(refunds_fen=600) and figures.net_fen == -600
    second = domain.refunded(first.order, OrderRefunded(order_id="o-1", refund_fen=900), next_day)
    assert by_scope(second.state)["merchant", "m-1"][1] == Figures(refunds_fen=400)
    assert second.state.sales[0].refunds_fen == 400
    third = domain.refunded(
        second.state.order, OrderRefunded(order_id="o-1", refund_fen=1), next_day
    )
    assert third.ignored == "nothing_left_to_refund"


def test_a_refund_before_its_payment_is_parked_then_released_in_its_own_minute() -> None:
    refund_time = at("2022-07-01T12:05:00+08:00")
    early = domain.refunded(None, OrderRefunded(order_id="o-1", refund_fen=300), refund_time)
    assert early.state.deltas == () and len(early.state.order.parked) == 1
    folded = domain.paid(early.state.order, paid()).state
    refunds = {(d.scope, d.minute): d.figures for d in folded.deltas if d.figures.refunds_fen}
    assert refunds[("live", datetime(2022, 7, 1, 12, 5, tzinfo=TZ))] == Figures(refunds_fen=300)
    assert len(refunds) == 4 and folded.order.parked == () and folded.order.refunded_fen == 300


def commission(kind: type[Any], **over: Any) -> Any:
    data: dict[str, Any] = {
        "order_id": "o-1",
        "offer_id": "of-1",
        "creator_id": "c-1",
        "merchant_id": "m-1",
        "commission_fen": 100,
        **over,
    }
    if kind is CommissionAccrued:
        data |= {"amount_fen": 1000, "commission_bps": 1000}
    return kind.model_validate(data)


def test_commission_accrued_adjusted_settled_and_clawed_back() -> None:
    t = at("2022-07-01T12:10:00+08:00")
    order = domain.paid(None, paid()).state.order
    accrued = domain.commission_moved(order, commission(CommissionAccrued), t).state
    assert by_scope(accrued)["live", "s-1"][1] == Figures(commission_accrued_fen=100)
    cut = commission(CommissionAdjusted, commission_fen=60, delta_fen=-40, refund_fen=400)
    adjusted = domain.commission_moved(accrued.order, cut, t).state
    assert by_scope(adjusted)["creator", "c-1"][1] == Figures(commission_accrued_fen=-40)
    settled = domain.commission_moved(
        adjusted.order, commission(CommissionSettled, commission_fen=60), t
    ).state
    assert by_scope(settled)["merchant", "m-1"][1] == Figures(commission_settled_fen=60)
    claw = commission(
        CommissionAdjusted,
        commission_fen=0,
        delta_fen=-60,
        refund_fen=600,
        clawback=True,
        clawback_fen=60,
    )
    clawed = domain.commission_moved(settled.order, claw, t).state
    assert by_scope(clawed)["product", "p-1"][1] == Figures(
        commission_accrued_fen=-60, commission_settled_fen=-60
    )


def test_a_cancellation_takes_back_the_commission_as_it_stood() -> None:
    t = at("2022-07-01T12:10:00+08:00")
    accrued = domain.commission_moved(None, commission(CommissionAccrued, commission_fen=77), t)
    cancelled = domain.commission_moved(
        accrued.state.order, commission(CommissionCancelled, commission_fen=0, reason="refunded"), t
    ).state
    assert by_scope(cancelled)["creator", "c-1"][1] == Figures(commission_accrued_fen=-77)


def test_commission_before_payment_reaches_creator_now_and_session_on_payment() -> None:
    t = at("2022-07-01T12:10:00+08:00")
    early = domain.commission_moved(None, commission(CommissionAccrued), t).state
    assert set(by_scope(early)) == {("creator", "c-1"), ("merchant", "m-1")}
    folded = domain.paid(early.order, paid()).state
    owed = [d for d in folded.deltas if d.figures.commission_accrued_fen]
    assert {(d.scope, d.key) for d in owed} == {("live", "s-1"), ("product", "p-1")}
    assert all(d.minute == datetime(2022, 7, 1, 12, 10, tzinfo=TZ) for d in owed)


def test_presentation_follows_event_time() -> None:
    t1, t2 = at("2022-07-01T12:00:00+08:00"), at("2022-07-01T12:01:00+08:00")
    s = domain.explaining(None, "s-1", "c-1", "p-2", t2).state
    assert s is not None
    stale = domain.explaining(s, "s-1", "c-1", "p-1", t1)
    assert stale.ignored == "stale" and stale.state == s
    gone = domain.item_gone(s, "p-2", at("2022-07-01T12:02:00+08:00"))
    assert gone.state is not None and gone.state.explaining is None


def test_policy_moves_from_announced_to_completed_with_reports() -> None:
    t = at("2022-11-30T00:00:00+08:00")
    accepted = PolicyAccepted.model_validate(
        {
            "policy_id": "pol-1",
            "title": "No Mini Shop goods",
            "effective_at": t,
            "enforce_existing_at": t,
            "rules": [
                {
                    "kind": "disallow_source",
                    "surfaces": ["showcase", "live"],
                    "sources": [{"kind": "wechat_mini_shop"}],
                }
            ],
        }
    )
    p = domain.policy_event(None, accepted, t).state
    assert p.stage == "announced" and p.enforcers == ["showcase", "live"]
    in_force = PolicyInForce(policy_id="pol-1", phase="enforce_existing", effective_at=t)
    p = domain.policy_event(p, in_force, t).state
    assert p.stage == "in_force" and p.phase == "enforce_existing"
    report = EnforcementReported(
        policy_id="pol-1", service="showcase", phase="enforce_existing", affected=7
    )
    p = domain.policy_event(p, report, t).state
    assert [(r.service, r.affected) for r in p.reports] == [("showcase", 7)]
    done = PolicyEnforcementCompleted(
        policy_id="pol-1", phase="enforce_existing", counts={"showcase": 7}
    )
    p = domain.policy_event(p, done, t).state
    assert p.stage == "completed" and p.completed_counts == {"showcase": 7}
    assert isinstance(p, domain.Policy) and isinstance(Order("o"), Order)
