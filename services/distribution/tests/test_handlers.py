"""Distribution's handlers over the in-memory store and unit of work: real dispatch, folding,
event time, held orders and emission — no Kafka, no MongoDB (the middle test tier)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vitrine.contract.envelope import Event
from vitrine.contract.events import (
    CommissionAccrued,
    CommissionRefused,
    CommissionSettled,
    EventData,
    OfferActivated,
    OfferPublished,
    OfferSuspended,
    OfferWithdrawRequested,
    OrderCompleted,
    OrderPaid,
    OrderRefunded,
    PolicyInForce,
    ProductDelisted,
)
from vitrine.runtime.messaging.unit_of_work import InMemoryUnitOfWork, incoming
from vitrine.tools.testing.handlers import product_listed as listed
from vitrine_distribution.domain import LISTING_HISTORY, SHANGHAI
from vitrine_distribution.handlers import make_handlers
from vitrine_distribution.repository import InMemoryStore

pytestmark = pytest.mark.handlers

T0 = datetime(2024, 3, 10, 12, 0, tzinfo=UTC)  # 20:00 Asia/Shanghai
MIDNIGHT = datetime(2024, 3, 11, 0, 0, tzinfo=SHANGHAI).astimezone(UTC)
COMMISSIONS = "distribution.commissions"
OFFERS = "distribution.offers"


def at(data: EventData, subject: str, time: datetime, id: str | None = None) -> Event[Any]:
    """An input event stamped ``time`` (its own event time)."""
    event = incoming(data, subject, id=id)
    return Event(event.envelope.model_copy(update={"time": time}), data)


class Distribution:
    """The handlers over one in-memory store; each call is one batch in its own unit of work
    whose clock is far from the events' times (decisions must not read it)."""

    def __init__(
        self, wait: timedelta = timedelta(hours=24), product_wait: timedelta = timedelta(hours=24)
    ) -> None:
        self.store = InMemoryStore()
        self.handlers = make_handlers(
            lambda _: self.store, offer_wait=wait, product_wait=product_wait
        )
        self.emitted: list[tuple[str, Any]] = []

    async def batch(self, topic: str, *events: Event[Any]) -> InMemoryUnitOfWork:
        uow = InMemoryUnitOfWork(service="distribution", at=datetime(2030, 1, 1, tzinfo=UTC))
        await self.handlers[topic](list(events), uow)
        self.emitted += uow.emitted
        return uow

    def out(self, topic: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(id, type, data) of what was emitted on ``topic``, in order."""
        return [(e.id, e.type, e.data) for t, e in self.emitted if t == topic]


def offer(bps: int = 1000, offer_id: str = "o1") -> OfferPublished:
    return OfferPublished(
        offer_id=offer_id, product_id="p1", merchant_id="m1", commission_bps=bps, plan="general"
    )


def paid(order: str = "ord1", paid_at: datetime = T0, offer_id: str = "o1") -> OrderPaid:
    return OrderPaid(
        order_id=order,
        product_id="p1",
        merchant_id="m1",
        amount_fen=10_000,
        creator_id="c1",
        offer_id=offer_id,
        paid_at=paid_at,
    )


async def listed_product(d: Distribution) -> None:
    await d.batch("catalog.products", at(listed(), "p1", T0 - timedelta(days=1)))


async def test_terms_take_effect_at_the_events_time_not_when_processed() -> None:
    d = Distribution()
    await listed_product(d)
    uow = await d.batch("merchants.offers", at(offer(1000), "o1", T0))
    [activated] = uow.events(OFFERS)
    assert isinstance(activated, OfferActivated) and activated.effective_at == T0
    # a cut published at 20:00 Shanghai takes effect at the next 00:00, by its own time
    uow = await d.batch("merchants.offers", at(offer(600), "o1", T0 + timedelta(hours=1)))
    [cut] = uow.events(OFFERS)
    assert isinstance(cut, OfferActivated) and cut.effective_at == MIDNIGHT
    # orders use the rate in force at paid_at, whenever they are consumed
    await d.batch(
        "orders.lifecycle",
        at(paid("a", MIDNIGHT - timedelta(seconds=1)), "a", T0 + timedelta(days=3)),
        at(paid("b", MIDNIGHT), "b", T0 + timedelta(days=3)),
    )
    accrued = [data for _, t, data in d.out(COMMISSIONS) if t == "commission.accrued"]
    assert [(a["order_id"], a["commission_bps"]) for a in accrued] == [("a", 1000), ("b", 600)]


async def test_a_back_dated_publish_cannot_reach_before_the_offers_latest_change() -> None:
    d = Distribution()
    await listed_product(d)
    await d.batch("merchants.offers", at(offer(1000), "o1", T0))
    uow = await d.batch("merchants.offers", at(offer(2000), "o1", T0 - timedelta(days=2)))
    [raised] = uow.events(OFFERS)
    assert isinstance(raised, OfferActivated) and raised.effective_at == T0
    assert d.store.offer("o1").rate_at(T0 - timedelta(days=1)) is None


async def _order_before_offer(d: Distribution) -> None:
    await listed_product(d)
    paid_evt = at(paid(), "ord1", T0 + timedelta(minutes=5), id="pay-1")
    done_evt = at(OrderCompleted(order_id="ord1"), "ord1", T0 + timedelta(days=7), id="done-1")
    uow = await d.batch("orders.lifecycle", paid_evt, done_evt)
    assert uow.events(COMMISSIONS) == []  # held, and the completion waits with it
    assert d.store.order("ord1").status == "held"
    uow = await d.batch("merchants.offers", at(offer(), "o1", T0 - timedelta(hours=1)))
    assert [type(e) for e in uow.events(COMMISSIONS)] == [CommissionAccrued, CommissionSettled]


async def _offer_before_order(d: Distribution) -> None:
    await listed_product(d)
    await d.batch("merchants.offers", at(offer(), "o1", T0 - timedelta(hours=1)))
    await d.batch(
        "orders.lifecycle",
        at(paid(), "ord1", T0 + timedelta(minutes=5), id="pay-1"),
        at(OrderCompleted(order_id="ord1"), "ord1", T0 + timedelta(days=7), id="done-1"),
    )


async def test_an_order_consumed_before_its_offer_is_held_then_judged_as_if_in_order() -> None:
    """Whichever topic is consumed first, the same commission events with the same ids."""
    held, prompt = Distribution(), Distribution()
    await _order_before_offer(held)
    await _offer_before_order(prompt)
    assert held.out(COMMISSIONS) == prompt.out(COMMISSIONS)
    [accrued, settled] = held.out(COMMISSIONS)
    assert accrued[2]["commission_fen"] == 1000
    assert settled[2]["settled_at"] == (T0 + timedelta(days=7)).isoformat().replace("+00:00", "Z")
    assert held.store.order("ord1").status == "settled"
    # the held inputs' envelopes are dropped once judged
    assert held.store.orders["ord1"]["causes"] == []


async def test_a_redelivered_held_payment_re_emits_what_its_judgement_produced() -> None:
    d = Distribution()
    await _order_before_offer(d)
    first = d.out(COMMISSIONS)
    uow = await d.batch(
        "orders.lifecycle", at(paid(), "ord1", T0 + timedelta(minutes=5), id="pay-1")
    )
    assert [(e.id, e.type) for _, e in uow.emitted] == [(first[0][0], first[0][1])]


async def test_an_offer_that_never_arrives_is_refused_offer_unknown_after_the_wait() -> None:
    d = Distribution()
    await listed_product(d)
    await d.batch(
        "orders.lifecycle",
        at(paid(offer_id="o-gone"), "ord1", T0, id="pay-1"),
        at(OrderRefunded(order_id="ord1", refund_fen=100), "ord1", T0 + timedelta(hours=1)),
    )
    # the offers topic's event time moves, but not yet past paid_at + 24 h: still held
    await d.batch("merchants.offers", at(offer(offer_id="o2"), "o2", T0 + timedelta(hours=24)))
    assert d.store.order("ord1").status == "held"
    uow = await d.batch(
        "merchants.offers", at(offer(offer_id="o3"), "o3", T0 + timedelta(hours=24, seconds=1))
    )
    [refused] = uow.events(COMMISSIONS)
    assert isinstance(refused, CommissionRefused)
    assert [r.code for r in refused.reasons] == ["offer_unknown"]
    assert d.store.order("ord1").status == "refused"
    assert d.store.order("ord1").refunded_fen == 100  # the refund waited with it
    # an order paid long before the watermark whose offer is unknown: refused at once,
    # with the id it would have had if it had been held and refused later
    uow = await d.batch(
        "orders.lifecycle", at(paid("ord2", offer_id="o-gone"), "ord2", T0, id="pay-2")
    )
    late = Distribution()
    await listed_product(late)
    await late.batch(
        "orders.lifecycle", at(paid("ord2", offer_id="o-gone"), "ord2", T0, id="pay-2")
    )
    await late.batch("merchants.offers", at(offer(offer_id="o3"), "o3", T0 + timedelta(hours=25)))
    assert [(e.id, e.type) for _, e in uow.emitted] == [(i, t) for i, t, _ in late.out(COMMISSIONS)]


async def test_the_wait_is_a_setting() -> None:
    d = Distribution(wait=timedelta(hours=1))
    await listed_product(d)
    await d.batch("orders.lifecycle", at(paid(offer_id="o-gone"), "ord1", T0))
    await d.batch("merchants.offers", at(offer(offer_id="o2"), "o2", T0 + timedelta(hours=2)))
    assert d.store.order("ord1").status == "refused"


async def test_delisting_and_policy_holds_are_dated_by_their_events() -> None:
    d = Distribution()
    await d.batch("catalog.products", at(listed(kind="wechat_mini_shop"), "p1", T0))
    await d.batch("merchants.offers", at(offer(), "o1", T0))
    t1 = T0 + timedelta(hours=2)
    uow = await d.batch(
        "catalog.products", at(ProductDelisted(product_id="p1", reason="withdrawn"), "p1", t1)
    )
    [suspended] = uow.events(OFFERS)
    assert isinstance(suspended, OfferSuspended) and suspended.reason == "product_delisted"
    o = d.store.offer("o1")
    assert o.active_at(t1 - timedelta(milliseconds=1)) and not o.active_at(t1)
    ruling = PolicyInForce.model_validate(
        {
            "policy_id": "pol1",
            "phase": "enforce_existing",
            "rules": [
                {
                    "kind": "disallow_source",
                    "surfaces": ["distribution"],
                    "sources": [{"kind": "wechat_mini_shop"}],
                }
            ],
            "effective_at": T0,
        }
    )
    uow = await d.batch("compliance.rulings", at(ruling, "pol1", t1 + timedelta(hours=1)))
    [report] = uow.events("compliance.reports")
    assert report.affected == 1  # type: ignore[attr-defined]
    assert d.store.offer("o1").holds == {"product_delisted", "policy:pol1"}


async def test_an_offer_consumed_before_its_product_waits_for_the_listing() -> None:
    """The same offer events with the same ids, whichever topic is consumed first — even when
    the product is listed and delisted in one batch after the offer arrived."""
    early, prompt = Distribution(), Distribution()
    publish = at(offer(), "o1", T0, id="pub-1")
    listing = at(listed(), "p1", T0 - timedelta(hours=1))
    delisting = at(ProductDelisted(product_id="p1", reason="withdrawn"), "p1", T0 + timedelta(1))
    uow = await early.batch("merchants.offers", publish)
    assert uow.events() == [] and early.store.waiting
    await early.batch("catalog.products", listing, delisting)
    await prompt.batch("catalog.products", listing)
    await prompt.batch("merchants.offers", publish)
    await prompt.batch("catalog.products", delisting)
    assert early.out(OFFERS) == prompt.out(OFFERS)
    assert [t for _, t, _ in early.out(OFFERS)] == ["offer.activated", "offer.suspended"]
    assert not early.store.waiting


async def test_an_offer_for_a_product_never_listed_is_judged_after_the_wait() -> None:
    d = Distribution()
    await d.batch("merchants.offers", at(offer(), "o1", T0))
    await d.batch("catalog.products", at(listed("p-other"), "p-other", T0 + timedelta(hours=25)))
    [(_, type_, data)] = d.out(OFFERS)
    assert type_ == "offer.refused"
    assert [r["code"] for r in data["reasons"]] == ["product_not_listed"]


async def test_by_default_an_offer_for_an_unknown_product_is_refused_at_once() -> None:
    d = Distribution(product_wait=timedelta(0))
    uow = await d.batch("merchants.offers", at(offer(), "o1", T0))
    [refused] = uow.events(OFFERS)
    assert [r.code for r in refused.reasons] == ["product_not_listed"]  # type: ignore[attr-defined]
    assert not d.store.waiting


# --- an offer consumed after later listing changes of its product -------------------------------


def delisted(pid: str = "p1") -> ProductDelisted:
    return ProductDelisted(product_id=pid, reason="withdrawn")


def mini_shop_ban(policy_id: str = "pol1") -> PolicyInForce:
    return PolicyInForce.model_validate(
        {
            "policy_id": policy_id,
            "phase": "enforce_existing",
            "rules": [
                {
                    "kind": "disallow_source",
                    "surfaces": ["distribution"],
                    "sources": [{"kind": "wechat_mini_shop"}],
                }
            ],
            "effective_at": T0 - timedelta(days=30),
        }
    )


async def test_a_late_offer_is_suspended_and_restored_by_the_changes_it_missed() -> None:
    """The race the replay met: a delisting (and relisting) consumed before an offer published
    earlier. The late offer is activated as of its own time, then suspended and restored by
    the changes after it — the events (ids, causation, data) an in-order consumer minted."""
    publish = at(offer(), "o1", T0, id="pub-1")
    listing = at(listed(), "p1", T0 - timedelta(days=1), id="list-1")
    delisting = at(delisted(), "p1", T0 + timedelta(hours=1), id="delist-1")
    relisting = at(listed(), "p1", T0 + timedelta(hours=2), id="list-2")
    in_order, late = Distribution(product_wait=timedelta(0)), Distribution(timedelta(0))
    await in_order.batch("catalog.products", listing)
    await in_order.batch("merchants.offers", publish)
    await in_order.batch("catalog.products", delisting)
    await in_order.batch("catalog.products", relisting)
    await late.batch("catalog.products", listing, delisting, relisting)
    uow = await late.batch("merchants.offers", publish)
    assert [t for _, t, _ in late.out(OFFERS)] == [
        "offer.activated",
        "offer.suspended",
        "offer.restored",
    ]
    assert late.out(OFFERS) == in_order.out(OFFERS)
    assert [e.causationid for _, e in uow.emitted] == [publish.id, delisting.id, relisting.id]
    assert late.store.offers["o1"] == in_order.store.offers["o1"]
    o = late.store.offer("o1")
    assert o.active_at(T0) and not o.active_at(T0 + timedelta(hours=1))
    assert o.active_at(T0 + timedelta(hours=2)) and o.status == "active"


async def test_a_late_offer_published_while_its_product_was_delisted_is_refused() -> None:
    publish = at(offer(), "o1", T0 + timedelta(hours=1, minutes=30), id="pub-1")
    catalog = [
        at(listed(), "p1", T0, id="list-1"),
        at(delisted(), "p1", T0 + timedelta(hours=1), id="delist-1"),
        at(listed(), "p1", T0 + timedelta(hours=2), id="list-2"),
    ]
    in_order, late = Distribution(product_wait=timedelta(0)), Distribution(timedelta(0))
    await in_order.batch("catalog.products", *catalog[:2])
    await in_order.batch("merchants.offers", publish)
    await in_order.batch("catalog.products", catalog[2])
    await late.batch("catalog.products", *catalog)
    await late.batch("merchants.offers", publish)
    assert late.out(OFFERS) == in_order.out(OFFERS)
    [(_, type_, data)] = late.out(OFFERS)
    assert type_ == "offer.refused"
    assert [r["code"] for r in data["reasons"]] == ["product_not_listed"]
    assert "o1" not in late.store.offers


async def test_a_late_offer_takes_the_policy_hold_of_a_relisting_from_a_barred_source() -> None:
    """A relisting whose new version comes from a source a policy in force bars holds the
    offer (and it is not restored); a late offer gets the same hold from the same event."""
    publish = at(offer(), "o1", T0, id="pub-1")
    catalog = [
        at(listed(), "p1", T0 - timedelta(days=1), id="list-1"),
        at(delisted(), "p1", T0 + timedelta(hours=1), id="delist-1"),
        at(listed(kind="wechat_mini_shop"), "p1", T0 + timedelta(hours=2), id="list-2"),
    ]
    ruling = at(mini_shop_ban(), "pol1", T0 - timedelta(days=2), id="rule-1")
    in_order, late = Distribution(product_wait=timedelta(0)), Distribution(timedelta(0))
    for d in (in_order, late):
        await d.batch("compliance.rulings", ruling)
    await in_order.batch("catalog.products", catalog[0])
    await in_order.batch("merchants.offers", publish)
    await in_order.batch("catalog.products", *catalog[1:])
    await late.batch("catalog.products", *catalog)
    await late.batch("merchants.offers", publish)
    assert late.out(OFFERS) == in_order.out(OFFERS)
    assert [t for _, t, _ in late.out(OFFERS)] == ["offer.activated", "offer.suspended"]
    assert late.store.offer("o1").holds == {"policy:pol1"}


async def test_a_withdrawn_offer_republished_late_follows_the_changes_after_it() -> None:
    withdraw = OfferWithdrawRequested(offer_id="o1", merchant_id="m1")
    first = at(offer(), "o1", T0 - timedelta(hours=3), id="pub-1")
    gone = at(withdraw, "o1", T0 - timedelta(hours=2), id="wd-1")
    again = at(offer(1500), "o1", T0, id="pub-2")
    listing = at(listed(), "p1", T0 - timedelta(days=1), id="list-1")
    delisting = at(delisted(), "p1", T0 + timedelta(hours=1), id="delist-1")
    in_order, late = Distribution(product_wait=timedelta(0)), Distribution(timedelta(0))
    for d in (in_order, late):
        await d.batch("catalog.products", listing)
        await d.batch("merchants.offers", first, gone)
    await in_order.batch("merchants.offers", again)
    await in_order.batch("catalog.products", delisting)
    await late.batch("catalog.products", delisting)
    await late.batch("merchants.offers", again)
    assert late.out(OFFERS) == in_order.out(OFFERS)
    assert [t for _, t, _ in late.out(OFFERS)][-2:] == ["offer.activated", "offer.suspended"]
    assert late.store.offers["o1"] == in_order.store.offers["o1"]


async def test_a_product_keeps_a_bounded_listing_history() -> None:
    d = Distribution()
    events = [
        at(listed() if i % 2 == 0 else delisted(), "p1", T0 + timedelta(minutes=i), id=f"c-{i}")
        for i in range(LISTING_HISTORY + 5)
    ]
    await d.batch("catalog.products", *events)
    history = d.store.products["p1"]["history"]
    assert len(history) == LISTING_HISTORY
    assert [h["cause"]["id"] for h in history] == [e.id for e in events[-LISTING_HISTORY:]]


async def test_a_listing_change_stamped_before_the_previous_one_takes_effect_at_it() -> None:
    d = Distribution()
    await d.batch("catalog.products", at(listed(), "p1", T0, id="list-1"))
    await d.batch("catalog.products", at(delisted(), "p1", T0 - timedelta(hours=1), id="d-1"))
    assert [h["at"] for h in d.store.products["p1"]["history"]] == [T0, T0]


SOURCES = ("channels_shop", "wechat_mini_shop")


@st.composite
def catalog_then_offer(draw: st.DrawFn) -> tuple[list[tuple[str, int, str]], int, int]:
    """Listing changes (kind, minute, source), the offer's minute, and how many changes are
    consumed before the offer — at least every one stamped before it (the offer is late)."""
    n = draw(st.integers(1, 7))
    minutes = sorted(draw(st.sets(st.integers(0, 600), min_size=n, max_size=n)))
    changes = [("listed", minutes[0], draw(st.sampled_from(SOURCES)))]
    for m in minutes[1:]:
        kind = draw(st.sampled_from(["listed", "delisted"]))
        changes.append((kind, m, draw(st.sampled_from(SOURCES))))
    offer_minute = draw(st.integers(0, 610))
    before = sum(1 for _, m, _ in changes if m <= offer_minute)
    return changes, offer_minute, draw(st.integers(max(before, 1), n))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalog_then_offer(), st.booleans())
def test_an_offer_consumed_late_emits_what_an_in_order_consumer_emits(
    case: tuple[list[tuple[str, int, str]], int, int], ban: bool
) -> None:
    """Whatever the product's listing changes (relistings from another source, under a policy
    barring one), an offer consumed after changes stamped later than it emits the same events
    and ends in the same state as one consumed in event-time order. (An offer before the
    product's first listing is judged against it, as the product wait does.)"""
    changes, offer_minute, consumed_before = case
    catalog = [
        at(
            listed(kind=src) if kind == "listed" else delisted(),
            "p1",
            T0 + timedelta(minutes=m),
            id=f"c-{i}",
        )
        for i, (kind, m, src) in enumerate(changes)
    ]
    # the offer at second 30 of its minute: never at the same instant as a change
    publish = at(offer(), "o1", T0 + timedelta(minutes=offer_minute, seconds=30), id="pub-1")
    in_order_at = sum(1 for _, m, _ in changes if m <= offer_minute)

    async def run(position: int) -> Distribution:
        d = Distribution(product_wait=timedelta(0))
        if ban:
            await d.batch("compliance.rulings", at(mini_shop_ban(), "pol1", T0, id="rule-1"))
        await d.batch("catalog.products", *catalog[:position])
        await d.batch("merchants.offers", publish)
        if catalog[position:]:
            await d.batch("catalog.products", *catalog[position:])
        return d

    async def both() -> tuple[Distribution, Distribution]:
        return await run(max(in_order_at, 1)), await run(consumed_before)

    in_order, late = asyncio.run(both())
    assert late.out(OFFERS) == in_order.out(OFFERS)
    assert late.store.offers.get("o1") == in_order.store.offers.get("o1")


async def test_a_second_payment_of_a_held_order_does_not_replace_the_held_one() -> None:
    """An ``order.paid`` with a new id for an order already held is ignored ("already_paid");
    it must not become the held payment, whose envelope is the one kept (it was: the offer's
    arrival then failed with a KeyError in ``OrderRecord.cause``)."""
    once, twice = Distribution(), Distribution()
    for d in (once, twice):
        await listed_product(d)
        await d.batch("orders.lifecycle", at(paid(), "ord1", T0, id="pay-1"))
    await twice.batch("orders.lifecycle", at(paid(), "ord1", T0, id="pay-again"))
    assert twice.store.orders["ord1"]["paid_key"] == once.store.orders["ord1"]["paid_key"]
    for d in (once, twice):
        await d.batch("merchants.offers", at(offer(), "o1", T0 - timedelta(hours=1)))
    assert twice.out(COMMISSIONS) == once.out(COMMISSIONS)
    assert [t for _, t, _ in twice.out(COMMISSIONS)] == ["commission.accrued"]
