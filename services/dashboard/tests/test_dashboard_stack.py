"""The dashboard's API against the real stack: orders, refunds, commissions and rulings
published on their topics, the numbers read back exactly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from vitrine.tools.testing.http import until
from vitrine.tools.testing.probe import cloud_event
from vitrine_dashboard.domain import TZ
from vitrine_dashboard.service import DEFINITION

pytestmark = [pytest.mark.stack, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(stack) -> AsyncIterator[httpx.AsyncClient]:
    from vitrine.tools.testing.services import running

    async with running(DEFINITION, stack) as (_, client):
        yield client


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def order_paid(
    order: str,
    *,
    session: str,
    creator: str,
    merchant: str,
    product: str,
    amount: int,
    at: datetime,
) -> dict[str, Any]:
    data = {
        "order_id": order,
        "product_id": product,
        "merchant_id": merchant,
        "creator_id": creator,
        "amount_fen": amount,
        "paid_at": at.isoformat(),
        "live_session_id": session,
        "quantity": 2,
    }
    return cloud_event("order.paid", order, data)


async def test_orders_refunds_and_commissions_are_exact(http, publisher) -> None:
    session, creator, merchant = uid("s"), uid("c"), uid("m")
    p1, p2 = uid("p"), uid("p")
    noon = datetime(2022, 7, 1, 12, 0, 30, tzinfo=TZ)
    late = datetime(2022, 6, 30, 23, 59, 10, tzinfo=TZ)  # the day before, arriving last
    o1, o2, o3 = uid("o"), uid("o"), uid("o")
    first = order_paid(
        o1, session=session, creator=creator, merchant=merchant, product=p1, amount=1000, at=noon
    )
    events = [
        first,
        first,  # redelivered: same id
        order_paid(
            o2,
            session=session,
            creator=creator,
            merchant=merchant,
            product=p2,
            amount=2500,
            at=noon,
        ),
        order_paid(
            o3, session=session, creator=creator, merchant=merchant, product=p1, amount=700, at=late
        ),
        cloud_event(
            "order.refunded",
            o1,
            {"order_id": o1, "refund_fen": 400},
            time=datetime(2022, 7, 2, 10, 0, 5, tzinfo=TZ),
        ),
    ]
    await publisher.send_many("orders.lifecycle", events)
    accrued = {
        "order_id": o2,
        "offer_id": uid("of"),
        "creator_id": creator,
        "merchant_id": merchant,
        "commission_fen": 250,
        "amount_fen": 2500,
        "commission_bps": 1000,
    }
    await publisher.send(
        "distribution.commissions",
        cloud_event("commission.accrued", o2, accrued, source="/vitrine/distribution", time=noon),
    )

    live = await until(
        http,
        f"/api/live/{session}",
        lambda b: (
            b["orders"] == 3 and b["refunds_fen"] == 400 and b["commission_accrued_fen"] == 250
        ),
    )
    assert (live["gmv_fen"], live["net_fen"]) == (4200, 3800)
    assert [
        (m["minute"], m["orders"], m["gmv_fen"]) for m in live["per_minute"] if m["orders"]
    ] == [
        ("2022-06-30T23:59:00+08:00", 1, 700),
        ("2022-07-01T12:00:00+08:00", 2, 3500),
    ]
    assert [
        (t["product_id"], t["gmv_fen"], t["orders"], t["units"]) for t in live["top_products"]
    ] == [
        (p2, 2500, 1, 2),
        (p1, 1700, 2, 4),
    ]

    day = (await http.get(f"/api/creators/{creator}", params={"date": "2022-07-01"})).json()
    assert (day["gmv_fen"], day["orders"], day["refunds_fen"], day["commission_accrued_fen"]) == (
        3500,
        2,
        0,
        250,
    )
    refund_day = (
        await http.get(f"/api/merchants/{merchant}", params={"date": "2022-07-02"})
    ).json()
    assert (refund_day["gmv_fen"], refund_day["refunds_fen"], refund_day["net_fen"]) == (
        0,
        400,
        -400,
    )
    assert refund_day["per_minute"][0]["minute"] == "2022-07-02T10:00:00+08:00"
    before = (await http.get(f"/api/creators/{creator}", params={"date": "2022-06-30"})).json()
    assert (before["gmv_fen"], before["orders"]) == (700, 1)


async def test_unknown_ids_and_bad_dates(http) -> None:
    resp = await http.get(f"/api/live/{uid('s')}")
    assert resp.status_code == 404 and resp.json()["error"] == "unknown_session"
    resp = await http.get(f"/api/creators/{uid('c')}")
    assert resp.status_code == 404 and "has any figures" in resp.json()["message"]
    for bad in ("2022-13-01", "20220701", "2022-W01-1", "yesterday", "２０２２-07-01"):
        resp = await http.get(f"/api/merchants/{uid('m')}", params={"date": bad})
        assert resp.status_code == 400 and resp.json()["error"] == "bad_date", bad
    resp = await http.get("/api/stream")
    assert resp.status_code == 400
    resp = await http.get("/api/stream", params={"live": uid("s")})
    assert resp.status_code == 404


async def test_today_is_the_default_day(http, publisher) -> None:
    merchant = uid("m")
    now = datetime.now(TZ) - timedelta(seconds=1)
    event = order_paid(
        uid("o"),
        session=uid("s"),
        creator=uid("c"),
        merchant=merchant,
        product=uid("p"),
        amount=123,
        at=now,
    )
    await publisher.send("orders.lifecycle", event)
    body = await until(http, f"/api/merchants/{merchant}", lambda b: b["orders"] == 1)
    assert body["date"] == now.date().isoformat() and body["gmv_fen"] == 123


async def test_policies_show_enforcement_progress(http, publisher) -> None:
    pid = uid("pol")
    t = datetime(2022, 11, 30, tzinfo=TZ)
    accepted = {
        "policy_id": pid,
        "title": "Mini Shop goods leave the showcase",
        "effective_at": t.isoformat(),
        "enforce_existing_at": t.isoformat(),
        "rules": [
            {
                "kind": "disallow_source",
                "surfaces": ["showcase", "distribution"],
                "sources": [{"kind": "wechat_mini_shop"}],
            }
        ],
    }
    in_force = {
        "policy_id": pid,
        "phase": "enforce_existing",
        "effective_at": t.isoformat(),
        "enforce_existing_at": t.isoformat(),
    }
    src = "/vitrine/compliance"
    await publisher.send_many(
        "compliance.rulings",
        [
            cloud_event("policy.accepted", pid, accepted, source=src),
            cloud_event("policy.in_force", pid, in_force, source=src),
        ],
    )
    report = {"policy_id": pid, "service": "showcase", "phase": "enforce_existing", "affected": 3}
    await publisher.send(
        "compliance.reports",
        cloud_event("enforcement.reported", pid, report, source="/vitrine/showcase"),
    )

    def found(body: dict[str, Any]) -> bool:
        return any(
            p["policy_id"] == pid and p["enforcement"][0]["reported"] for p in body["policies"]
        )

    body = await until(http, "/api/policies", found)
    [policy] = [p for p in body["policies"] if p["policy_id"] == pid]
    assert policy["stage"] == "in_force"
    assert [(e["service"], e["reported"], e["affected"]) for e in policy["enforcement"]] == [
        ("showcase", True, 3),
        ("distribution", False, None),
    ]


async def test_the_page_and_its_chart_library_are_served(http) -> None:
    page = await http.get("/")
    assert page.status_code == 200 and "/static/vendor/uPlot.iife.min.js" in page.text
    lib = await http.get("/static/vendor/uPlot.iife.min.js")
    assert lib.status_code == 200 and "uPlot" in lib.text
    assert (await http.get("/static/app.js")).status_code == 200


async def test_hostile_records_are_dead_lettered_and_the_next_order_counts(
    http, publisher, probe
) -> None:
    session, oid = uid("s"), uid("o")
    good = order_paid(
        oid,
        session=session,
        creator=uid("c"),
        merchant=uid("m"),
        product=uid("p"),
        amount=500,
        at=datetime.now(TZ) - timedelta(seconds=1),
    )
    hostile = {**good, "id": uid("e"), "data": {**good["data"], "notes": {"$where": "1"}}}
    negative = {**good, "id": uid("e"), "data": {**good["data"], "amount_fen": -5}}
    for bad in (hostile, negative):
        await publisher.send("orders.lifecycle", bad)
    await publisher.send("orders.lifecycle", good)  # same key, behind the bad ones

    body = await until(http, f"/api/live/{session}", lambda b: b["orders"] == 1)
    assert body["gmv_fen"] == 500

    def by_dashboard(record: Any) -> bool:
        return bool(record.headers.get("dlq-service") == "dashboard")

    dead = await probe.wait_for("orders.lifecycle.dlq", subject=oid, count=2, where=by_dashboard)
    assert sorted(d.headers["dlq-reason"] for d in dead) == ["forbidden_key", "invalid_data"]
