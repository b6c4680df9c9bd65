"""Distribution against the real stack (Kafka + MongoDB), one in-process service per module
with an injectable clock; catalog, compliance, accounts and orders are played by the test."""

from __future__ import annotations

import random
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from vitrine.contract.ids import dedupe_key
from vitrine.tools.testing.http import until
from vitrine.tools.testing.probe import Publisher, TopicProbe, cloud_event
from vitrine.tools.testing.services import running
from vitrine_distribution.domain import SHANGHAI, commission_for
from vitrine_distribution.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]

OFFERS, COMMISSIONS, REPORTS = (
    "distribution.offers",
    "distribution.commissions",
    "compliance.reports",
)
MS = timedelta(milliseconds=1)


class ManualClock:
    """The service's clock: real time unless a test pins it."""

    def __init__(self) -> None:
        self.pinned: datetime | None = None

    def __call__(self) -> datetime:
        return self.pinned or datetime.now(UTC)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def svc(stack: Any) -> AsyncIterator[tuple[httpx.AsyncClient, ManualClock]]:
    clock = ManualClock()
    async with running(DEFINITION, stack, clock=clock) as (_, http):
        yield http, clock


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:8]


# --- helpers ------------------------------------------------------------------------------------


async def list_product(
    publisher: Publisher,
    http: httpx.AsyncClient,
    pid: str,
    merchant: str,
    source: dict[str, str] | None = None,
    *,
    version: int = 1,
) -> None:
    data = {
        "product_id": pid,
        "merchant_id": merchant,
        "version": version,
        "source": source or {"kind": "channels_shop"},
        "title": "Tea cup",
        "price_fen": 1990,
    }
    await publisher.send(
        "catalog.products",
        cloud_event("product.listed", pid, data, source="/vitrine/catalog"),
    )
    await until(http, f"/products/{pid}", lambda p: p["listed"] and p.get("version") == version)


async def list_products(
    publisher: Publisher, http: httpx.AsyncClient, items: list[tuple[str, str, dict[str, str]]]
) -> None:
    """List many products at once, then wait until distribution projected each of them."""
    await publisher.send_many(
        "catalog.products",
        [
            cloud_event(
                "product.listed",
                pid,
                {
                    "product_id": pid,
                    "merchant_id": merchant,
                    "version": 1,
                    "source": source,
                    "title": "Tea cup",
                    "price_fen": 1990,
                },
                source="/vitrine/catalog",
            )
            for pid, merchant, source in items
        ],
    )
    for pid, _, _ in items:
        await until(http, f"/products/{pid}", lambda p: p["listed"])


async def delist_product(
    publisher: Publisher, http: httpx.AsyncClient, pid: str, merchant: str
) -> None:
    data = {"product_id": pid, "merchant_id": merchant, "reason": "withdrawn"}
    await publisher.send(
        "catalog.products", cloud_event("product.delisted", pid, data, source="/vitrine/catalog")
    )
    await until(http, f"/products/{pid}", lambda p: not p["listed"])


async def publish_offer(
    publisher: Publisher,
    oid: str,
    pid: str,
    merchant: str,
    bps: int = 1000,
    plan: str = "general",
    creators: list[str] | None = None,
    time: datetime | None = None,
) -> None:
    """``time``: the event's own time (the offer's terms take effect from it)."""
    data: dict[str, Any] = {
        "offer_id": oid,
        "product_id": pid,
        "merchant_id": merchant,
        "commission_bps": bps,
        "plan": plan,
    }
    if creators is not None:
        data["creator_ids"] = creators
    await publisher.send("merchants.offers", cloud_event("offer.published", oid, data, time=time))


async def active_offer(
    publisher: Publisher,
    probe: TopicProbe,
    oid: str,
    pid: str,
    merchant: str,
    bps: int = 1000,
    **kw: Any,
) -> dict[str, Any]:
    before = len(probe.events(OFFERS, type="offer.activated", subject=oid))
    await publish_offer(publisher, oid, pid, merchant, bps, **kw)
    found = await probe.wait_for(OFFERS, type="offer.activated", subject=oid, count=before + 1)
    return found[-1].data


async def refused_codes(probe: TopicProbe, oid: str, count: int = 1) -> list[str]:
    found = await probe.wait_for(OFFERS, type="offer.refused", subject=oid, count=count)
    return [r["code"] for r in found[count - 1].data["reasons"]]


def ruling(policy_id: str, phase: str, platform: str, **exemptions: Any) -> dict[str, Any]:
    return cloud_event(
        "policy.in_force",
        policy_id,
        {
            "policy_id": policy_id,
            "phase": phase,
            "rules": [
                {
                    "kind": "disallow_source",
                    "surfaces": ["distribution", "showcase"],
                    "sources": [{"kind": "third_party_platform", "platform": platform}],
                }
            ],
            "exemptions": {"merchant_ids": [], "service_provider_built": False, **exemptions},
            "effective_at": "2022-11-30T00:00:00+08:00",
            "enforce_existing_at": "2022-11-30T00:00:00+08:00",
        },
        source="/vitrine/compliance",
    )


def paid(
    order_id: str,
    offer_id: str | None,
    creator: str | None,
    pid: str,
    merchant: str,
    amount: int,
    paid_at: datetime,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "order_id": order_id,
        "product_id": pid,
        "merchant_id": merchant,
        "amount_fen": amount,
        "paid_at": paid_at.isoformat(),
    }
    if offer_id:
        data["offer_id"] = offer_id
    if creator:
        data["creator_id"] = creator
    return cloud_event("order.paid", order_id, data, source="/orders")


def completed(order_id: str) -> dict[str, Any]:
    return cloud_event("order.completed", order_id, {"order_id": order_id}, source="/orders")


def refunded(order_id: str, fen: int) -> dict[str, Any]:
    return cloud_event(
        "order.refunded", order_id, {"order_id": order_id, "refund_fen": fen}, source="/orders"
    )


async def one(probe: TopicProbe, type_: str, subject: str, **data: Any) -> dict[str, Any]:
    return (await probe.wait_for(COMMISSIONS, type=type_, subject=subject, **data))[0].data


# --- offers ------------------------------------------------------------------------------------


async def test_every_refusal_code(svc, probe, publisher, uid) -> None:
    http, _ = svc
    m1, m2, platform = f"m1-{uid}", f"m2-{uid}", f"plat-{uid}"
    p1, p_mini, p_unlisted = f"p1-{uid}", f"p3p-{uid}", f"px-{uid}"
    await list_product(publisher, http, p1, m1)
    await list_product(
        publisher, http, p_mini, m1, {"kind": "third_party_platform", "platform": platform}
    )
    policy = f"pol-{uid}"
    await publisher.send("compliance.rulings", ruling(policy, "block_new", platform))
    await until(http, f"/policies/{policy}", lambda p: p["phase"] == "block_new")

    await publish_offer(publisher, f"o-unlisted-{uid}", p_unlisted, m1)
    assert await refused_codes(probe, f"o-unlisted-{uid}") == ["product_not_listed"]
    await publish_offer(publisher, f"o-theirs-{uid}", p1, m2)
    assert await refused_codes(probe, f"o-theirs-{uid}") == ["not_product_owner"]
    for bps in (99, 9001):
        await publish_offer(publisher, f"o-bps{bps}-{uid}", p1, m1, bps)
        assert await refused_codes(probe, f"o-bps{bps}-{uid}") == ["invalid_commission"]
    await publish_offer(publisher, f"o-src-{uid}", p_mini, m1)
    found = await probe.wait_for(OFFERS, type="offer.refused", subject=f"o-src-{uid}")
    assert [(r["code"], r.get("policy_id")) for r in found[0].data["reasons"]] == [
        ("source_disallowed", policy)
    ]
    await publish_offer(publisher, f"o-tgt-{uid}", p1, m1, plan="targeted", creators=["c-1"])
    assert await refused_codes(probe, f"o-tgt-{uid}") == ["general_plan_required"]
    # every applicable code at once
    await publish_offer(publisher, f"o-all-{uid}", p_mini, m2, 50, plan="targeted", creators=[])
    assert await refused_codes(probe, f"o-all-{uid}") == [
        "not_product_owner",
        "invalid_commission",
        "source_disallowed",
        "general_plan_required",
    ]
    # with a live general plan, the targeted one is accepted
    await active_offer(publisher, probe, f"o-gen-{uid}", p1, m1, 1000)
    tgt = await active_offer(
        publisher, probe, f"o-tgt-{uid}", p1, m1, 2000, plan="targeted", creators=[f"c-vip-{uid}"]
    )
    assert tgt["plan"] == "targeted" and tgt["creator_ids"] == [f"c-vip-{uid}"]
    # refused offers were never created
    assert (await http.get(f"/offers/o-theirs-{uid}")).status_code == 404

    # commission refusals: unknown offer, targeted plan and a creator not on it, no creator
    now = datetime.now(UTC) + timedelta(seconds=1)
    # an offer that never arrives: paid two days before the offers' event time, so the wait
    # (24 h of event time) is over at once
    long_ago = now - timedelta(days=2)
    await publisher.send(
        "orders.lifecycle", paid(f"ord-a-{uid}", f"o-nope-{uid}", "c-1", p1, m1, 100, long_ago)
    )
    await publisher.send(
        "orders.lifecycle", paid(f"ord-b-{uid}", f"o-tgt-{uid}", f"c-other-{uid}", p1, m1, 100, now)
    )
    await publisher.send(
        "orders.lifecycle", paid(f"ord-c-{uid}", f"o-gen-{uid}", None, p1, m1, 100, now)
    )
    await publisher.send(
        "orders.lifecycle", paid(f"ord-d-{uid}", f"o-tgt-{uid}", f"c-vip-{uid}", p1, m1, 1001, now)
    )
    for order, code in [
        ("a", "offer_unknown"),
        ("b", "creator_not_eligible"),
        ("c", "creator_not_eligible"),
    ]:
        refusal = await one(probe, "commission.refused", f"ord-{order}-{uid}")
        assert [r["code"] for r in refusal["reasons"]] == [code]
        assert refusal["commission_fen"] == 0
    accrued = await one(probe, "commission.accrued", f"ord-d-{uid}")
    assert (accrued["commission_bps"], accrued["commission_fen"]) == (2000, 200)  # 200.2


async def test_ownership_and_withdrawal(svc, probe, publisher, uid) -> None:
    http, _ = svc
    m1, m2, pid, oid = f"m1-{uid}", f"m2-{uid}", f"p-{uid}", f"o-{uid}"
    await list_product(publisher, http, pid, m1)
    await active_offer(publisher, probe, oid, pid, m1, 1500)
    # another merchant may neither change nor withdraw it
    await publish_offer(publisher, oid, pid, m2, 9000)
    assert await refused_codes(probe, oid) == ["not_product_owner"]
    await publisher.send(
        "merchants.offers",
        cloud_event("offer.withdrawn", oid, {"offer_id": oid, "merchant_id": m2}),
    )
    found = await probe.wait_for(OFFERS, type="offer.refused", subject=oid, count=2)
    assert found[1].data["command"] == "offer.withdrawn"
    assert [r["code"] for r in found[1].data["reasons"]] == ["not_product_owner"]
    view = (await http.get(f"/offers/{oid}")).json()
    assert view["status"] == "active" and view["commission_bps"] == 1500
    # its merchant may
    await publisher.send(
        "merchants.offers",
        cloud_event("offer.withdrawn", oid, {"offer_id": oid, "merchant_id": m1}),
    )
    withdrawn = await probe.wait_for(OFFERS, type="offer.withdrawn", subject=oid)
    assert withdrawn[0].data == {
        "offer_id": oid,
        "product_id": pid,
        "merchant_id": m1,
        "reason": "merchant",
    }
    await until(http, f"/offers/{oid}", lambda o: o["status"] == "withdrawn")
    # an order paid after the withdrawal earns nothing
    later = datetime.now(UTC) + timedelta(seconds=1)
    await publisher.send("orders.lifecycle", paid(f"ord-{uid}", oid, "c-1", pid, m1, 500, later))
    refusal = await one(probe, "commission.refused", f"ord-{uid}")
    assert [r["code"] for r in refusal["reasons"]] == ["offer_inactive"]


async def test_raise_now_cut_at_midnight_shanghai(svc, probe, publisher, uid) -> None:
    http, clock = svc
    merchant, pid, oid, creator = f"m-{uid}", f"p-{uid}", f"o-{uid}", f"c-{uid}"
    t0 = datetime(2024, 3, 10, 23, 0, tzinfo=SHANGHAI).astimezone(UTC)
    midnight = datetime(2024, 3, 11, 0, 0, tzinfo=SHANGHAI).astimezone(UTC)
    await list_product(publisher, http, pid, merchant)
    # the publishes' own times decide, whatever the service's clock says (event time, §6)
    clock.pinned = datetime(2030, 1, 1, tzinfo=UTC)
    try:
        first = await active_offer(publisher, probe, oid, pid, merchant, 1000, time=t0)
        assert datetime.fromisoformat(first["effective_at"]) == t0
        at_2359 = midnight - timedelta(minutes=1)  # 23:59 — a cut waits a minute
        cut = await active_offer(publisher, probe, oid, pid, merchant, 500, time=at_2359)
        assert datetime.fromisoformat(cut["effective_at"]) == midnight
        at_0030 = midnight + timedelta(minutes=30)  # 00:30 — a raise is immediate
        raised = await active_offer(publisher, probe, oid, pid, merchant, 1500, time=at_0030)
        assert datetime.fromisoformat(raised["effective_at"]) == at_0030
    finally:
        clock.pinned = None
    cases = {
        "before-offer": (t0 - MS, None),
        "2359": (midnight - MS, 1000),
        "0000": (midnight, 500),
        "0000-001": (midnight + MS, 500),
        "0029": (midnight + timedelta(minutes=30) - MS, 500),
        "0030": (midnight + timedelta(minutes=30), 1500),
    }
    for name, (paid_at, _) in cases.items():
        await publisher.send(
            "orders.lifecycle",
            paid(f"ord-{name}-{uid}", oid, creator, pid, merchant, 10_001, paid_at),
        )
    for name, (_, bps) in cases.items():
        order = f"ord-{name}-{uid}"
        if bps is None:
            refusal = await one(probe, "commission.refused", order)
            assert [r["code"] for r in refusal["reasons"]] == ["offer_inactive"]
            continue
        accrued = await one(probe, "commission.accrued", order)
        assert accrued["commission_bps"] == bps, name
        assert accrued["commission_fen"] == commission_for(10_001, bps), name
    # the offer answers its rate at any instant, with the full history
    at = (midnight - MS).isoformat()
    view = (await http.get(f"/offers/{oid}", params={"at": at})).json()
    assert view["at"]["commission_bps"] == 1000 and view["at"]["active"] is True
    assert [(r["commission_bps"], r["kind"]) for r in view["rate_history"]] == [
        (1000, "immediate"),
        (500, "scheduled_cut"),
        (1500, "immediate"),
    ]


async def test_offer_follows_its_product(svc, probe, publisher, uid) -> None:
    http, _ = svc
    merchant, pid, oid = f"m-{uid}", f"p-{uid}", f"o-{uid}"
    await list_product(publisher, http, pid, merchant)
    await active_offer(publisher, probe, oid, pid, merchant)
    await delist_product(publisher, http, pid, merchant)
    suspended = await probe.wait_for(OFFERS, type="offer.suspended", subject=oid)
    assert suspended[0].data["reason"] == "product_delisted"
    view = await until(http, f"/offers/{oid}", lambda o: o["status"] == "suspended")
    assert view["holds"] == ["product_delisted"]
    # a suspended offer's terms cannot change
    await publish_offer(publisher, oid, pid, merchant, 3000)
    assert await refused_codes(probe, oid) == ["product_not_listed", "offer_inactive"]
    await list_product(publisher, http, pid, merchant, version=2)
    restored = await probe.wait_for(OFFERS, type="offer.restored", subject=oid)
    assert restored[0].data["reason"] == "product_relisted"
    view = await until(http, f"/offers/{oid}", lambda o: o["status"] == "active")
    assert [h["status"] for h in view["status_history"]] == ["active", "suspended", "active"]


async def test_policy_enforcement_in_bulk_and_lift(svc, probe, publisher, uid) -> None:
    http, _ = svc
    platform, policy = f"plat-{uid}", f"pol-{uid}"
    source = {"kind": "third_party_platform", "platform": platform}
    n = 30
    merchants = [f"m{i % 3}-{uid}" for i in range(n)]
    await list_products(publisher, http, [(f"p{i}-{uid}", merchants[i], source) for i in range(n)])
    exempt, spb, other, delisted = (f"{k}-{uid}" for k in ("mex", "mspb", "moth", "mdel"))
    await publisher.send(
        "accounts.shops",
        cloud_event(
            "shop.registered",
            spb,
            {
                "account_id": spb,
                "shop_id": f"shop.{uid}",
                "shop_kind": "mini_program",
                "service_provider_built": True,
            },
        ),
    )
    await list_products(
        publisher,
        http,
        [(f"p-{m}", m, source) for m in (exempt, spb, delisted)]
        + [(f"p-{other}", other, {"kind": "channels_shop"})],  # another source
    )
    await until(http, f"/accounts/{spb}", lambda a: a["service_provider_built"])
    for i in range(n):
        await publish_offer(publisher, f"o{i}-{uid}", f"p{i}-{uid}", merchants[i], 1000 + i)
    for m in (exempt, spb, other, delisted):
        await publish_offer(publisher, f"o-{m}", f"p-{m}", m)
    for oid in [f"o{i}-{uid}" for i in range(n)] + [
        f"o-{m}" for m in (exempt, spb, other, delisted)
    ]:
        await probe.wait_for(OFFERS, type="offer.activated", subject=oid)
    await delist_product(publisher, http, f"p-{delisted}", delisted)
    await probe.wait_for(OFFERS, type="offer.suspended", subject=f"o-{delisted}")

    await publisher.send(
        "compliance.rulings",
        ruling(
            policy, "enforce_existing", platform, merchant_ids=[exempt], service_provider_built=True
        ),
    )
    report = await probe.wait_for(REPORTS, type="enforcement.reported", subject=policy)
    assert report[0].data == {
        "policy_id": policy,
        "service": "distribution",
        "phase": "enforce_existing",
        "affected": n + 1,  # the 30 and the one already suspended by its delisting
    }
    suspended = await probe.wait_for(OFFERS, type="offer.suspended", policy_id=policy, count=n)
    assert sorted(r.subject for r in suspended) == sorted(f"o{i}-{uid}" for i in range(n))
    assert {r.data["reason"] for r in suspended} == {"policy"}
    view = (await http.get(f"/offers/o0-{uid}")).json()
    assert view["status"] == "suspended" and view["holds"] == [f"policy:{policy}"]
    for m in (exempt, spb, other):
        assert (await http.get(f"/offers/o-{m}")).json()["status"] == "active"
    assert (await http.get(f"/offers/o-{delisted}")).json()["holds"] == [
        f"policy:{policy}",
        "product_delisted",
    ]
    # new offers for those goods are refused while it is in force
    await publish_offer(publisher, f"o-new-{uid}", f"p0-{uid}", merchants[0])
    assert await refused_codes(probe, f"o-new-{uid}") == ["source_disallowed"]

    await publisher.send(
        "compliance.rulings",
        cloud_event("policy.lifted", policy, {"policy_id": policy}, source="/vitrine/compliance"),
    )
    lifted = await probe.wait_for(
        REPORTS, type="enforcement.reported", subject=policy, phase="lifted"
    )
    assert lifted[0].data["affected"] == n + 1
    restored = await probe.wait_for(OFFERS, type="offer.restored", policy_id=policy, count=n)
    assert sorted(r.subject for r in restored) == sorted(f"o{i}-{uid}" for i in range(n))
    await probe.settle()
    # exactly one suspension and one restoration per offer; the delisted one stays suspended
    assert len(probe.events(OFFERS, type="offer.suspended", policy_id=policy)) == n
    assert len(probe.events(OFFERS, type="offer.restored", policy_id=policy)) == n
    assert len(probe.events(REPORTS, type="enforcement.reported", subject=policy)) == 2
    view = (await http.get(f"/offers/o-{delisted}")).json()
    assert view["status"] == "suspended" and view["holds"] == ["product_delisted"]
    await list_product(publisher, http, f"p-{delisted}", delisted, source, version=2)
    await probe.wait_for(OFFERS, type="offer.restored", subject=f"o-{delisted}")


# --- commissions -------------------------------------------------------------------------------


async def test_accrue_settle_adjust_cancel_clawback_and_ledgers(svc, probe, publisher, uid) -> None:
    http, _ = svc
    merchant, pid, oid, creator = f"m-{uid}", f"p-{uid}", f"o-{uid}", f"c-{uid}"
    await list_product(publisher, http, pid, merchant)
    act = await active_offer(publisher, probe, oid, pid, merchant, 1050)
    at = datetime.fromisoformat(act["effective_at"]) + timedelta(seconds=1)
    send = publisher.send
    # A: accrue → settle
    await send("orders.lifecycle", paid(f"A-{uid}", oid, creator, pid, merchant, 1990, at))
    assert (await one(probe, "commission.accrued", f"A-{uid}"))["commission_fen"] == 209
    await send("orders.lifecycle", completed(f"A-{uid}"))
    settled = await one(probe, "commission.settled", f"A-{uid}")
    assert settled["commission_fen"] == 209
    # B: partial refund → adjusted, then settled at the adjusted amount
    await send("orders.lifecycle", paid(f"B-{uid}", oid, creator, pid, merchant, 10_000, at))
    await send("orders.lifecycle", refunded(f"B-{uid}", 2_500))
    adjusted = await one(probe, "commission.adjusted", f"B-{uid}")
    assert (adjusted["commission_fen"], adjusted["delta_fen"]) == (788, -262)  # 1050 → 787.5↑
    await send("orders.lifecycle", completed(f"B-{uid}"))
    assert (await one(probe, "commission.settled", f"B-{uid}"))["commission_fen"] == 788
    # C: full refund (in two parts) → cancelled; completing it settles nothing
    await send("orders.lifecycle", paid(f"C-{uid}", oid, creator, pid, merchant, 3_000, at))
    await send("orders.lifecycle", refunded(f"C-{uid}", 1_000))
    await send("orders.lifecycle", refunded(f"C-{uid}", 2_000))
    cancelled = await one(probe, "commission.cancelled", f"C-{uid}")
    assert cancelled["commission_fen"] == 0 and cancelled["reason"] == "refunded"
    await send("orders.lifecycle", completed(f"C-{uid}"))
    # D: settled, then refunded → clawback
    await send("orders.lifecycle", paid(f"D-{uid}", oid, creator, pid, merchant, 20_000, at))
    await send("orders.lifecycle", completed(f"D-{uid}"))
    await one(probe, "commission.settled", f"D-{uid}")
    await send("orders.lifecycle", refunded(f"D-{uid}", 5_000))
    claw = await one(probe, "commission.adjusted", f"D-{uid}")
    assert claw["clawback"] is True
    assert (claw["commission_fen"], claw["delta_fen"], claw["clawback_fen"]) == (1575, -525, 525)
    # E: still pending
    await send("orders.lifecycle", paid(f"E-{uid}", oid, creator, pid, merchant, 100, at))
    await one(probe, "commission.accrued", f"E-{uid}")

    expected = {
        "accrued_fen": 209 + 1050 + 315 + 2100 + 11,
        "cancelled_fen": 262 + 315 + 525,
        "settled_fen": 209 + 788 + 1575,
        "pending_fen": 11,
        "clawback_fen": 525,
    }
    expected["net_fen"] = expected["accrued_fen"] - expected["cancelled_fen"]
    ledger = await until(http, f"/creators/{creator}/ledger", lambda b: b["totals"] == expected)
    assert ledger["accruals"] == 5
    sums: dict[str, int] = defaultdict(int)
    for e in ledger["entries"]:
        sums[e["kind"]] += e["amount_fen"]
    assert sums["accrual"] == expected["accrued_fen"]
    assert sums["adjustment"] + sums["cancellation"] + sums["clawback"] == expected["cancelled_fen"]
    assert sums["settlement"] - sums["clawback"] == expected["settled_fen"]
    assert all(isinstance(e["amount_fen"], int) for e in ledger["entries"])
    payable = (await http.get(f"/merchants/{merchant}/payable")).json()
    assert (payable["payable_fen"], payable["pending_fen"], payable["clawback_fen"]) == (
        expected["settled_fen"],
        11,
        525,
    )
    order = (await http.get(f"/orders/D-{uid}")).json()
    assert [e["kind"] for e in order["entries"]] == ["accrual", "settlement", "clawback"]


def _expected_totals(amount: int, refunds: list[int], completes: int, bps: int) -> dict[str, int]:
    refunded_total = min(amount, sum(refunds))
    accrued = commission_for(amount, bps)
    final = (
        0
        if amount > 0 and refunded_total >= amount
        else commission_for(amount - refunded_total, bps)
    )
    return {
        "accrued_fen": accrued,
        "cancelled_fen": accrued - final,
        "settled_fen": final if completes else 0,
        "pending_fen": 0 if completes else final,
    }


async def test_redelivered_and_reordered_order_events_change_no_totals(
    svc, probe, publisher, uid
) -> None:
    http, _ = svc
    merchant, pid, oid, creator = f"m-{uid}", f"p-{uid}", f"o-{uid}", f"c-{uid}"
    bps = 1234
    await list_product(publisher, http, pid, merchant)
    act = await active_offer(publisher, probe, oid, pid, merchant, bps)
    at = datetime.fromisoformat(act["effective_at"]) + timedelta(seconds=1)
    rng = random.Random(uid)
    stream: list[dict[str, Any]] = []
    expected: Counter[str] = Counter()
    n = 80
    for i in range(n):
        order_id = f"ord{i}-{uid}"
        amount = rng.choice([1, 99, 1000, 10_001, rng.randint(1, 2_000_000)])
        refunds = [rng.randint(1, amount) for _ in range(rng.choice([0, 0, 1, 2, 3]))]
        completes = rng.choice([0, 1, 1, 2])  # a second completion has its own event id
        stream.append(paid(order_id, oid, creator, pid, merchant, amount, at))
        if rng.random() < 0.3:  # the same payment re-sent by upstream with a new event id
            stream.append(paid(order_id, oid, creator, pid, merchant, amount, at))
        stream += [refunded(order_id, r) for r in refunds]
        stream += [completed(order_id) for _ in range(completes)]
        expected.update(_expected_totals(amount, refunds, completes, bps))
    rng.shuffle(stream)  # reordered, including completed/refunded before paid
    redelivered = stream + rng.sample(stream, len(stream) // 3)  # same event ids again
    rng.shuffle(redelivered)
    await publisher.send_many("orders.lifecycle", redelivered)

    # clawback_fen is not compared: whether a refund hits a settled commission depends on
    # whether it arrived after the completion; its bounds are checked below
    want = dict(expected)

    def done(body: dict[str, Any]) -> bool:
        t = body["totals"]
        return all(t[k] == want[k] for k in want) and body["accruals"] == n

    ledger = await until(http, f"/creators/{creator}/ledger", done, timeout=60)
    await probe.settle()
    ledger = (await http.get(f"/creators/{creator}/ledger")).json()
    assert done(ledger), ledger["totals"]
    assert ledger["accruals"] == n
    t = ledger["totals"]
    assert 0 <= t["clawback_fen"] <= t["cancelled_fen"]
    # totals == sum of entries
    sums: dict[str, int] = defaultdict(int)
    for e in ledger["entries"]:
        sums[e["kind"]] += e["amount_fen"]
    assert sums["accrual"] == t["accrued_fen"]
    assert sums["clawback"] == t["clawback_fen"]
    # exactly one accrual (one event id) per order
    accrued = probe.events(COMMISSIONS, type="commission.accrued", creator_id=creator)
    ids_per_order: dict[str, set[str]] = defaultdict(set)
    for r in accrued:
        ids_per_order[r.subject].add(r.event["id"])
    assert len(ids_per_order) == n and all(len(v) == 1 for v in ids_per_order.values())
    settled = probe.events(COMMISSIONS, type="commission.settled", creator_id=creator)
    assert all(c == 1 for c in Counter(r.subject for r in settled).values())


async def test_an_order_never_reapplies_an_event_it_holds(
    svc, stack, probe, publisher, uid
) -> None:
    """The order document remembers what it applied: with the inbox row gone (as when a store
    without transaction isolation exposes a killed batch's writes), a redelivered event is
    re-emitted with the same id and changes nothing."""
    from pymongo import AsyncMongoClient

    http, _ = svc
    merchant, pid, oid, creator = f"m-{uid}", f"p-{uid}", f"o-{uid}", f"c-{uid}"
    await list_product(publisher, http, pid, merchant)
    act = await active_offer(publisher, probe, oid, pid, merchant, 1000)
    at = datetime.fromisoformat(act["effective_at"]) + timedelta(seconds=1)
    order = f"ord-{uid}"
    pay, refund = paid(order, oid, creator, pid, merchant, 10_000, at), refunded(order, 4_000)
    await publisher.send("orders.lifecycle", pay)
    await publisher.send("orders.lifecycle", refund)
    first = await one(probe, "commission.adjusted", order)
    before = (await http.get(f"/creators/{creator}/ledger")).json()
    assert before["totals"]["cancelled_fen"] == 400 == -first["delta_fen"]

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo_url)
    try:
        inbox = client["distribution"]["inbox"]
        keys = [dedupe_key("/orders", e["id"], e["subject"]) for e in (pay, refund)]
        deleted = await inbox.delete_many({"_id": {"$in": keys}})
        assert deleted.deleted_count == 2
    finally:
        await client.close()
    await publisher.send("orders.lifecycle", pay)
    await publisher.send("orders.lifecycle", refund)
    again = await probe.wait_for(COMMISSIONS, type="commission.adjusted", subject=order, count=2)
    accrued = await probe.wait_for(COMMISSIONS, type="commission.accrued", subject=order, count=2)
    assert len({r.event["id"] for r in again}) == 1  # the same event, re-emitted
    assert len({r.event["id"] for r in accrued}) == 1
    await probe.settle()
    after = (await http.get(f"/creators/{creator}/ledger")).json()
    assert after["totals"] == before["totals"] and after["accruals"] == 1
