"""Property tests (hypothesis) of the commission ledger and the rate history.

Ledger: over random interleavings of paid / refunded / completed (and duplicate payments) for
several orders, the running totals — maintained incrementally the way the ``ledgers``
collection is ``$inc``-ed — always equal the sum of the entries, never go negative, and end
where a closed-form, order-independent expectation says they must.

Rates: over random publish sequences crossing midnights, ``rate_at`` agrees with an
independent recursive definition of "raise now, cut at the next 00:00 Asia/Shanghai".
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vitrine.contract.envelope import CloudEvent
from vitrine.contract.events import OfferPublished, OrderPaid, Source
from vitrine_distribution import domain
from vitrine_distribution.domain import (
    LISTING_HISTORY,
    SHANGHAI,
    ListingChange,
    Order,
    ProductView,
    Totals,
    commission_for,
    next_midnight_shanghai,
    rate_at,
    schedule,
)

T0 = datetime(2024, 3, 10, 15, 0, tzinfo=UTC)
BUCKETS = ("accrued_fen", "cancelled_fen", "settled_fen", "pending_fen", "clawback_fen")


@given(st.integers(0, 10**12), st.integers(0, 10_000))
def test_commission_matches_decimal_round_half_up(amount: int, bps: int) -> None:
    exact = (Decimal(amount) * Decimal(bps) / Decimal(10_000)).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    assert commission_for(amount, bps) == int(exact)


# --- the ledger --------------------------------------------------------------------------------


def _offers(bps_by_creator: dict[str, int]) -> dict[str, domain.Offer]:
    offers = {}
    for creator, bps in bps_by_creator.items():
        out = domain.publish(
            None,
            OfferPublished(
                offer_id=f"o-{creator}",
                product_id="p-1",
                merchant_id="m-1",
                commission_bps=bps,
                plan="general",
            ),
            T0,
            product=ProductView("p-1", "m-1", True, Source(kind="channels_shop")),
            policies=[],
            merchant=None,
            general_live=False,
        )
        assert out.state is not None
        offers[f"o-{creator}"] = out.state
    return offers


order_spec = st.fixed_dictionaries(
    {
        "amount": st.one_of(st.integers(0, 50), st.integers(0, 10**9)),
        "creator": st.sampled_from(["c-1", "c-2"]),
        "refunds": st.lists(st.one_of(st.integers(0, 30), st.integers(0, 10**9)), max_size=4),
        "completed": st.integers(0, 2),  # how many order.completed (duplicates with new ids)
        "paid": st.integers(1, 2),  # how many order.paid (a second one must change nothing)
    }
)


def _ops(specs: list[dict[str, object]]) -> list[tuple[str, int, int]]:
    ops: list[tuple[str, int, int]] = []
    for i, spec in enumerate(specs):
        ops += [("paid", i, 0)] * int(spec["paid"])  # type: ignore[call-overload]
        ops += [("refunded", i, int(r)) for r in spec["refunds"]]  # type: ignore[attr-defined]
        ops += [("completed", i, 0)] * int(spec["completed"])  # type: ignore[call-overload]
    return ops


def _expected(spec: dict[str, object], bps: int) -> Totals:
    """Closed form, independent of event order: what an order's ledger must end at."""
    amount = int(spec["amount"])  # type: ignore[call-overload]
    refunded = min(amount, sum(spec["refunds"]))  # type: ignore[call-overload]
    accrued = commission_for(amount, bps)
    full = amount > 0 and refunded >= amount
    final = 0 if full else commission_for(amount - refunded, bps)
    completed = bool(spec["completed"])
    return Totals(
        accrued_fen=accrued,
        cancelled_fen=accrued - final,
        settled_fen=final if completed else 0,
        pending_fen=0 if completed else final,
    )


def _run(
    specs: list[dict[str, object]], ops: list[tuple[str, int, int]], bps: dict[str, int]
) -> tuple[dict[int, Order], dict[str, Totals]]:
    offers = _offers(bps)
    orders: dict[int, Order] = {}
    running: dict[str, Totals] = defaultdict(Totals)  # as the ledgers collection is $inc-ed
    for n, (kind, i, refund_fen) in enumerate(ops):
        spec = specs[i]
        creator = str(spec["creator"])
        now = T0 + timedelta(minutes=1 + n)
        order = orders.get(i) or Order(f"ord-{i}")
        if kind == "paid":
            cmd = OrderPaid(
                order_id=f"ord-{i}",
                product_id="p-1",
                merchant_id="m-1",
                amount_fen=int(spec["amount"]),  # type: ignore[call-overload]
                creator_id=creator,
                offer_id=f"o-{creator}",
                paid_at=T0 + timedelta(seconds=30),
            )
            paid = domain.pay(order, cmd, offers[f"o-{creator}"])
            # what waited for the payment follows it, each its own decision
            steps = [paid] + [d for _, d in domain.drain(paid.state)]
        elif kind == "completed":
            steps = [domain.complete(order, f"evt-{n}", now)]
        else:
            steps = [domain.refund(order, f"evt-{n}", refund_fen, now)]
        orders[i] = steps[-1].state
        for entry in orders[i].entries[len(order.entries) :]:
            running[creator] = running[creator] + entry.effect
            running["merchant"] = running["merchant"] + entry.effect
        _check_invariants(specs, orders, running)
    return orders, running


def _check_invariants(
    specs: list[dict[str, object]], orders: dict[int, Order], running: dict[str, Totals]
) -> None:
    by_creator: dict[str, list[domain.Entry]] = defaultdict(list)
    for i, order in orders.items():
        by_creator[str(specs[i]["creator"])] += order.entries
        assert sum(1 for e in order.entries if e.kind == "accrual") <= 1
        assert order.commission_fen >= 0
        assert order.totals.net_fen == order.commission_fen
    everything = [e for entries in by_creator.values() for e in entries]
    for key, total in running.items():
        entries = everything if key == "merchant" else by_creator[key]
        assert total == domain.totals(entries), "running totals == sum of the entries"
        for bucket in BUCKETS:
            assert getattr(total, bucket) >= 0, f"{bucket} went negative"
        assert total.accrued_fen - total.cancelled_fen == total.settled_fen + total.pending_fen
        assert total.clawback_fen <= total.cancelled_fen


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(order_spec, min_size=1, max_size=6),
    bps=st.fixed_dictionaries({"c-1": st.integers(100, 9000), "c-2": st.integers(100, 9000)}),
    data=st.data(),
)
def test_ledger_totals_equal_entries_never_negative_and_order_independent(
    specs: list[dict[str, object]], bps: dict[str, int], data: st.DataObject
) -> None:
    ops = data.draw(st.permutations(_ops(specs)), label="event order")
    orders, running = _run(specs, ops, bps)
    expected: dict[str, Totals] = defaultdict(Totals)
    for i, spec in enumerate(specs):
        creator = str(spec["creator"])
        exp = _expected(spec, bps[creator])
        expected[creator] = expected[creator] + exp
        got = orders[i].totals
        assert (got.accrued_fen, got.cancelled_fen, got.settled_fen, got.pending_fen) == (
            exp.accrued_fen,
            exp.cancelled_fen,
            exp.settled_fen,
            exp.pending_fen,
        )
        assert orders[i].pending == ()  # nothing left waiting once paid
    for creator, exp in expected.items():
        got = running[creator]
        assert (got.accrued_fen, got.cancelled_fen, got.settled_fen, got.pending_fen) == (
            exp.accrued_fen,
            exp.cancelled_fen,
            exp.settled_fen,
            exp.pending_fen,
        )


@settings(max_examples=100, deadline=None)
@given(specs=st.lists(order_spec, min_size=1, max_size=4), data=st.data())
def test_two_orderings_agree_except_on_the_clawback_split(
    specs: list[dict[str, object]], data: st.DataObject
) -> None:
    bps = {"c-1": 1050, "c-2": 333}
    ops = _ops(specs)
    a = data.draw(st.permutations(ops))
    b = data.draw(st.permutations(ops))
    _, ra = _run(specs, a, bps)
    _, rb = _run(specs, b, bps)
    for key in set(ra) | set(rb):
        ta, tb = ra[key], rb[key]
        assert (ta.accrued_fen, ta.cancelled_fen, ta.settled_fen, ta.pending_fen) == (
            tb.accrued_fen,
            tb.cancelled_fen,
            tb.settled_fen,
            tb.pending_fen,
        )


# --- rates -------------------------------------------------------------------------------------


def _reference_rate(pubs: list[tuple[datetime, int]], x: datetime) -> int | None:
    """Independent definition: the last publish j at or before x decides. A raise (≥ the rate in
    force just before it) is in force from t_j; a cut from the next Shanghai midnight, and until
    then the rate in force just before it (j supersedes anything scheduled earlier)."""
    j = max((k for k, (t, _) in enumerate(pubs) if t <= x), default=None)
    if j is None:
        return None
    t_j, b_j = pubs[j]
    before = _reference_rate(pubs[:j], t_j)
    if before is None or b_j >= before:
        return b_j
    return b_j if x >= next_midnight_shanghai(t_j) else before


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 36 * 3600 * 1000), st.integers(100, 9000)), min_size=1, max_size=8
    ),
    probes=st.lists(st.integers(-1000, 10 * 24 * 3600 * 1000), min_size=1, max_size=20),
)
def test_rate_at_matches_the_reference(steps: list[tuple[int, int]], probes: list[int]) -> None:
    history: tuple[domain.RateEntry, ...] = ()
    pubs: list[tuple[datetime, int]] = []
    t = T0
    for gap_ms, bps in steps:
        t = t + timedelta(milliseconds=gap_ms)
        in_force = rate_at(history, t)
        history, entry = schedule(history, bps, t)
        pubs.append((t, bps))
        if in_force is None or bps >= in_force:
            assert entry.effective_at == t
            assert rate_at(history, t) == bps
        else:
            local = entry.effective_at.astimezone(SHANGHAI)
            assert (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)
            assert t < entry.effective_at <= t + timedelta(hours=24)
            assert rate_at(history, t) == in_force
    # ... and at any instant, the whole history answers like the reference
    for offset in probes:
        x = T0 + timedelta(milliseconds=offset)
        assert rate_at(history, x) == _reference_rate(pubs, x)
    for t_j, _ in pubs:
        for x in (t_j - timedelta(milliseconds=1), t_j, next_midnight_shanghai(t_j)):
            assert rate_at(history, x) == _reference_rate(pubs, x)


# --- a product's listing history -----------------------------------------------------------------


def _cause(i: int) -> CloudEvent:
    return CloudEvent(
        specversion="1.0",
        id=f"c-{i}",
        source="/vitrine/catalog",
        type="product.listed",
        subject="p-1",
        time=T0,
    )


@given(
    st.lists(st.tuples(st.integers(-120, 600), st.booleans()), min_size=1, max_size=50),
    st.integers(-200, 700),
)
def test_the_listing_history_answers_as_of_any_instant(
    changes: list[tuple[int, bool]], probe: int
) -> None:
    """``as_of`` is the last kept change at or before the instant (the first kept one before
    them all); changes never go back in time; only the newest ``LISTING_HISTORY`` are kept."""
    product = ProductView("p-1", "m-1", listed=False)
    for i, (minute, listed) in enumerate(changes):
        change = ListingChange(T0 + timedelta(minutes=minute), listed, None, i, _cause(i))
        product = product.changed(change)
        assert product.listed == listed and product.version == i
    kept = product.history
    assert len(kept) == min(len(changes), LISTING_HISTORY)
    assert [c.version for c in kept] == list(range(len(changes)))[-LISTING_HISTORY:]
    assert all(a.at <= b.at for a, b in itertools.pairwise(kept))
    instant = T0 + timedelta(minutes=probe)
    then = product.as_of(instant)
    before = [c for c in kept if c.at <= instant]
    expected = before[-1] if before else kept[0]
    assert (then.listed, then.version) == (expected.listed, expected.version)
    assert then.history == kept


@given(st.lists(st.tuples(st.integers(1, 600), st.booleans()), max_size=12), st.integers(0, 600))
def test_following_the_listing_suspends_iff_delisted_and_restores_iff_relisted(
    changes: list[tuple[int, bool]], since: int
) -> None:
    """A new offer following the changes after its activation ends active iff the product's
    last change is a listing (no policy), with one event per status change."""
    product = ProductView("p-1", "m-1", listed=True).changed(
        ListingChange(T0, True, None, 0, _cause(0))
    )
    for i, (minute, listed) in enumerate(sorted(changes), start=1):
        product = product.changed(
            ListingChange(T0 + timedelta(minutes=minute), listed, None, i, _cause(i))
        )
    start = T0 + timedelta(minutes=since, seconds=30)
    offer = domain.Offer(
        "o-1", "p-1", "m-1", history=(domain.StatusChange(start, "active", "published"),)
    )
    followed = domain.follow_listing(offer, product, start, policies=[], merchant=None)
    after = [c for c in product.history if c.at > start]
    last = followed[-1][1].state if followed else offer
    assert last.status == ("active" if not after or after[-1].listed else "suspended")
    statuses = ["active"] + [("active" if c.listed else "suspended") for c in after]
    flips = [c.cause.id for c, a, b in zip(after, statuses, statuses[1:], strict=False) if a != b]
    # each status change is caused by the change that made it, with exactly one event
    assert [c.cause.id for c, _ in followed] == flips
    assert all(len(d.emits) == 1 for _, d in followed)
